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
from typing import Any

from sqlalchemy import insert, select
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
from intake.jobs.workitems import add_work_item

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
    head = session.scalar(
        select(ChainHead).where(ChainHead.chain == chain).with_for_update()
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


def _disclosure_fields(row: Disclosure) -> dict[str, object]:
    return {
        "entry_id": row.entry_id, "at": row.at, "nature": row.nature, "purpose": row.purpose,
        "basis": row.basis, "allowed": row.allowed, "reason": row.reason,
        "include_identity": row.include_identity, "recipient_kind": row.recipient_kind,
        "recipient_id": row.recipient_id, "recipient_name": row.recipient_name,
        "recipient_address": row.recipient_address, "consent_event_id": row.consent_event_id,
        "citation": row.citation, "rule_id": row.rule_id, "rules_sha256": row.rules_sha256,
        "payload_sha256": row.payload_sha256, "work_item_id": row.work_item_id,
        "actor": row.actor,
    }


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
    rows = session.scalars(
        select(ConsentEventRow).where(ConsentEventRow.entry_id == entry_id)
        .order_by(ConsentEventRow.at, ConsentEventRow.id)
    )
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
    row = Disclosure(
        entry_id=entry_id, at=when, nature=nature,
        purpose=decision.purpose.value if decision.purpose else str(purpose),
        basis=decision.basis.value, allowed=decision.allowed, reason=decision.reason,
        include_identity=decision.include_identity, recipient_kind=recipient.kind,
        recipient_id=recipient.id, recipient_name=recipient.name,
        recipient_address=recipient.address, consent_event_id=decision.consent_event_id,
        citation=decision.citation, rule_id=rule_id, rules_sha256=rules_sha256,
        payload_sha256=payload_sha256, work_item_id=None, actor=actor,
    )
    item = None
    if decision.allowed and work_kind is not None:
        payload = dict(work_payload or {})
        item = add_work_item(
            session, work_kind, entry_id=entry_id,
            dedupe_key=dedupe_key or f"{work_kind}:{entry_id}:{recipient.kind}:{recipient.id}",
            payload=payload,
        )
        row.work_item_id = item.id
    _chain_append(session, DISCLOSURE_CHAIN, row, _disclosure_fields(row))
    if item is not None:
        item.payload = {**item.payload, "disclosure_id": row.id}
    session.add(Event(entry_id=entry_id, kind="disclosure" if decision.allowed
                      else "disclosure-refused", actor=actor,
                      detail={"disclosure_seq": row.seq, "nature": nature,
                              "purpose": row.purpose, "recipient": recipient.id,
                              "reason": decision.reason}))
    return GateResult(decision, row, item)


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
    token = session.scalar(select(RelayToken.token).where(RelayToken.entry_id == entry_id))
    if token is None:
        token = new_relay_token()
        session.add(RelayToken(token=token, entry_id=entry_id))
        session.flush()
    return relay_address(token, domain)


def entry_for_relay_token(session: Session, token: str) -> int | None:
    return session.scalar(select(RelayToken.entry_id).where(RelayToken.token == token.lower()))


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_access_link(session: Session, entry_id: int) -> str:
    """A new private-link token for the submitter; shown once, stored only as a hash."""
    token = secrets.token_urlsafe(32)
    # A plain INSERT: every confirmation page issues one, and an ORM flush costs more.
    session.connection().execute(_INSERT_ACCESS_LINK, {
        "token_sha256": _token_digest(token), "entry_id": entry_id, "created_at": utcnow()})
    return token


_INSERT_ACCESS_LINK = insert(AccessLink)


def entry_for_access_token(session: Session, token: str) -> int | None:
    if not token or len(token) > 128:
        return None
    return session.scalar(
        select(AccessLink.entry_id).where(AccessLink.token_sha256 == _token_digest(token))
    )


# -- PII findings ----------------------------------------------------------------------


def detect_places(places: Mapping[str, str], key: bytes) -> dict[str, list[Finding]]:
    """The PII detector's findings in each named text (``{"subject": ..., "body": ...}``)."""
    return {place: detect(text, key=key) for place, text in places.items() if text}


def store_findings(session: Session, entry_id: int,
                   findings: Mapping[str, Sequence[Finding]]) -> None:
    """Store where PII was found: kind, place, detector and keyed hash; never the value."""
    for place, found in findings.items():
        for finding in found:
            session.add(PiiFinding(entry_id=entry_id, place=place, kind=finding.kind,
                                   start=finding.start, end=finding.end,
                                   detector=finding.detector, severity=finding.severity,
                                   value_hash=finding.value_hash))


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
