"""Renditions of an entry per audience: the one place that decides who sees what.

Nobody reads a stored entry raw. :func:`render` makes what one audience may
see from the entry's values, the recorded consent events and the PII
findings, with every removal marked (place, kind, reason):

====================  ==========================================================
``public``            every finding and every trace of the submitter's contact
                      data redacted; no contact block at all
``agency``            the owning agency (forward, webhook, its staff views).
                      Without a live share-identity consent for that agency:
                      the relay address, "Member of the public", no e-mail,
                      phone or postal address, and every trace of them and of
                      the name scrubbed from the texts. With consent: exactly
                      what the consent text names, name and e-mail (never the
                      phone or the postal address)
``cc_agency``         the same rules for an agency in copy: its own consent
                      or a general one
``submitter``         their own contact data and texts
``records_officer``   reviewing for publication: the public texts with every
                      removal marked and its reason; contact withheld unless
                      ``reveal`` (an explicit, logged action of the caller)
====================  ==========================================================

Sensitive identifiers (the P6 kinds, ``SENSITIVE_KINDS``) and kinds this
module does not know are redacted in every rendition; only the sealed
original keeps them. Unknown input fails closed: everything withheld.

Reasons (stable strings): ``P6-<kind>`` / ``P2-<kind>`` (personal data, see
:func:`intake.core.pii.redact.reason_for`), ``no-consent`` (contact data
without a live consent), ``not-in-consent`` (contact data the consent does
not name), ``reveal-required`` (records officers see contact data only
through a reveal), ``public-record`` (the public never sees contact data),
``redaction-failed`` (a trace survived scrubbing: the text is withheld),
``invalid-input``, ``mark:<code>`` (a records officer's redaction mark with
reason code ``<code>``, :mod:`intake.core.publication`).

Releases (:class:`Release`) undo ONE automatic removal each in the ``public``
and ``records_officer`` renditions: a records officer released that value to
the public under law, through the disclosure gate (P9). A release names the
place, the offsets into the stored text (which never changes) and the kind
released; it applies only where every automatic removal of exactly that span
is of that kind and the kind is releasable (a name, a phone number, a street
address, an e-mail address that is not the submitter's: never a P6 value,
never the submitter's own address, P5), and a removal that overlaps it only
partly (a mark, a longer finding) still wins.
The released segment is kept with reason ``released-under-law``; every
other occurrence of the same value stays removed.

Marks apply in the ``public`` and ``records_officer`` renditions only, at
render time: the stored texts never change. Every removed segment carries its
reason, so a page can show each redaction with its reason and citation.

Pure standard library plus :mod:`intake.core`: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from intake.core.consent import ConsentEvent, Purpose, current_consent
from intake.core.pii import SENSITIVE_KINDS, Finding, detect
from intake.core.pii.redact import marker_for, reason_for
from intake.core.publication import Mark, mark_reason, mark_spans

__all__ = [
    "ANONYMOUS_NAME",
    "RELEASABLE_KINDS",
    "RELEASED",
    "Audience",
    "ContactItem",
    "EntryValues",
    "Release",
    "Removal",
    "Rendition",
    "Segment",
    "contact_patterns",
    "email_pattern",
    "name_pattern",
    "render",
    "scrub",
    "search_text",
]

ANONYMOUS_NAME = "Member of the public"
WITHHELD_TEXT = "[withheld]"
#: Key for hashing values found here on the fly: the hashes are never kept.
_DETECT_KEY = b"rendition: hashes are not kept"

CONTACT_KINDS = frozenset({"email", "phone", "street_address", "name"})
#: The reason of a segment kept because a records officer released it under law.
RELEASED = "released-under-law"
#: What a release may undo: contact kinds (P2). P6 kinds are markers at rest, and the
#: submitter's own address is never released (P5), whatever span it is found in.
RELEASABLE_KINDS = CONTACT_KINDS
_SUBMITTER_EMAIL = "submitter-email"  # internal tag of the submitter's address spans
#: Kept for agencies as a flag (the birth date that makes it identifying is P6).
_AGENCY_FLAGS = frozenset({"combination"})


class Audience(StrEnum):
    PUBLIC = "public"
    AGENCY = "agency"
    CC_AGENCY = "cc_agency"
    SUBMITTER = "submitter"
    RECORDS_OFFICER = "records_officer"


@dataclass(frozen=True)
class EntryValues:
    """What a rendition is made from.

    ``texts`` are the entry's texts by place (``subject``, ``body``,
    ``thread:<id>:body``, ...) as stored: findings' offsets refer to them.
    ``fields`` are the form fields (underscore fields are internal and never
    rendered).
    """

    texts: Mapping[str, str]
    fields: Mapping[str, object] = field(default_factory=dict)
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    postal_address: str | None = None


@dataclass(frozen=True)
class Removal:
    place: str  # "subject", "body", "field:<name>", "contact:email", ...
    kind: str
    reason: str
    start: int = -1  # offsets into the stored text; -1 for a whole value
    end: int = -1


@dataclass(frozen=True)
class Segment:
    text: str
    kind: str | None = None  # the PII kind of a kept or removed span, None for plain text
    removed: bool = False
    reason: str | None = None  # a removed segment's reason


@dataclass(frozen=True)
class ContactItem:
    """One line of the contact block: ``shown``, ``replaced``, ``withheld`` or ``absent``."""

    value: str | None
    state: str
    reason: str | None = None


@dataclass(frozen=True)
class Rendition:
    audience: str
    texts: Mapping[str, str]
    segments: Mapping[str, tuple[Segment, ...]]
    fields: tuple[tuple[str, str], ...]
    name: ContactItem
    email: ContactItem
    phone: ContactItem
    postal_address: ContactItem
    reply_to: str
    identity_shared: bool
    consent_event_id: int | None
    reason: str
    removals: tuple[Removal, ...]

    @property
    def subject(self) -> str:
        return self.texts.get("subject", "")

    @property
    def body(self) -> str:
        return self.texts.get("body", "")

    def text(self, place: str) -> str:
        return self.texts.get(place, "")


@dataclass(frozen=True)
class Release:
    """One automatic removal (``kind`` at ``place[start:end]`` of the stored text) that a
    records officer released to the public under law. It holds no value."""

    place: str
    start: int
    end: int
    kind: str


# -- patterns for the submitter's own contact values -----------------------------------


def email_pattern(email: str | None) -> re.Pattern[str] | None:
    """The address in any case, also ``mailto:``, ``%40`` and HTML-entity forms."""
    if email is None:
        return None
    e = email.strip().strip("<>").strip()
    if e.lower().startswith("mailto:"):
        e = e[len("mailto:") :]
    if len(e) < 3:
        return None
    local, at, domain = e.rpartition("@")
    if at and local and domain:
        return re.compile(
            re.escape(local) + r"(?:@|%40|&#0*64;|&#x0*40;)" + re.escape(domain), re.IGNORECASE
        )
    return re.compile(re.escape(e), re.IGNORECASE)


def name_pattern(name: str | None) -> re.Pattern[str] | None:
    """The name as whole words, any case, any run of whitespace between parts."""
    if name is None:
        return None
    parts = name.split()
    if len("".join(parts)) < 2 or len(" ".join(parts)) < 2:
        return None
    return re.compile(
        r"(?<!\w)" + r"\s+".join(re.escape(p) for p in parts) + r"(?!\w)", re.IGNORECASE
    )


def _phone_pattern(phone: str | None) -> re.Pattern[str] | None:
    # The same digits with any punctuation or spacing between them: a person
    # writes "(217) 555-0143" in the form and "217.555.0143" in the text.
    if phone is None:
        return None
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) >= 6:
        return re.compile(r"(?<![0-9])" + r"[^0-9A-Za-z\n]{0,3}".join(digits) + r"(?![0-9])")
    p = phone.strip()
    return re.compile(re.escape(p), re.IGNORECASE) if len(p) >= 3 else None


def _address_patterns(address: str | None) -> list[re.Pattern[str]]:
    # The whole address, and each of its lines (a street line alone identifies).
    if address is None:
        return []
    pieces = [address, *address.splitlines()]
    patterns: list[re.Pattern[str]] = []
    for piece in pieces:
        words = [w for w in re.split(r"[\s,]+", piece) if w]
        if len("".join(words)) < 4:
            continue
        patterns.append(re.compile(
            r"(?<!\w)" + r"[\s,]+".join(re.escape(w) for w in words) + r"(?!\w)",
            re.IGNORECASE))
    return patterns


def contact_patterns(values: EntryValues) -> dict[str, list[re.Pattern[str]]]:
    """The submitter's contact values as patterns, by kind."""
    email = email_pattern(values.email)
    name = name_pattern(values.name)
    phone = _phone_pattern(values.phone)
    return {
        "email": [email] if email else [],
        "name": [name] if name else [],
        "phone": [phone] if phone else [],
        "street_address": _address_patterns(values.postal_address),
    }


