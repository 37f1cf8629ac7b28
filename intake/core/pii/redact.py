"""Renditions of a text with personal data redacted (privacy promises P3, P6).

``redact(text, findings, rendition, share_address=False)`` returns a
``RedactedText``: the new text plus one ``Redaction`` per replaced span, with
offsets into the ORIGINAL text and a reason code (``P6-<kind>`` for the kinds
people are asked not to send, ``P2-<kind>`` for other personal data).

Rendition rules
---------------

``PUBLIC``  (P3, e.g. published correspondence)
    Every finding is replaced by a visible marker such as
    ``[redacted: e-mail address]``, including medical terms and the gender
    statement of a birth date + ZIP + gender combination.

``FORWARD`` (what the receiving agency gets)
    Always replaced by a marker: ssn, card, aba, bank_account, password,
    maiden_name, birth_date (P6), and any kind this module does not know
    (fail safe).  Contact data - email, phone, street_address, and a
    caller-supplied ``name`` - is replaced unless ``share_address=True``
    (the person agreed to share how to reach them).  Medical terms and the
    ``combination`` finding are kept (flag only; the birth date that makes
    the combination identifying is already redacted).

``STAFF``   (intake staff view)
    Everything is shown except: card numbers -> ``•••• •••• •••• 1234``
    (last four digits), SSNs -> ``•••-••-6789`` (last four), passwords and
    PINs -> ``••••••••`` (fixed length, so the length is not revealed).

``SEALED``  (the sealed original)
    The text unchanged, no redactions.

Names of people are not detected (see ``detectors``); a caller that knows
the submitter's name from a form field may pass ``Finding(kind="name", ...)``
spans, which are redacted with reason ``P2-name`` under the contact rule.

Findings whose spans overlap are merged into one redaction (the kind of the
more sensitive one is reported); spans outside the text are clipped.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .model import SENSITIVE_KINDS, Finding


class Rendition(enum.Enum):
    PUBLIC = "public"
    FORWARD = "forward"
    STAFF = "staff"
    SEALED = "sealed"


@dataclass(frozen=True)
class Redaction:
    start: int
    end: int
    kind: str
    reason: str


@dataclass(frozen=True)
class RedactedText:
    text: str
    redactions: tuple[Redaction, ...]


LABELS: dict[str, str] = {
    "ssn": "Social Security number",
    "card": "card number",
    "aba": "bank routing number",
    "bank_account": "bank account number",
    "email": "e-mail address",
    "phone": "phone number",
    "birth_date": "birth date",
    "street_address": "street address",
    "password": "password",
    "maiden_name": "mother's maiden name",
    "medical": "medical information",
    "combination": "identifying detail",
    "name": "name",
}

_FORWARD_ALWAYS = frozenset(
    {"ssn", "card", "aba", "bank_account", "password", "maiden_name", "birth_date"}
)
_FORWARD_CONTACT = frozenset({"email", "phone", "street_address", "name"})
_FORWARD_KEEP = frozenset({"medical", "combination"})
_STAFF_MASKED = frozenset({"ssn", "card", "password"})

# When overlapping spans are merged, the reported kind is the first of these.
_RANK = (
    "ssn", "card", "aba", "bank_account", "password", "maiden_name", "birth_date",
    "medical", "combination", "email", "phone", "street_address", "name",
)  # fmt: skip

_NON_DIGIT = re.compile(r"[^0-9]")


def reason_for(kind: str) -> str:
    """Reason code for redacting *kind*: ``P6-<kind>`` or ``P2-<kind>``."""
    return ("P6-" if kind in SENSITIVE_KINDS else "P2-") + kind


def marker_for(kind: str) -> str:
    return f"[redacted: {LABELS.get(kind, 'personal information')}]"


def _selected(kind: str, rendition: Rendition, share_address: bool) -> bool:
    if rendition is Rendition.PUBLIC:
        return True
    if rendition is Rendition.FORWARD:
        if kind in _FORWARD_KEEP:
            return False
        if kind in _FORWARD_CONTACT:
            return not share_address
        return True  # P6 kinds and anything unknown
    if rendition is Rendition.STAFF:
        return kind in _STAFF_MASKED
    return False


def _staff_mask(kind: str, original: str) -> str:
    last4 = _NON_DIGIT.sub("", original)[-4:]
    if kind == "ssn":
        return "•••-••-" + last4
    if kind == "card":
        return "•••• •••• •••• " + last4
    return "••••••••"


def _rank(kind: str) -> int:
    try:
        return _RANK.index(kind)
    except ValueError:
        return -1  # unknown kinds win: most cautious label is the generic one


def redact(
    text: str,
    findings: Sequence[Finding],
    rendition: Rendition,
    *,
    share_address: bool = False,
) -> RedactedText:
    """Render *text* for *rendition* (see the module docstring for the rules)."""
    if rendition is Rendition.SEALED:
        return RedactedText(text, ())
    n = len(text)
    spans: list[tuple[int, int, str]] = []
    for f in findings:
        if not _selected(f.kind, rendition, share_address):
            continue
        start, end = max(0, min(f.start, n)), max(0, min(f.end, n))
        if end > start:
            spans.append((start, end, f.kind))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            ps, pe, pk = merged[-1]
            best = pk if _rank(pk) <= _rank(kind) else kind
            merged[-1] = (ps, max(pe, end), best)
        else:
            merged.append((start, end, kind))
    parts: list[str] = []
    redactions: list[Redaction] = []
    pos = 0
    for start, end, kind in merged:
        parts.append(text[pos:start])
        if text[start:end] == marker_for(kind):
            parts.append(marker_for(kind))  # redacted at rest (``at_rest``): nothing to mask
        elif rendition is Rendition.STAFF:
            parts.append(_staff_mask(kind, text[start:end]))
        else:
            parts.append(marker_for(kind))
        redactions.append(Redaction(start, end, kind, reason_for(kind)))
        pos = end
    parts.append(text[pos:])
    return RedactedText("".join(parts), tuple(redactions))
