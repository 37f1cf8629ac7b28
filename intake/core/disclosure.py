"""The disclosure gate: one decision function, one rendition function.

Every time anything derived from a submission would leave the intake system
(a reply, a redirect to another agency, a legally required disclosure, a
statistics export), the caller asks :func:`decide` and writes the
:class:`Decision` to the ledger. :func:`render_for_recipient` then produces
the outgoing message that decision permits, replacing the submitter's
address with a relay address when identity may not travel.

Reasons (stable strings; the ledger and tests rely on them):

=========================  ====================================================
``forbidden-purpose``      sale / lease / marketing: refused whatever the consent
``notice``                 respond to the submitter; redirect (content only)
``respond-only-to-submitter``  a response addressed to anyone but the submitter
``consent``                a live share-identity consent covers the agency
``no-consent``             share-identity without a live consent
``law``                    legal obligation with a citation
``citation-required``      legal obligation without a plausible citation
``aggregate``              statistics without personal data
``aggregate-only``         statistics asked for personal data
``recipient-not-allowed``  that kind of recipient is not allowed for the purpose
``invalid-purpose``        not a :class:`Purpose`
``invalid-recipient``      not a :class:`Recipient`, or an agency without valid id
``invalid-time``           ``at`` is not a timezone-aware datetime
``invalid-consent-events`` the consent events are not ConsentEvent values
``internal-error``         anything unexpected: fail closed
=========================  ====================================================

Pure standard library: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from intake.core.consent import (
    FORBIDDEN_PURPOSES,
    REQUIRED_BASIS,
    Basis,
    ConsentEvent,
    Purpose,
    current_consent,
    normalize_agency_id,
)
from intake.core.rendition import ANONYMOUS_NAME, scrub
from intake.core.rendition import email_pattern as _email_pattern
from intake.core.rendition import name_pattern as _name_pattern

__all__ = [
    "ANONYMOUS_NAME",
    "RECIPIENT_KINDS",
    "Decision",
    "DisclosureRefused",
    "OutgoingMessage",
    "Recipient",
    "Submitter",
    "decide",
    "render_for_recipient",
    "valid_citation",
]

RECIPIENT_KINDS: frozenset[str] = frozenset(
    {"agency", "submitter", "public", "statistics", "third-party"}
)

#: Who may receive what, beyond the purpose's basis.
_ALLOWED_KINDS: dict[Purpose, frozenset[str]] = {
    Purpose.RESPOND: frozenset({"submitter"}),
    Purpose.REDIRECT: frozenset({"agency"}),
    Purpose.SHARE_IDENTITY: frozenset({"agency"}),
    # A court order or statute may name an agency or an outside body (a court,
    # law enforcement), or make a value public: a records officer's release of
    # personal information on the public records portal under a cited law (P3,
    # P9). Like every legal disclosure it needs a citation; never a statistics sink.
    Purpose.LEGAL: frozenset({"agency", "third-party", "public"}),
    Purpose.STATISTICS: frozenset({"statistics"}),
}

_CITATION_MAX = 200


@dataclass(frozen=True)
class Recipient:
    kind: str  # "agency" | "submitter" | "public" | "statistics" | "third-party"
    id: str
    name: str
    address: str


@dataclass(frozen=True)
class Decision:
    """The gate's answer. Refusals never carry ``include_identity=True``.

    ``purpose`` is None only when the caller passed something that is not a
    :class:`Purpose` (reason ``invalid-purpose``).
    """

    allowed: bool
    reason: str
    basis: Basis
    purpose: Purpose | None
    include_identity: bool
    consent_event_id: int | None
    citation: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.allowed, bool) or not isinstance(self.include_identity, bool):
            raise TypeError("allowed and include_identity must be bools")
        if not self.allowed and self.include_identity:
            raise ValueError("a refused decision cannot include identity")
        if self.allowed and (self.purpose is None or self.purpose in FORBIDDEN_PURPOSES):
            raise ValueError("a forbidden or unknown purpose can never be allowed")


class DisclosureRefused(Exception):
    """Raised by :func:`render_for_recipient` for a refused decision."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def valid_citation(citation: object) -> str | None:
    """The stripped citation if it plausibly cites a law, else None.

    At least one letter and one digit, at most 200 characters, no control
    characters (it goes into the ledger and possibly into headers).
    """
    if not isinstance(citation, str):
        return None
    c = citation.strip()
    if not c or len(c) > _CITATION_MAX:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in c):
        return None
    if not any(ch.isalpha() for ch in c) or not any(ch.isdigit() for ch in c):
        return None
    return c


