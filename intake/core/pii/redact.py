"""A text with personal data replaced by markers (privacy promises P3, P6).

``redact(text, findings)`` returns a
``RedactedText``: the new text plus one ``Redaction`` per replaced span, with
offsets into the ORIGINAL text and a reason code (``P6-<kind>`` for the kinds
people are asked not to send, ``P2-<kind>`` for other personal data).

Every finding is replaced by a visible marker such as
``[redacted: e-mail address]``, including medical terms and the gender
statement of a birth date + ZIP + gender combination. What each audience
sees is decided in :mod:`intake.core.rendition`, which uses these markers;
the P6 values are replaced at rest (:mod:`intake.core.pii.at_rest`).

Names of people are not detected (see ``detectors``); a caller that knows
the submitter's name from a form field may pass ``Finding(kind="name", ...)``
spans, which are redacted with reason ``P2-name`` under the contact rule.

Findings whose spans overlap are merged into one redaction (the kind of the
more sensitive one is reported); spans outside the text are clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import SENSITIVE_KINDS, Finding


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

# When overlapping spans are merged, the reported kind is the first of these.
_RANK = (
    "ssn", "card", "aba", "bank_account", "password", "maiden_name", "birth_date",
    "medical", "combination", "email", "phone", "street_address", "name",
)  # fmt: skip

def reason_for(kind: str) -> str:
    """Reason code for redacting *kind*: ``P6-<kind>`` or ``P2-<kind>``."""
    return ("P6-" if kind in SENSITIVE_KINDS else "P2-") + kind


def marker_for(kind: str) -> str:
    return f"[redacted: {LABELS.get(kind, 'personal information')}]"


def _rank(kind: str) -> int:
    try:
        return _RANK.index(kind)
    except ValueError:
        return -1  # unknown kinds win: most cautious label is the generic one


def redact(text: str, findings: Sequence[Finding]) -> RedactedText:
    """*text* with every finding replaced by its marker (see the module docstring)."""
    n = len(text)
    spans: list[tuple[int, int, str]] = []
    for f in findings:
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
        parts.append(marker_for(kind))
        redactions.append(Redaction(start, end, kind, reason_for(kind)))
        pos = end
    parts.append(text[pos:])
    return RedactedText("".join(parts), tuple(redactions))
