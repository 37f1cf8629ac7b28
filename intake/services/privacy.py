"""The privacy service: consent ledger, relay addresses, access links, PII findings.

The decisions are pure (:mod:`intake.core.consent`); this module stores them:

- consent events are appended to a hash chain; current consent is derived
  from them each time, never updated in place. The disclosure gate
  (:mod:`intake.services.gate`) reads them and writes the other chain, the
  disclosure ledger; :func:`verify_chains` checks both;
- relay tokens stand for the submitter's address; access links give the
  submitter a private view. Only SHA-256 of an access token is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from intake.core import hashchain
from intake.core.consent import (
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    PolicyText,
    Purpose,
    current_consent,
    evidence_hash,
)
from intake.core.pii import Finding, detect
from intake.core.relay import new_relay_token, relay_address
from intake.db.inserts import InsertBatch, PreparedInsert
from intake.db.models import (
    AccessLink,
    ChainHead,
    ConsentEventRow,
    Disclosure,
    Event,
    PiiFinding,
    PolicyTextRow,
    RelayToken,
    utcnow,
)

CONSENT_CHAIN = "consent_events"
DISCLOSURE_CHAIN = "disclosures"


class PolicyTextConflict(ValueError):
    """A policy version already exists with a different text (texts are immutable)."""


# -- policy texts ------------------------------------------------------------------


def ensure_policy_text(session: Session, version: str, text: str) -> PolicyTextRow:
    """Store a policy text version once; the same version must always have the same text."""
    policy = PolicyText.create(version, text)
    row = session.scalar(select(PolicyTextRow).where(PolicyTextRow.version == version))
    if row is not None:
        if row.sha256 != policy.sha256:
            raise PolicyTextConflict(f"policy text {version!r} exists with a different text")
        return row
    row = PolicyTextRow(version=policy.version, text=policy.text, sha256=policy.sha256)
    session.add(row)
    session.flush()
    return row


# -- hash chains -------------------------------------------------------------------


def _lock_head(session: Session, chain: str) -> ChainHead:
    # populate_existing: a head read earlier in this session may have moved since
    # (another transaction); the locked row, not a cached object, is the truth.
    head = session.scalar(
        select(ChainHead).where(ChainHead.chain == chain).with_for_update()
        .execution_options(populate_existing=True)
    )
    if head is None:  # pragma: no cover - seeded by migration 0002
        raise RuntimeError(f"chain head {chain!r} missing; run `intake db upgrade`")
    return head


def _consent_fields(row: ConsentEventRow) -> dict[str, object]:
    return {
        "entry_id": row.entry_id, "action": row.action, "purpose": row.purpose,
        "recipient_class": row.recipient_class, "policy_version": row.policy_version,
        "method": row.method, "at": row.at, "evidence_sha256": row.evidence_sha256,
        "actor": row.actor,
    }


# The chained fields of a disclosure-ledger row (everything but id, seq and the hashes).
_DISCLOSURE_FIELDS = (
    "entry_id", "at", "nature", "purpose", "basis", "allowed", "reason", "include_identity",
    "recipient_kind", "recipient_id", "recipient_name", "recipient_address",
    "consent_event_id", "citation", "rule_id", "rules_sha256", "payload_sha256",
    "work_item_id", "actor",
)


def _disclosure_fields(row: Disclosure) -> dict[str, object]:
    return {name: getattr(row, name) for name in _DISCLOSURE_FIELDS}


def _chain_append(session: Session, chain: str, row: ConsentEventRow,
                  fields: Mapping[str, object]) -> None:
    head = _lock_head(session, chain)
    seq = head.seq + 1
    row.seq = seq
    row.prev_hash = head.head_hash
    row.row_hash = hashchain.link_hash(head.head_hash, seq, fields)
    session.add(row)
    head.seq, head.head_hash = seq, row.row_hash
    session.flush()


@dataclass(frozen=True)
class ChainReport:
    chain: str
    verdict: hashchain.ChainVerdict


def verify_chains(session: Session) -> list[ChainReport]:
    """Verify both chains against their stored rows and anchored heads."""
    reports = []
    for chain, model, fields_of in (
        (CONSENT_CHAIN, ConsentEventRow, _consent_fields),
        (DISCLOSURE_CHAIN, Disclosure, _disclosure_fields),
    ):
        stored: Sequence[Any] = session.scalars(
            select(model).order_by(model.id)
        ).all()
        rows = [
            hashchain.ChainRow(seq=r.seq, prev_hash=r.prev_hash, row_hash=r.row_hash,
                               fields=fields_of(r))
            for r in stored
        ]
        head = session.get(ChainHead, chain)
        expected = head.head_hash if head is not None and head.seq > 0 else None
        reports.append(ChainReport(chain, hashchain.verify_chain(rows, expected_head=expected)))
    return reports


# -- consent -------------------------------------------------------------------------


def record_consent(
    session: Session,
    *,
    entry_id: int,
    action: ConsentAction,
    purpose: Purpose,
    recipient_class: str,
    policy_version: str,
    method: ConsentMethod,
    evidence: bytes,
    at: datetime | None = None,
    actor: str = "submitter",
) -> ConsentEventRow:
    """Append a grant or withdrawal (validated by the core's ConsentEvent)."""
    when = at or utcnow()
    if session.scalar(select(PolicyTextRow.id).where(PolicyTextRow.version == policy_version)) \
            is None:
        raise ValueError(f"unknown policy text version {policy_version!r}")
    # Validates every field the way the pure core will read it back.
    ConsentEvent(id=0, action=action, purpose=purpose, recipient_class=recipient_class,
                 policy_version=policy_version, method=method, at=when,
                 evidence_sha256=evidence_hash(evidence))
    row = ConsentEventRow(
        entry_id=entry_id, action=ConsentAction(action).value, purpose=Purpose(purpose).value,
        recipient_class=recipient_class, policy_version=policy_version,
        method=ConsentMethod(method).value, at=when, evidence_sha256=evidence_hash(evidence),
        actor=actor,
    )
    _chain_append(session, CONSENT_CHAIN, row, _consent_fields(row))
    session.add(Event(entry_id=entry_id, kind=f"consent-{row.action}", actor=actor,
                      detail={"purpose": row.purpose, "recipient_class": row.recipient_class,
                              "policy_version": policy_version, "method": row.method,
                              "consent_event_seq": row.seq}))
    return row


def consent_events(session: Session, entry_id: int) -> list[ConsentEvent]:
    """The entry's consent events, in the order they took effect."""
    return consent_events_of(session, [entry_id])[entry_id]


def consent_events_of(session: Session, entry_ids: Sequence[int]
                      ) -> dict[int, list[ConsentEvent]]:
    """:func:`consent_events` of each entry, in one query."""
    session.flush()  # a plain SELECT does not autoflush; a consent just recorded must count
    events: dict[int, list[ConsentEvent]] = {entry_id: [] for entry_id in entry_ids}
    for r in session.connection().execute(_CONSENT_EVENTS_OF, {"entry_ids": list(entry_ids)}):
        events[r.entry_id].append(ConsentEvent(
            id=r.id, action=ConsentAction(r.action), purpose=Purpose(r.purpose),
            recipient_class=r.recipient_class, policy_version=r.policy_version,
            method=ConsentMethod(r.method), at=r.at, evidence_sha256=r.evidence_sha256))
    return events


_CONSENT = cast(Table, ConsentEventRow.__table__)
_CONSENT_EVENTS_OF = (
    select(_CONSENT.c.entry_id, _CONSENT.c.id, _CONSENT.c.action, _CONSENT.c.purpose,
           _CONSENT.c.recipient_class, _CONSENT.c.policy_version, _CONSENT.c.method,
           _CONSENT.c.at, _CONSENT.c.evidence_sha256)
    .where(_CONSENT.c.entry_id.in_(bindparam("entry_ids", expanding=True)))
    .order_by(_CONSENT.c.at, _CONSENT.c.id)
)


@dataclass(frozen=True)
class ConsentState:
    purpose: Purpose
    recipient_class: str
    live: ConsentEvent | None


def consent_states(session: Session, entry_id: int, at: datetime | None = None
                   ) -> list[ConsentState]:
    """For each (purpose, recipient class) ever mentioned, whether a grant is live now."""
    events = consent_events(session, entry_id)
    when = at or utcnow()
    seen: dict[tuple[Purpose, str], None] = {}
    for e in events:
        seen.setdefault((e.purpose, e.recipient_class), None)
    states = []
    for purpose, recipient_class in seen:
        if recipient_class == "agency":
            # General consent is live if no agency-specific withdrawal matters; show the
            # general grant's own state: last general event decides.
            general = [e for e in events if e.purpose == purpose and e.recipient_class == "agency"
                       and e.at <= when]
            live = general[-1] if general and general[-1].action == ConsentAction.GRANT else None
        else:
            live = current_consent(events, purpose, recipient_class, when)
        states.append(ConsentState(purpose, recipient_class, live))
    return states


# -- the disclosure ledger (written by :mod:`intake.services.gate`) ------------------------


def disclosures_for(session: Session, entry_id: int) -> Sequence[Disclosure]:
    return session.scalars(
        select(Disclosure).where(Disclosure.entry_id == entry_id).order_by(Disclosure.seq)
    ).all()


# -- relay addresses and access links ---------------------------------------------------


def relay_for(session: Session, entry_id: int, domain: str) -> str:
    """The entry's relay address, created on first use."""
    token = session.scalar(_RELAY_TOKEN_OF, {"e": entry_id})
    if token is None:
        # An entry's forward and its receipt may be sent at the same moment, each asking
        # for the address: one row wins, the other writer waits for it and reads it.
        _INSERT_RELAY_TOKEN.run(session.connection(), [
            {"token": new_relay_token(), "entry_id": entry_id, "created_at": utcnow()}])
        token = session.scalar(_RELAY_TOKEN_OF, {"e": entry_id})
    return relay_address(str(token), domain)


def relays_for(session: Session, entry_ids: Sequence[int], domain: str) -> dict[int, str]:
    """:func:`relay_for` of each entry: the existing addresses in one query, the few
    entries without one yet (not routed so far) one by one."""
    found = {int(entry_id): relay_address(str(token), domain) for entry_id, token in
             session.execute(select(RelayToken.entry_id, RelayToken.token)
                             .where(RelayToken.entry_id.in_(list(entry_ids))))}
    for entry_id in entry_ids:
        if entry_id not in found:
            found[entry_id] = relay_for(session, entry_id, domain)
    return found


def findings_of(session: Session, entry_ids: Sequence[int], place: str
                ) -> dict[int, list[Finding]]:
    """:func:`findings_for` of each entry at ``place``, in one query."""
    found: dict[int, list[Finding]] = {entry_id: [] for entry_id in entry_ids}
    for r in session.scalars(select(PiiFinding).where(PiiFinding.entry_id.in_(list(entry_ids)),
                                                      PiiFinding.place == place)
                             .order_by(PiiFinding.entry_id, PiiFinding.start)):
        found[r.entry_id].append(Finding(kind=r.kind, start=r.start, end=r.end,
                                         detector=r.detector, severity=r.severity,
                                         value_hash=r.value_hash))
    return found


_RELAY_TOKEN_OF = select(RelayToken.token).where(RelayToken.entry_id == bindparam("e"))
_INSERT_RELAY_TOKEN = PreparedInsert(cast(Table, RelayToken.__table__),
                                     ("token", "entry_id", "created_at"),
                                     on_conflict_nothing=("entry_id",))


def entry_for_relay_token(session: Session, token: str) -> int | None:
    return session.scalar(select(RelayToken.entry_id).where(RelayToken.token == token.lower()))


def access_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_access_link(session: Session, entry_id: int) -> str:
    """A new private-link token for the submitter; shown once, stored only as a hash."""
    return create_access_links(session, [entry_id])[0]


def create_access_links(session: Session, entry_ids: Sequence[int]) -> list[str]:
    """:func:`create_access_link` for each entry id, in one INSERT."""
    batch = InsertBatch()
    tokens = create_access_links_in(batch, entry_ids)
    batch.run(session.connection())
    return tokens


def create_access_links_in(batch: InsertBatch, entry_ids: Sequence[int]) -> list[str]:
    """:func:`create_access_links` as part of ``batch``: the links work once it has run
    (and its transaction committed)."""
    tokens = new_access_tokens(len(entry_ids))
    now = utcnow()
    # Every confirmation page issues one: a prepared INSERT, no ORM flush.
    batch.add(ACCESS_LINKS_INSERT, [access_link_row(access_token_digest(token), entry_id, now)
                                    for token, entry_id in zip(tokens, entry_ids, strict=True)])
    return tokens


def new_access_tokens(count: int) -> list[str]:
    """Fresh status-link tokens (shown once, stored only as :func:`access_token_digest`)."""
    return [secrets.token_urlsafe(32) for _ in range(count)]


def access_link_row(digest: str, entry_id: int, now: datetime) -> dict[str, Any]:
    return {"token_sha256": digest, "entry_id": entry_id, "created_at": now}


ACCESS_LINKS_INSERT = PreparedInsert(cast(Table, AccessLink.__table__),
                                     ("token_sha256", "entry_id", "created_at"))


def entry_for_access_token(session: Session, token: str) -> int | None:
    if not token or len(token) > 128:
        return None
    return session.scalar(
        select(AccessLink.entry_id).where(AccessLink.token_sha256 == access_token_digest(token))
    )


# -- PII findings ----------------------------------------------------------------------


def detect_places(places: Mapping[str, str], key: bytes) -> dict[str, list[Finding]]:
    """The PII detector's findings in each named text (``{"subject": ..., "body": ...}``)."""
    return {place: detect(text, key=key) for place, text in places.items() if text}


def store_findings(batch: InsertBatch,
                   found: Sequence[tuple[int, Mapping[str, Sequence[Finding]]]]) -> None:
    """Store where PII was found, as part of ``batch`` (the caller runs it): for each
    ``(entry id, place -> findings)``, kind, place, detector and keyed hash; never the
    value. The one writer of ``pii_findings``."""
    batch.add(FINDINGS_INSERT, [
        {"entry_id": entry_id, "place": place, "kind": f.kind, "start": f.start,
         "end": f.end, "detector": f.detector, "severity": f.severity,
         "value_hash": f.value_hash}
        for entry_id, findings in found for place, places in findings.items() for f in places])


FINDINGS_INSERT = PreparedInsert(cast(Table, PiiFinding.__table__), (
    "entry_id", "place", "kind", "start", "end", "detector", "severity", "value_hash"))


def findings_for(session: Session, entry_id: int, place: str) -> list[Finding]:
    rows = session.scalars(select(PiiFinding).where(PiiFinding.entry_id == entry_id,
                                                    PiiFinding.place == place)
                           .order_by(PiiFinding.start))
    return [Finding(kind=r.kind, start=r.start, end=r.end, detector=r.detector,
                    severity=r.severity, value_hash=r.value_hash) for r in rows]


def findings_by_place(session: Session, entry_id: int) -> dict[str, list[Finding]]:
    """All of an entry's findings in one query, grouped by place, in text order."""
    grouped: dict[str, list[Finding]] = {}
    rows = session.scalars(select(PiiFinding).where(PiiFinding.entry_id == entry_id)
                           .order_by(PiiFinding.place, PiiFinding.start))
    for r in rows:
        grouped.setdefault(r.place, []).append(
            Finding(kind=r.kind, start=r.start, end=r.end, detector=r.detector,
                    severity=r.severity, value_hash=r.value_hash))
    return grouped