# The submitter's contact values as patterns, by kind (``contact_patterns``).
_Patterns = Mapping[str, list[re.Pattern[str]]]


# -- one text ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    replacement: str | None  # None: kept (highlighted), else what replaces it
    reason: str


def _merge(spans: list[_Span]) -> list[_Span]:
    # Removals win over kept spans; overlapping removals become one (first kind).
    removed = sorted((s for s in spans if s.replacement is not None),
                     key=lambda s: (s.start, -s.end))
    merged: list[_Span] = []
    for s in removed:
        if merged and s.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = _Span(last.start, max(last.end, s.end), last.kind, last.replacement,
                               last.reason)
        else:
            merged.append(s)
    kept = sorted((s for s in spans if s.replacement is None), key=lambda s: (s.start, -s.end))
    out = list(merged)
    for s in kept:
        if any(s.start < m.end and m.start < s.end for m in out):
            continue
        out.append(s)
    return sorted(out, key=lambda s: s.start)


def scrub(text: str, spans: Sequence[tuple[int, int, str, str | None, str]]
          ) -> tuple[str, tuple[Segment, ...], tuple[tuple[int, int, str, str], ...]]:
    """Apply (start, end, kind, replacement or None to keep, reason) spans to ``text``.

    Returns the new text, its segments and the removals (start, end, kind, reason).
    """
    n = len(text)
    clipped = [_Span(max(0, min(s, n)), max(0, min(e, n)), k, r, why)
               for s, e, k, r, why in spans]
    plan = _merge([s for s in clipped if s.end > s.start])
    segments: list[Segment] = []
    removals: list[tuple[int, int, str, str]] = []
    pos = 0
    for s in plan:
        if s.start > pos:
            segments.append(Segment(text[pos:s.start]))
        if s.replacement is None:
            segments.append(Segment(text[s.start:s.end], s.kind, reason=s.reason or None))
        else:
            segments.append(Segment(s.replacement, s.kind, removed=True, reason=s.reason))
            removals.append((s.start, s.end, s.kind, s.reason))
        pos = s.end
    if pos < n:
        segments.append(Segment(text[pos:]))
    return "".join(seg.text for seg in segments), tuple(segments), tuple(removals)


