"""The privacy service: consent ledger, the one disclosure gate, relay and access links.

The decisions are pure (:mod:`intake.core.consent`,
:mod:`intake.core.disclosure`); this module stores them:

- consent events are appended to a hash chain; current consent is derived
  from them each time, never updated in place;
- :func:`disclose` asks the core, then writes a disclosure-ledger row (allowed
  or refused) and, when allowed and something is to be sent, the outbox work
  item, in the caller's transaction: no ledger row, no send. Any error rolls
  both back, so it fails closed;
- :func:`recheck` decides again at send time with the consent events of that
  moment, so a withdrawal stops messages already queued;
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

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from intake.core import hashchain
from intake.core.consent import (
    Basis,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    PolicyText,
    Purpose,
    current_consent,
    evidence_hash,
)
from intake.core.disclosure import Decision, Recipient, decide
from intake.core.pii import Finding, detect
from intake.core.relay import new_relay_token, relay_address
from intake.db.models import (
    AccessLink,
    ChainHead,
    ConsentEventRow,
    Disclosure,
    Event,
    PiiFinding,
    PolicyTextRow,
    RelayToken,
    WorkItem,
    utcnow,
)
from intake.db.prepared import InsertBatch, PreparedInsert
from intake.jobs.workitems import PENDING_SENDS, add_work_item, enqueue, enqueue_many

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
    # populate_existing: the head may also be advanced by plain UPDATEs
    # (:func:`disclose_all`); an object cached in the session must not go stale.
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


def _ledger_values(*, entry_id: int, at: datetime, nature: str, purpose: Purpose,
                   decision: Decision, recipient: Recipient, rule_id: str | None,
                   rules_sha256: str | None, payload_sha256: str | None,
                   work_item_id: int | None, actor: str) -> dict[str, Any]:
    """The chained fields of the ledger row for one decision of the gate."""
    return {
        "entry_id": entry_id, "at": at, "nature": nature,
        "purpose": decision.purpose.value if decision.purpose else str(purpose),
        "basis": decision.basis.value, "allowed": decision.allowed, "reason": decision.reason,
        "include_identity": decision.include_identity, "recipient_kind": recipient.kind,
        "recipient_id": recipient.id, "recipient_name": recipient.name,
        "recipient_address": recipient.address, "consent_event_id": decision.consent_event_id,
        "citation": decision.citation, "rule_id": rule_id, "rules_sha256": rules_sha256,
        "payload_sha256": payload_sha256, "work_item_id": work_item_id, "actor": actor,
    }


def _disclosure_event(entry_id: int, seq: int, nature: str, purpose: str, recipient_id: str,
                      decision: Decision, actor: str, at: datetime) -> dict[str, Any]:
    return {"entry_id": entry_id, "at": at, "actor": actor,
            "kind": "disclosure" if decision.allowed else "disclosure-refused",
            "detail": {"disclosure_seq": seq, "nature": nature, "purpose": purpose,
                       "recipient": recipient_id, "reason": decision.reason}}


def _chain_append(session: Session, chain: str, row: ConsentEventRow | Disclosure,
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
    session.flush()  # a plain SELECT does not autoflush; a consent just recorded must count
    rows = session.connection().execute(_CONSENT_EVENTS, {"entry_id": entry_id})
    return [
        ConsentEvent(id=r.id, action=ConsentAction(r.action), purpose=Purpose(r.purpose),
                     recipient_class=r.recipient_class, policy_version=r.policy_version,
                     method=ConsentMethod(r.method), at=r.at, evidence_sha256=r.evidence_sha256)
        for r in rows
    ]


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


# -- the gate ----------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    disclosure: Disclosure
    work_item: WorkItem | None


def disclose(
    session: Session,
    *,
    entry_id: int,
    recipient: Recipient,
    purpose: Purpose,
    nature: str,
    citation: str | None = None,
    personal: bool = True,
    rule_id: str | None = None,
    rules_sha256: str | None = None,
    payload_sha256: str | None = None,
    work_kind: str | None = None,
    work_payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    actor: str = "system",
    at: datetime | None = None,
) -> GateResult:
    """The one gate: decide, write the ledger row, and (if allowed) the outbox item."""
    when = at or utcnow()
    decision = decide(purpose=purpose, recipient=recipient,
                      consent_events=consent_events(session, entry_id), at=when,
                      citation=citation, personal=personal)
    item = None
    if decision.allowed and work_kind is not None:
        payload = dict(work_payload or {})
        item = add_work_item(
            session, work_kind, entry_id=entry_id,
            dedupe_key=dedupe_key or f"{work_kind}:{entry_id}:{recipient.kind}:{recipient.id}",
            payload=payload,
        )
    row = Disclosure(**_ledger_values(
        entry_id=entry_id, at=when, nature=nature, purpose=purpose, decision=decision,
        recipient=recipient, rule_id=rule_id, rules_sha256=rules_sha256,
        payload_sha256=payload_sha256, work_item_id=item.id if item is not None else None,
        actor=actor))
    _chain_append(session, DISCLOSURE_CHAIN, row, _disclosure_fields(row))
    if item is not None:
        item.payload = {**item.payload, "disclosure_id": row.id}
    event = _disclosure_event(entry_id, row.seq, nature, row.purpose, recipient.id, decision,
                              actor, when)
    session.add(Event(**event))
    return GateResult(decision, row, item)


@dataclass(frozen=True)
class DisclosureRequest:
    """One disclosure for :func:`disclose_all` (the arguments of :func:`disclose`)."""

    recipient: Recipient
    purpose: Purpose
    nature: str
    work_kind: str | None = None
    dedupe_key: str | None = None
    work_payload: Mapping[str, Any] | None = None
    citation: str | None = None
    personal: bool = True
    rule_id: str | None = None
    rules_sha256: str | None = None
    payload_sha256: str | None = None
    actor: str = "system"


_DISCLOSURES = cast(Table, Disclosure.__table__)
_WORK_ITEMS = cast(Table, WorkItem.__table__)
_HEADS = cast(Table, ChainHead.__table__)
_CONSENT = cast(Table, ConsentEventRow.__table__)
# (SQLite renders no FOR UPDATE: its transactions here begin IMMEDIATE, the write lock.)
_LOCK_HEAD = select(_HEADS.c.seq, _HEADS.c.head_hash).where(
    _HEADS.c.chain == bindparam("c")).with_for_update()
_MOVE_HEAD = (update(_HEADS).where(_HEADS.c.chain == bindparam("c"))
              .values(seq=bindparam("new_seq"), head_hash=bindparam("new_hash")))
_INSERT_DISCLOSURES = insert(_DISCLOSURES).returning(_DISCLOSURES.c.id,
                                                     sort_by_parameter_order=True)
_ITEM_PAYLOAD = select(_WORK_ITEMS.c.payload).where(_WORK_ITEMS.c.id == bindparam("item_id"))
_SET_ITEM_PAYLOAD = (update(_WORK_ITEMS).where(_WORK_ITEMS.c.id == bindparam("item_id"))
                     .values(payload=bindparam("new_payload")))
_INSERT_EVENTS = insert(cast(Table, Event.__table__))
_CONSENT_EVENTS = (
    select(_CONSENT.c.id, _CONSENT.c.action, _CONSENT.c.purpose, _CONSENT.c.recipient_class,
           _CONSENT.c.policy_version, _CONSENT.c.method, _CONSENT.c.at,
           _CONSENT.c.evidence_sha256)
    .where(_CONSENT.c.entry_id == bindparam("entry_id"))
    .order_by(_CONSENT.c.at, _CONSENT.c.id)
)


def _append_ledger(conn: Connection, when: datetime,
                   chained: Sequence[tuple[int, DisclosureRequest, Decision, int | None]]
                   ) -> list[int]:
    """Append a ledger row for each (entry, request, decision, work item), in order, to
    the disclosure chain (its head locked and moved once), each with its timeline event.
    Returns the rows' ids."""
    head = conn.execute(_LOCK_HEAD, {"c": DISCLOSURE_CHAIN}).one()
    seq, head_hash = int(head.seq), str(head.head_hash)
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for entry_id, req, decision, item_id in chained:
        values = _ledger_values(
            entry_id=entry_id, at=when, nature=req.nature, purpose=req.purpose,
            decision=decision, recipient=req.recipient, rule_id=req.rule_id,
            rules_sha256=req.rules_sha256, payload_sha256=req.payload_sha256,
            work_item_id=item_id, actor=req.actor)
        seq += 1
        row_hash = hashchain.link_hash(head_hash, seq, values)
        rows.append({**values, "seq": seq, "prev_hash": head_hash, "row_hash": row_hash})
        head_hash = row_hash
        events.append(_disclosure_event(entry_id, seq, req.nature, values["purpose"],
                                        req.recipient.id, decision, req.actor, when))
    disclosure_ids = [int(i) for i in conn.execute(_INSERT_DISCLOSURES, rows).scalars()]
    conn.execute(_MOVE_HEAD, {"c": DISCLOSURE_CHAIN, "new_seq": seq, "new_hash": head_hash})
    conn.execute(_INSERT_EVENTS, events)
    return disclosure_ids


