"""Purposes, legal bases and consent events.

The state's promises, as data:

* personal information is used only to respond (``RESPOND``, on notice);
* a message may be redirected to a better-placed agency (``REDIRECT``, on
  notice, content only);
* the submitter's e-mail address reaches another agency only with the
  person's consent (``SHARE_IDENTITY``);
* disclosure where law requires it, with a citation (``LEGAL``);
* aggregate statistics without personal data (``STATISTICS``);
* never sold, leased or used for marketing (``SALE``, ``LEASE``,
  ``MARKETING``): forbidden whatever anyone consented to.

Consent is never stored as a flag. It is *derived* from an append-only list
of :class:`ConsentEvent` values by :func:`current_consent`, so the answer for
any past instant can be recomputed and audited.

Pure standard library: no I/O, no framework imports.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "AGENCY_CLASS",
    "FORBIDDEN_PURPOSES",
    "REQUIRED_BASIS",
    "Basis",
    "ConsentAction",
    "ConsentEvent",
    "ConsentMethod",
    "PolicyText",
    "Purpose",
    "current_consent",
    "evidence_hash",
    "normalize_agency_id",
]


class Purpose(StrEnum):
    """What a piece of personal information would be used for."""

    RESPOND = "respond"
    REDIRECT = "redirect"
    SHARE_IDENTITY = "share-identity"
    LEGAL = "legal-obligation"
    STATISTICS = "statistics"
    SALE = "sale"
    LEASE = "lease"
    MARKETING = "marketing"


class Basis(StrEnum):
    """The legal basis a purpose needs."""

    NOTICE = "notice"
    CONSENT = "consent"
    LAW = "law"
    FORBIDDEN = "forbidden"


REQUIRED_BASIS: Mapping[Purpose, Basis] = MappingProxyType(
    {
        Purpose.RESPOND: Basis.NOTICE,
        Purpose.REDIRECT: Basis.NOTICE,
        Purpose.SHARE_IDENTITY: Basis.CONSENT,
        Purpose.LEGAL: Basis.LAW,
        Purpose.STATISTICS: Basis.NOTICE,
        Purpose.SALE: Basis.FORBIDDEN,
        Purpose.LEASE: Basis.FORBIDDEN,
        Purpose.MARKETING: Basis.FORBIDDEN,
    }
)

#: Purposes no consent can ever enable.
FORBIDDEN_PURPOSES: frozenset[Purpose] = frozenset(
    p for p, b in REQUIRED_BASIS.items() if b is Basis.FORBIDDEN
)


class ConsentAction(StrEnum):
    GRANT = "grant"
    WITHDRAW = "withdraw"


class ConsentMethod(StrEnum):
    WEB_CHECKBOX = "web-checkbox"
    EMAIL_REPLY = "email-reply"
    STAFF_RECORDED = "staff-recorded"


#: Recipient class meaning "any state agency".
AGENCY_CLASS = "agency"
_AGENCY_PREFIX = AGENCY_CLASS + ":"
_AGENCY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def normalize_agency_id(recipient_id: object) -> str | None:
    """Return the bare agency id of ``"dot"`` or ``"agency:dot"``, else None.

    ``"agency"`` itself is refused: it names every agency, not one.
    Matching is exact (case-sensitive): widening consent by case folding
    would be failing open.
    """
    if not isinstance(recipient_id, str):
        return None
    rid = (
        recipient_id[len(_AGENCY_PREFIX) :]
        if recipient_id.startswith(_AGENCY_PREFIX)
        else recipient_id
    )
    if _AGENCY_ID_RE.fullmatch(rid) is None or rid == AGENCY_CLASS:
        return None  # a bare "agency" is the class of all agencies, not one agency
    return rid


def _valid_recipient_class(value: object) -> bool:
    if value == AGENCY_CLASS:
        return True
    return (
        isinstance(value, str)
        and value.startswith(_AGENCY_PREFIX)
        and normalize_agency_id(value) is not None
    )


def evidence_hash(evidence: bytes) -> str:
    """SHA-256 (lowercase hex) of the evidence bytes of a consent event.

    The evidence itself (the form submission, the e-mail reply, the staff
    note) is kept elsewhere; the event carries only this digest.
    """
    if not isinstance(evidence, (bytes, bytearray, memoryview)):
        raise TypeError("evidence must be bytes")
    return hashlib.sha256(bytes(evidence)).hexdigest()


@dataclass(frozen=True)
class PolicyText:
    """One published version of the privacy notice / consent wording."""

    version: str
    text: str
    sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise ValueError("policy version must be a non-empty string")
        if not isinstance(self.text, str):
            raise TypeError("policy text must be a string")
        expected = hashlib.sha256(self.text.encode("utf-8")).hexdigest()
        if self.sha256 != expected:
            raise ValueError("sha256 does not match the policy text")

    @classmethod
    def create(cls, version: str, text: str) -> PolicyText:
        if not isinstance(text, str):
            raise TypeError("policy text must be a string")
        return cls(
            version=version, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
        )


def _require_aware(at: object, what: str) -> datetime:
    if not isinstance(at, datetime):
        raise TypeError(f"{what} must be a datetime")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class ConsentEvent:
    """One grant or withdrawal, as recorded. Immutable; never updated.

    ``recipient_class`` is ``"agency"`` (any state agency) or
    ``"agency:<id>"`` (one agency). Construction validates every field and
    normalises ``at`` to UTC and string enum values to their enums.
    """

    id: int
    action: ConsentAction
    purpose: Purpose
    recipient_class: str
    policy_version: str
    method: ConsentMethod
    at: datetime
    evidence_sha256: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, int) or isinstance(self.id, bool):
            raise TypeError("consent event id must be an int")
        object.__setattr__(self, "action", ConsentAction(self.action))
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        object.__setattr__(self, "method", ConsentMethod(self.method))
        if not _valid_recipient_class(self.recipient_class):
            raise ValueError(f"invalid recipient class: {self.recipient_class!r}")
        if not isinstance(self.policy_version, str) or not self.policy_version.strip():
            raise ValueError("policy_version must be a non-empty string")
        object.__setattr__(self, "at", _require_aware(self.at, "at"))
        if (
            not isinstance(self.evidence_sha256, str)
            or _SHA256_RE.fullmatch(self.evidence_sha256) is None
        ):
            raise ValueError("evidence_sha256 must be 64 lowercase hex digits")


def current_consent(
    events: Iterable[ConsentEvent], purpose: Purpose, recipient_id: str, at: datetime
) -> ConsentEvent | None:
    """The grant that is live for ``purpose`` towards one agency at ``at``.

    Derived, never stored. Events with ``event.at <= at`` are replayed in
    ``(at, id)`` order; the others are ignored. For the agency ``X``
    (``recipient_id`` is ``"X"`` or ``"agency:X"``) an event *covers* X when
    its class is ``"agency"`` or ``"agency:X"``. The last covering event
    decides:

    * a grant of ``"agency"`` or ``"agency:X"`` makes consent live;
    * withdrawing ``"agency"`` withdraws every grant (general and specific);
    * withdrawing ``"agency:X"`` removes X's specific grant *and* blocks X
      under a general grant made earlier; other agencies are unaffected;
    * a later grant (general or specific) re-enables X.

    Returns the live grant event, or ``None``. For SALE, LEASE and
    MARKETING the answer is always ``None``: those purposes are forbidden
    whatever anyone consented to. An invalid ``recipient_id`` yields
    ``None``; a naive or non-datetime ``at`` raises (callers must not guess).
    """
    when = _require_aware(at, "at")
    purpose = Purpose(purpose)
    if purpose in FORBIDDEN_PURPOSES:
        return None
    agency = normalize_agency_id(recipient_id)
    if agency is None:
        return None
    specific = _AGENCY_PREFIX + agency

    relevant: list[ConsentEvent] = []
    for event in events:
        if not isinstance(event, ConsentEvent):
            raise TypeError("consent events must be ConsentEvent values")
        if event.purpose is purpose and event.at <= when:
            relevant.append(event)
    relevant.sort(key=lambda e: (e.at, e.id))

    live: ConsentEvent | None = None
    for event in relevant:
        if event.recipient_class not in (AGENCY_CLASS, specific):
            continue
        live = event if event.action is ConsentAction.GRANT else None
    return live