# -- the policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Policy:
    audience: Audience
    consented: bool
    relay: str
    marks: tuple[Mark, ...] = ()
    releases: tuple[Release, ...] = ()

    def contact_rule(self, kind: str) -> tuple[str | None, str] | None:
        """None: the submitter's own value of ``kind`` is kept; else (replacement, reason)."""
        a = self.audience
        if a is Audience.SUBMITTER:
            return None
        if a in (Audience.AGENCY, Audience.CC_AGENCY):
            if self.consented and kind in ("email", "name"):
                return None
            reason = "not-in-consent" if self.consented else "no-consent"
            if kind == "email":
                return self.relay, reason
            if kind == "name":
                return ANONYMOUS_NAME, reason
            return marker_for(kind), reason
        return marker_for(kind), reason_for(kind)

    def finding_rule(self, kind: str) -> tuple[str | None, str] | None:
        """None: a finding of ``kind`` is kept; else (replacement, reason)."""
        if kind in SENSITIVE_KINDS or kind not in (CONTACT_KINDS | _AGENCY_FLAGS):
            return marker_for(kind), reason_for(kind)  # P6 and unknown kinds: always
        a = self.audience
        if a is Audience.SUBMITTER:
            return None
        if a in (Audience.AGENCY, Audience.CC_AGENCY):
            if kind in _AGENCY_FLAGS or (self.consented and kind in ("email", "name")):
                return None
            return marker_for(kind), "not-in-consent" if self.consented else "no-consent"
        return marker_for(kind), reason_for(kind)

    @property
    def hides_contact(self) -> bool:
        return self.audience is not Audience.SUBMITTER