def disclose_all(session: Session, *, entry_id: int, requests: Sequence[DisclosureRequest],
                 at: datetime | None = None) -> list[Decision]:
    """:func:`disclose` for several recipients of one entry, in the caller's transaction.

    The same gate, ledger rows, work items and events as calling :func:`disclose`
    for each request in order, written with fewer statements: the entry's consent
    events are read once, and the ledger chain's head is locked and moved once.
    For the routing of every new entry; returns the gate's decisions in order.
    """
    if not requests:
        return []
    when = at or utcnow()
    events = consent_events(session, entry_id)
    conn = session.connection()
    planned: list[tuple[DisclosureRequest, Decision, int | None, bool]] = []
    for req in requests:
        decision = decide(purpose=req.purpose, recipient=req.recipient, consent_events=events,
                          at=when, citation=req.citation, personal=req.personal)
        item_id: int | None = None
        created = False
        if decision.allowed and req.work_kind is not None:
            key = req.dedupe_key or (f"{req.work_kind}:{entry_id}:{req.recipient.kind}:"
                                     f"{req.recipient.id}")
            item_id = enqueue(session, req.work_kind, dedupe_key=key, entry_id=entry_id,
                              payload=dict(req.work_payload or {}))
            # enqueue sends (and so lists) only an item it created.
            pending = session.info.get(PENDING_SENDS) or []
            created = bool(pending) and pending[-1][0] == item_id
        planned.append((req, decision, item_id, created))

    disclosure_ids = _append_ledger(conn, when, [
        (entry_id, req, decision, item_id) for req, decision, item_id, _ in planned])
    for (req, _decision, item_id, created), disclosure_id in zip(planned, disclosure_ids,
                                                                strict=True):
        if item_id is not None:
            payload = dict(req.work_payload or {}) if created else dict(
                conn.execute(_ITEM_PAYLOAD, {"item_id": item_id}).scalar_one() or {})
            conn.execute(_SET_ITEM_PAYLOAD, {
                "item_id": item_id, "new_payload": {**payload, "disclosure_id": disclosure_id}})
    return [decision for _, decision, _, _ in planned]