def _refuse(reason: str, purpose: Purpose | None, basis: Basis | None = None) -> Decision:
    if basis is None:
        basis = REQUIRED_BASIS[purpose] if purpose is not None else Basis.FORBIDDEN
    return Decision(
        allowed=False,
        reason=reason,
        basis=basis,
        purpose=purpose,
        include_identity=False,
        consent_event_id=None,
        citation=None,
    )


def _allow(
    reason: str,
    purpose: Purpose,
    basis: Basis,
    *,
    include_identity: bool,
    consent_event_id: int | None = None,
    citation: str | None = None,
) -> Decision:
    return Decision(
        allowed=True,
        reason=reason,
        basis=basis,
        purpose=purpose,
        include_identity=include_identity,
        consent_event_id=consent_event_id,
        citation=citation,
    )


def decide(
    *,
    purpose: Purpose,
    recipient: Recipient,
    consent_events: Sequence[ConsentEvent],
    at: datetime,
    citation: str | None = None,
    personal: bool = True,
) -> Decision:
    """Decide whether a message (or data) may go to ``recipient`` for ``purpose``.

    Never raises: unexpected input yields a refusal with a reason.
    ``include_identity`` says whether the submitter's name and address may
    reach the recipient; when False the caller must send the rendition from
    :func:`render_for_recipient`.
    """
    try:
        try:
            p = Purpose(purpose)
        except (ValueError, TypeError):
            return _refuse("invalid-purpose", None)
        return _decide(p, recipient, consent_events, at, citation, personal)
    except Exception:  # noqa: BLE001 - fail closed, by design
        try:
            p_known: Purpose | None = Purpose(purpose)
        except Exception:  # noqa: BLE001
            p_known = None
        return _refuse("internal-error", p_known)


def _decide(
    purpose: Purpose,
    recipient: object,
    consent_events: object,
    at: object,
    citation: object,
    personal: object,
) -> Decision:
    if purpose in FORBIDDEN_PURPOSES:
        return _refuse("forbidden-purpose", purpose)

    if not isinstance(recipient, Recipient) or not all(
        isinstance(v, str)
        for v in (recipient.kind, recipient.id, recipient.name, recipient.address)
    ):
        return _refuse("invalid-recipient", purpose)
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        return _refuse("invalid-time", purpose)
    if isinstance(consent_events, (str, bytes)) or not isinstance(consent_events, Sequence):
        return _refuse("invalid-consent-events", purpose)
    events = list(consent_events)
    if not all(isinstance(e, ConsentEvent) for e in events):
        return _refuse("invalid-consent-events", purpose)

    if purpose is Purpose.RESPOND:
        if recipient.kind != "submitter":
            return _refuse("respond-only-to-submitter", purpose)
        return _allow("notice", purpose, Basis.NOTICE, include_identity=True)

    if recipient.kind not in _ALLOWED_KINDS[purpose]:
        return _refuse("recipient-not-allowed", purpose)

    if purpose is Purpose.REDIRECT or purpose is Purpose.SHARE_IDENTITY:
        agency = normalize_agency_id(recipient.id)
        if agency is None:
            return _refuse("invalid-recipient", purpose)
        grant = current_consent(events, Purpose.SHARE_IDENTITY, agency, at)
        if grant is not None:
            return _allow(
                "consent", purpose, Basis.CONSENT, include_identity=True, consent_event_id=grant.id
            )
        if purpose is Purpose.REDIRECT:
            return _allow("notice", purpose, Basis.NOTICE, include_identity=False)
        return _refuse("no-consent", purpose)

    if purpose is Purpose.LEGAL:
        cited = valid_citation(citation)
        if cited is None:
            return _refuse("citation-required", purpose)
        # A release to the public is one value the public rendition shows (never the
        # submitter's address, P5): the submitter's identity does not travel with it.
        return _allow("law", purpose, Basis.LAW, include_identity=recipient.kind != "public",
                      citation=cited)

    if purpose is Purpose.STATISTICS:
        if personal is not False:
            return _refuse("aggregate-only", purpose)
        return _allow("aggregate", purpose, Basis.NOTICE, include_identity=False)

    return _refuse("internal-error", purpose)  # pragma: no cover - every purpose handled above