def _render_text(text: str, findings: Sequence[Finding] | None, policy: _Policy,
                 patterns: _Patterns, place: str
                 ) -> tuple[str, tuple[Segment, ...], list[tuple[int, int, str, str]]]:
    if findings is None:
        findings = detect(text, key=_DETECT_KEY)  # never looked at: fail closed, look now
    spans: list[tuple[int, int, str, str | None, str]] = []
    # The submitter's own values first: on an overlap they win (relay address,
    # not a generic marker, where the submitter's address stood).
    for kind, kind_patterns in patterns.items():
        rule = policy.contact_rule(kind)
        if rule is None:
            continue
        tag = _SUBMITTER_EMAIL if kind == "email" else kind
        for pattern in kind_patterns:
            spans.extend((m.start(), m.end(), tag, rule[0], rule[1])
                         for m in pattern.finditer(text))
    for f in findings:
        if not isinstance(f, Finding) or not isinstance(f.start, int) \
                or not isinstance(f.end, int):
            raise TypeError("findings must be Finding values")
        rule = policy.finding_rule(f.kind)
        spans.append((f.start, f.end, f.kind, None, "") if rule is None
                     else (f.start, f.end, f.kind, rule[0], rule[1]))
    spans = _apply_releases(spans, policy, place, text)
    for mark in policy.marks:
        spans.extend((start, end, "marked", WITHHELD_TEXT, mark_reason(mark.reason_code))
                     for start, end in mark_spans(mark, place, text))
    rendered, segments, removals = scrub(text, spans)
    segments = tuple(Segment(seg.text, "email", seg.removed, seg.reason)
                     if seg.kind == _SUBMITTER_EMAIL else seg for seg in segments)
    removals = tuple((s, e, "email" if k == _SUBMITTER_EMAIL else k, why)
                     for s, e, k, why in removals)
    # A released value may be the submitter's own name: it is not a trace left behind.
    checked = "\0".join(seg.text for seg in segments if seg.reason != RELEASED) \
        if policy.releases else rendered
    if policy.hides_contact and _trace_left(checked, policy, patterns):
        return (WITHHELD_TEXT, (Segment(WITHHELD_TEXT, "personal", removed=True,
                                        reason="redaction-failed"),),
                [(0, len(text), "personal", "redaction-failed")])
    return rendered, segments, list(removals)