_CONSENT_EVENTS_OF = (
    select(_CONSENT.c.entry_id, _CONSENT.c.id, _CONSENT.c.action, _CONSENT.c.purpose,
           _CONSENT.c.recipient_class, _CONSENT.c.policy_version, _CONSENT.c.method,
           _CONSENT.c.at, _CONSENT.c.evidence_sha256)
    .where(_CONSENT.c.entry_id.in_(bindparam("entry_ids", expanding=True)))
    .order_by(_CONSENT.c.at, _CONSENT.c.id)
)


def disclose_many(session: Session, batches: Sequence[tuple[int, Sequence[DisclosureRequest]]],
                  at: datetime | None = None) -> list[list[Decision]]:
    """:func:`disclose_all` for several entries at once (the routing of a batch).

    The same rows as :func:`disclose_all` entry after entry, in order, with one
    statement a table: the consent events of all the entries, the new work
    items (which must not exist yet: a taken dedupe key fails the call, and
    the caller falls back to entry by entry), the ledger rows, the work items'
    ledger ids, the events; the chain head is locked and moved once.
    """
    when = at or utcnow()
    session.flush()
    conn = session.connection()
    entry_ids = [entry_id for entry_id, _ in batches]
    events: dict[int, list[ConsentEvent]] = {entry_id: [] for entry_id in entry_ids}
    if entry_ids:
        for r in conn.execute(_CONSENT_EVENTS_OF, {"entry_ids": entry_ids}):
            events[r.entry_id].append(ConsentEvent(
                id=r.id, action=ConsentAction(r.action), purpose=Purpose(r.purpose),
                recipient_class=r.recipient_class, policy_version=r.policy_version,
                method=ConsentMethod(r.method), at=r.at, evidence_sha256=r.evidence_sha256))
    planned: list[tuple[int, DisclosureRequest, Decision]] = []
    new_items: list[tuple[str, str, int | None]] = []
    for entry_id, requests in batches:
        for req in requests:
            decision = decide(purpose=req.purpose, recipient=req.recipient,
                              consent_events=events[entry_id], at=when, citation=req.citation,
                              personal=req.personal)
            planned.append((entry_id, req, decision))
            if decision.allowed and req.work_kind is not None:
                new_items.append((req.work_kind, req.dedupe_key or (
                    f"{req.work_kind}:{entry_id}:{req.recipient.kind}:{req.recipient.id}"),
                    entry_id))
    if not planned:
        return [[] for _ in batches]
    item_ids = iter(enqueue_many(session, new_items, connection=conn))
    chained = [(entry_id, req, decision,
                next(item_ids) if decision.allowed and req.work_kind is not None else None)
               for entry_id, req, decision in planned]
    disclosure_ids = _append_ledger(conn, when, chained)
    payloads = [{"item_id": item_id,
                 "new_payload": {**dict(req.work_payload or {}), "disclosure_id": disclosure_id}}
                for (_, req, _, item_id), disclosure_id in zip(chained, disclosure_ids,
                                                               strict=True)
                if item_id is not None]
    if payloads:
        conn.execute(_SET_ITEM_PAYLOAD, payloads)
    decisions = iter(decision for _, _, decision in planned)
    return [[next(decisions) for _ in requests] for _, requests in batches]


