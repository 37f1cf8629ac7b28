"""Consent and the ledgers it is checked against (privacy promises P2, P4).

The decisions are pure (:mod:`intake.core.consent`); this module stores
them. Consent events are appended to a hash chain; current consent is
derived from them each time, never updated in place. The disclosure gate
(:mod:`intake.services.gate`) reads them and writes the other chain, the
disclosure ledger; :func:`verify_chains` checks both. The policy texts a
person agreed to are kept word for word, by version.
"""

from __future__ import annotations

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
from intake.db.models import (
    ChainHead,
    ConsentEventRow,
    Disclosure,
    Event,
    PolicyTextRow,
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