def _apply_releases(spans: list[tuple[int, int, str, str | None, str]], policy: _Policy,
                    place: str, text: str) -> list[tuple[int, int, str, str | None, str]]:
    """Keep each released span whose removals (of exactly that span) are all releasable."""
    for release in policy.releases:
        if release.place != place or release.kind not in RELEASABLE_KINDS \
                or not 0 <= release.start < release.end <= len(text):
            continue
        exact = [s for s in spans if (s[0], s[1]) == (release.start, release.end)
                 and s[3] is not None]
        if not exact or any(s[2] != release.kind for s in exact):
            continue  # nothing removed there, another kind, the submitter's address (P5)
        spans = [s for s in spans if s not in exact]
        spans.append((release.start, release.end, exact[0][2], None, RELEASED))
    return spans


def _trace_left(rendered: str, policy: _Policy, patterns: _Patterns) -> bool:
    # Defence in depth: replacements next to each other must not re-form a value.
    cleaned = rendered.replace(policy.relay, "").replace(ANONYMOUS_NAME, "")
    return any(policy.contact_rule(kind) is not None and p.search(cleaned)
               for kind, kind_patterns in patterns.items() for p in kind_patterns)


def _field_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None if value is None else ("yes" if value else "no")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        parts = [_field_text(v) for v in value]
        return ", ".join(p for p in parts if p is not None)
    if isinstance(value, Mapping):
        pairs = [f"{k}: {_field_text(v)}" for k, v in value.items()
                 if isinstance(k, str) and _field_text(v) is not None]
        return "; ".join(pairs)
    return None


# -- the contact block ----------------------------------------------------------------------


def _contact(kind: str, value: str | None, policy: _Policy, reveal: bool
             ) -> tuple[ContactItem, Removal | None]:
    if value is None or not value.strip():
        if kind == "name" and policy.audience in (Audience.AGENCY, Audience.CC_AGENCY):
            return ContactItem(ANONYMOUS_NAME, "replaced"), None
        if kind == "email" and policy.audience in (Audience.AGENCY, Audience.CC_AGENCY):
            return ContactItem(policy.relay, "replaced"), None
        return ContactItem(None, "absent"), None
    a = policy.audience
    if a is Audience.PUBLIC:
        why = "public-record"
    elif a is Audience.RECORDS_OFFICER:
        if reveal:
            return ContactItem(value, "shown"), None
        why = "reveal-required"
    else:
        rule = policy.contact_rule(kind)
        if rule is None:
            return ContactItem(value, "shown"), None
        why = rule[1]
        if kind in ("email", "name"):
            return (ContactItem(rule[0], "replaced", why),
                    Removal(f"contact:{kind}", kind, why))
    return ContactItem(None, "withheld", why), Removal(f"contact:{kind}", kind, why)


# -- render ---------------------------------------------------------------------------------


def _withheld(audience: object, relay: str, reason: str) -> Rendition:
    nothing = ContactItem(None, "withheld", reason)
    return Rendition(
        audience=str(audience) if isinstance(audience, Audience) else "invalid",
        texts={"subject": WITHHELD_TEXT, "body": WITHHELD_TEXT},
        segments={p: (Segment(WITHHELD_TEXT, "personal", removed=True, reason=reason),)
                  for p in ("subject", "body")},
        fields=(), name=nothing, email=nothing, phone=nothing, postal_address=nothing,
        reply_to=relay if isinstance(relay, str) else "", identity_shared=False,
        consent_event_id=None, reason=reason,
        removals=(Removal("*", "personal", reason),),
    )


def _valid_relay(relay: object) -> bool:
    return (isinstance(relay, str) and "@" in relay
            and not any(c in relay for c in "\r\n\0<>, "))