def recheck(session: Session, disclosure_id: int, at: datetime | None = None) -> Decision:
    """Decide again at send time. Refused if the disclosure is unknown or consent changed.

    A disclosure that was allowed with the submitter's identity is refused
    when that consent no longer holds; the refusal is written to the ledger.
    """
    row = session.get(Disclosure, disclosure_id)
    if row is None or not row.allowed:
        return Decision(allowed=False, reason="no-ledger-row", basis=Basis.FORBIDDEN,
                        purpose=None, include_identity=False, consent_event_id=None,
                        citation=None)
    recipient = Recipient(kind=row.recipient_kind, id=row.recipient_id,
                          name=row.recipient_name, address=row.recipient_address)
    when = at or utcnow()
    now = decide(purpose=Purpose(row.purpose), recipient=recipient,
                 consent_events=consent_events(session, row.entry_id), at=when,
                 citation=row.citation)
    # Still allowed, and not about to show an identity that consent no longer covers.
    if now.allowed and (now.include_identity or not row.include_identity):
        return Decision(allowed=True, reason=now.reason, basis=now.basis, purpose=now.purpose,
                        include_identity=row.include_identity,
                        consent_event_id=now.consent_event_id, citation=now.citation)
    reason = "consent-withdrawn" if row.include_identity and now.allowed else now.reason
    refused = Decision(allowed=False, reason=reason, basis=now.basis, purpose=now.purpose,
                       include_identity=False, consent_event_id=None, citation=None)
    ledger = Disclosure(
        entry_id=row.entry_id, at=when, nature=row.nature, purpose=row.purpose,
        basis=now.basis.value, allowed=False, reason=reason, include_identity=False,
        recipient_kind=row.recipient_kind, recipient_id=row.recipient_id,
        recipient_name=row.recipient_name, recipient_address=row.recipient_address,
        consent_event_id=None, citation=row.citation, rule_id=row.rule_id,
        rules_sha256=row.rules_sha256, payload_sha256=row.payload_sha256,
        work_item_id=row.work_item_id, actor="send-time-check",
    )
    _chain_append(session, DISCLOSURE_CHAIN, ledger, _disclosure_fields(ledger))
    session.add(Event(entry_id=row.entry_id, kind="disclosure-refused", actor="send-time-check",
                      detail={"disclosure_seq": ledger.seq, "reason": reason,
                              "recipient": row.recipient_id}))
    return refused


def agency_recipient(agency_id: str, name: str, address: str) -> Recipient:
    return Recipient(kind="agency", id=agency_id, name=name, address=address)


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


def store_findings(session: Session, entry_id: int,
                   findings: Mapping[str, Sequence[Finding]]) -> None:
    """Store where PII was found: kind, place, detector and keyed hash; never the value."""
    store_findings_many(session.connection(), [(entry_id, findings)])


def store_findings_many(conn: Connection,
                        found: Sequence[tuple[int, Mapping[str, Sequence[Finding]]]]) -> None:
    """:func:`store_findings` for several entries, in one statement."""
    batch = InsertBatch()
    store_findings_in(batch, found)
    batch.run(conn)


def store_findings_in(batch: InsertBatch,
                      found: Sequence[tuple[int, Mapping[str, Sequence[Finding]]]]) -> None:
    """:func:`store_findings_many` as part of ``batch``."""
    batch.add(FINDINGS_INSERT, [row for entry_id, findings in found
                                for row in finding_rows(entry_id, findings)])


def finding_rows(entry_id: int, findings: Mapping[str, Sequence[Finding]]) -> list[dict[str, Any]]:
    """The ``pii_findings`` rows of an entry's findings (place -> findings there)."""
    return [{"entry_id": entry_id, "place": place, "kind": f.kind, "start": f.start,
             "end": f.end, "detector": f.detector, "severity": f.severity,
             "value_hash": f.value_hash}
            for place, places in findings.items() for f in places]


FINDINGS_INSERT = PreparedInsert(cast(Table, PiiFinding.__table__), (
    "entry_id", "place", "kind", "start", "end", "detector", "severity", "value_hash"))


def record_pii_findings(session: Session, entry_id: int, places: Mapping[str, str],
                        key: bytes) -> None:
    """Detect PII in each named text and store where it is."""
    store_findings(session, entry_id, detect_places(places, key))


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