@dataclass(frozen=True)
class OutgoingMessage:
    from_name: str
    from_address: str
    reply_to: str
    subject: str
    body: str
    quoted_text: str
    attachment_names: tuple[str, ...]


@dataclass(frozen=True)
class Submitter:
    name: str | None
    email: str | None


def _redact(
    text: str, email_re: re.Pattern[str] | None, name_re: re.Pattern[str] | None, relay: str
) -> str:
    # The address becomes the relay address and the name "Member of the public",
    # by the one scrubber the renditions use (an address wins over a name inside it).
    spans: list[tuple[int, int, str, str | None, str]] = []
    for pattern, kind, replacement in ((email_re, "email", relay),
                                       (name_re, "name", ANONYMOUS_NAME)):
        if pattern is not None:
            spans.extend((m.start(), m.end(), kind, replacement, "no-consent")
                         for m in pattern.finditer(text))
    return scrub(text, spans)[0]


def render_for_recipient(
    message: OutgoingMessage, submitter: Submitter, decision: Decision, relay_address: str
) -> OutgoingMessage:
    """The message as ``decision`` allows it to reach its recipient.

    * Refused decision: raises :class:`DisclosureRefused`.
    * ``include_identity`` True: the message unchanged (reply_to as given).
    * ``include_identity`` False: from_address and reply_to become the relay
      address; every occurrence of the submitter's address (any case, also
      in ``mailto:``, angle brackets, or with ``@`` written ``%40``) in
      subject, body, quoted text and attachment names becomes the relay
      address; the submitter's name (>= 2 characters, whole words, any case)
      becomes "Member of the public" in those fields; from_name becomes
      "Member of the public" outright (a display name is the submitter's
      own choice and may not match ``submitter.name``).

    Not handled: an address split across lines, or names/addresses inside
    attachment *contents* (only names of attachments are seen here).
    """
    if not isinstance(decision, Decision):
        raise TypeError("decision must be a Decision")
    if not decision.allowed:
        raise DisclosureRefused(decision)
    if decision.include_identity:
        return message
    if (
        not isinstance(relay_address, str)
        or "@" not in relay_address
        or any(c in relay_address for c in "\r\n\0<>, ")
    ):
        raise ValueError("relay_address must be a bare e-mail address")

    email_re = _email_pattern(submitter.email)
    name_re = _name_pattern(submitter.name)
    if email_re is not None and email_re.search(relay_address):
        raise DisclosureRefused(replace(decision, allowed=False, reason="relay-contains-identity"))

    def red(text: str) -> str:
        return _redact(text, email_re, name_re, relay_address)

    rendered = OutgoingMessage(
        from_name=ANONYMOUS_NAME,
        from_address=relay_address,
        reply_to=relay_address,
        subject=red(message.subject),
        body=red(message.body),
        quoted_text=red(message.quoted_text),
        attachment_names=tuple(red(n) for n in message.attachment_names),
    )
    if email_re is not None:
        texts = [rendered.subject, rendered.body, rendered.quoted_text, *rendered.attachment_names]
        # Defence in depth: nothing above should leave the address behind.
        if any(email_re.search(t.replace(relay_address, "")) for t in texts):
            raise DisclosureRefused(replace(decision, allowed=False, reason="redaction-failed"))
    return rendered