def render(values: EntryValues, audience: Audience, *, consents: Sequence[ConsentEvent],
           findings: Mapping[str, Sequence[Finding]], agency_id: str | None,
           relay_address: str, at: datetime, reveal: bool = False,
           marks: Sequence[Mark] = (), releases: Sequence[Release] = ()) -> Rendition:
    """What ``audience`` may see of an entry (rules in the module docstring).

    ``agency_id`` is the agency the rendition is for (``agency``,
    ``cc_agency``). Places without findings are scanned here. ``reveal``
    shows a records officer the contact data (the caller logs it). ``marks``
    (records officers' redactions) apply to ``public`` and
    ``records_officer`` only, and so do ``releases`` (values released under law). Never
    raises: unknown or broken input yields a rendition with everything
    withheld (reason ``invalid-input``).
    """
    try:
        a = Audience(audience)
    except (ValueError, TypeError):
        return _withheld(audience, relay_address, "invalid-input")
    try:
        return _render(values, a, consents, findings, agency_id, relay_address, at,
                       reveal is True, tuple(marks), tuple(releases))
    except Exception:  # noqa: BLE001 - fail closed, by design
        return _withheld(a, relay_address, "invalid-input")


def _live_consent(consents: Sequence[ConsentEvent], agency_id: str | None,
                  at: datetime) -> ConsentEvent | None:
    if agency_id is None or isinstance(consents, str | bytes):
        return None
    try:
        return current_consent(list(consents), Purpose.SHARE_IDENTITY, agency_id, at)
    except (TypeError, ValueError):
        return None  # unreadable consent or time: as if none was given


def _render(values: EntryValues, audience: Audience, consents: Sequence[ConsentEvent],
            findings: Mapping[str, Sequence[Finding]], agency_id: str | None, relay: str,
            at: datetime, reveal: bool, marks: tuple[Mark, ...],
            releases: tuple[Release, ...] = ()) -> Rendition:
    if not isinstance(values, EntryValues) or not _valid_relay(relay) \
            or not isinstance(findings, Mapping):
        return _withheld(audience, relay, "invalid-input")
    for v in (values.name, values.email, values.phone, values.postal_address):
        if v is not None and not isinstance(v, str):
            return _withheld(audience, relay, "invalid-input")
    email_re = email_pattern(values.email)
    if email_re is not None and email_re.search(relay):
        return _withheld(audience, relay, "relay-contains-identity")
    grant = None
    if audience in (Audience.AGENCY, Audience.CC_AGENCY):
        grant = _live_consent(consents, agency_id, at)
    if not all(isinstance(m, Mark) for m in marks) \
            or not all(isinstance(r, Release) for r in releases):
        return _withheld(audience, relay, "invalid-input")
    officer_or_public = audience in (Audience.PUBLIC, Audience.RECORDS_OFFICER)
    policy = _Policy(audience, grant is not None, relay,
                     marks if officer_or_public else (),
                     releases if officer_or_public else ())
    patterns = contact_patterns(values)
    texts = _rendered_texts(values, findings, policy, patterns)
    if texts is None:
        return _withheld(audience, relay, "invalid-input")
    texts_by_place, segments, removals = texts
    fields, field_removals = _rendered_fields(values, findings, policy, patterns)
    contact, contact_removals = _contact_block(values, policy, reveal)
    reason, shared = _sharing(audience, grant is not None, reveal)
    reply_to = (contact["email"].value or relay) if (
        audience in (Audience.AGENCY, Audience.CC_AGENCY) and shared) else relay
    return Rendition(
        audience=audience.value, texts=texts_by_place, segments=segments, fields=tuple(fields),
        name=contact["name"], email=contact["email"], phone=contact["phone"],
        postal_address=contact["street_address"], reply_to=reply_to, identity_shared=shared,
        consent_event_id=grant.id if grant is not None else None, reason=reason,
        removals=(*removals, *field_removals, *contact_removals),
    )


def _rendered_texts(values: EntryValues, findings: Mapping[str, Sequence[Finding]],
                    policy: _Policy, patterns: _Patterns
                    ) -> tuple[dict[str, str], dict[str, tuple[Segment, ...]],
                               list[Removal]] | None:
    """Each text place (subject, body, ...) as rendered; None if a place is not text."""
    texts: dict[str, str] = {}
    segments: dict[str, tuple[Segment, ...]] = {}
    removals: list[Removal] = []
    for place, text in values.texts.items():
        if not isinstance(place, str) or not isinstance(text, str):
            return None
        found = findings.get(place)
        rendered, segs, removed = _render_text(text, found, policy, patterns, place)
        texts[place], segments[place] = rendered, segs
        removals.extend(Removal(place, k, why, s, e) for s, e, k, why in removed)
    texts.setdefault("subject", "")
    texts.setdefault("body", "")
    return texts, segments, removals


def _rendered_fields(values: EntryValues, findings: Mapping[str, Sequence[Finding]],
                     policy: _Policy, patterns: _Patterns
                     ) -> tuple[list[tuple[str, str]], list[Removal]]:
    """The form's own fields by name (not the ``_`` internal ones), rendered as text."""
    fields: list[tuple[str, str]] = []
    removals: list[Removal] = []
    for name, raw in sorted(values.fields.items(), key=lambda kv: str(kv[0])):
        if not isinstance(name, str) or name.startswith("_"):
            continue
        shown = _field_text(raw)
        if shown is None:
            continue
        place = f"field:{name}"
        rendered, _segs, removed = _render_text(shown, findings.get(place), policy, patterns,
                                                place)
        fields.append((name, rendered))
        removals.extend(Removal(place, k, why, s, e) for s, e, k, why in removed)
    return fields, removals


def _contact_block(values: EntryValues, policy: _Policy, reveal: bool
                   ) -> tuple[dict[str, ContactItem], list[Removal]]:
    contact: dict[str, ContactItem] = {}
    removals: list[Removal] = []
    for kind, value in (("name", values.name), ("email", values.email),
                        ("phone", values.phone), ("street_address", values.postal_address)):
        item, removal = _contact(kind, value, policy, reveal)
        contact[kind] = item
        if removal is not None:
            removals.append(removal)
    return contact, removals


def _sharing(audience: Audience, consented: bool, reveal: bool) -> tuple[str, bool]:
    """Why the audience sees the submitter's identity or not, and whether it does."""
    if audience in (Audience.AGENCY, Audience.CC_AGENCY):
        return ("consent", True) if consented else ("no-consent", False)
    if audience is Audience.SUBMITTER:
        return "own", True
    if audience is Audience.RECORDS_OFFICER:
        return ("revealed", True) if reveal else ("reveal-required", False)
    return "public-record", False


def search_text(values: EntryValues, findings: Mapping[str, Sequence[Finding]]) -> str:
    """The words an entry can be found by in the staff search: its subject and body with
    every span the public rendition removes left out (no markers either).

    A search over the stored texts would answer "is this address or name in an
    entry?" for a citizen the searching agency may not know (P5): an oracle. So
    the index holds no contact data, no P6 values and no detected PII at all:
    every finding and every occurrence of the submitter's own contact values
    goes, as in the ``public`` rendition (a test holds the two to the same words).
    It runs for every submission stored, so it cuts the spans directly instead
    of building a whole rendition. A text in which a contact value re-forms from
    what is left is not indexed at all (fails closed, like the renditions).
    """
    patterns = [p for kind_patterns in contact_patterns(values).values()
                for p in kind_patterns]
    kept: list[str] = []
    for place in ("subject", "body"):
        text = values.texts.get(place, "")
        found = findings.get(place)
        if found is None:
            found = detect(text, key=_DETECT_KEY)  # never looked at: look now
        spans = sorted([(f.start, f.end) for f in found]
                       + [m.span() for p in patterns for m in p.finditer(text)])
        pieces: list[str] = []
        pos = 0
        for start, end in spans:
            if start > pos:
                pieces.append(text[pos:start])
            pos = max(pos, end)
        pieces.append(text[pos:])
        left = " ".join(pieces)
        if any(p.search(left) for p in patterns):
            continue
        kept.append(left)
    return " ".join(" ".join(kept).split())
