"""Automatic mail: remembering which entries a machine sent, and which addresses bounce.

- :func:`record_automatic` keeps an entry's category (``automatic_entries``) next to
  the entry the one store (``record_submissions``) wrote: the delivery planner then
  forwards and acknowledges nothing, the publish gate refuses it, the inbox list leaves
  it out and :func:`automatic_page` lists it for staff.
- :func:`mark_undeliverable` takes a bounce of one of OUR messages to a submitter (found
  by the bounced Message-ID, or by the failed recipients among the addresses we
  acknowledged) and marks those addresses undeliverable; :func:`is_undeliverable` is
  what the acknowledger asks before it sends. Addresses are kept as a keyed hash only.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from intake.core.mail.automatic import CATEGORIES, BounceFacts, Verdict
from intake.db.automail_models import AutomaticEntry, UndeliverableAddress
from intake.db.models import Entry, SentMessage, Submitter, utcnow
from intake.db.staff_models import StaffAccount
from intake.services import renditions
from intake.services.renditions import Audience

#: ``Settings.derived_key`` purpose of the addresses' keyed hash.
KEY_PURPOSE = "undeliverable addresses"
PAGE_SIZE = 100
_RECORDS_ROLES = ("records_officer", "system_admin")
# What we send to a submitter (ThreadRelay sends "relay" to either side: see recipient).
_TO_SUBMITTER = ("acknowledge", "reply", "relay")


def address_hash(key: bytes, address: str) -> str:
    """The keyed hash an address is stored as (lowercased, trimmed)."""
    return hmac.digest(key, address.strip().lower().encode("utf-8", "surrogatepass"),
                       "sha256").hex()


def record_automatic(session: Session, entry_id: int, verdict: Verdict) -> None:
    """Note that ``entry_id`` was stored from automatic mail of ``verdict.category``."""
    if session.get(AutomaticEntry, entry_id) is None:
        session.add(AutomaticEntry(entry_id=entry_id, category=verdict.category,
                                   reason=verdict.reason[:200], created_at=utcnow()))
        session.flush()


def is_automatic(session: Session, entry_id: int) -> bool:
    return session.get(AutomaticEntry, entry_id) is not None


def not_automatic(entry_id: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """A condition for queries of entries: the entry was not stored from automatic mail."""
    column = Entry.id if entry_id is None else entry_id
    return ~exists().where(AutomaticEntry.entry_id == column)


def is_undeliverable(session: Session, key: bytes, address: str) -> bool:
    return session.get(UndeliverableAddress, address_hash(key, address)) is not None


def mark_undeliverable(session: Session, key: bytes, facts: BounceFacts) -> list[int]:
    """Mark the addresses a bounce of our mail to submitters names; the entries concerned.

    A bounced Message-ID that is one of ours to a submitter marks that entry's
    submitter address (when the bounce lists failed recipients, only if it is among
    them). Without a known Message-ID, a failed recipient that we acknowledged is
    marked. Nothing else is: a bounce cannot make us stop writing to anyone we did
    not write to.
    """
    if not facts.failure:
        return []  # a delay warning: the message may still arrive
    failed = {a.lower() for a in facts.failed_recipients}
    targets: dict[str, tuple[int, str | None]] = {}
    ids = [i for i in facts.message_ids if i]
    if ids:
        candidates = ids + [f"<{i}>" for i in ids]
        rows = session.execute(
            select(SentMessage.message_id, Submitter.entry_id, Submitter.email)
            .join(Submitter, Submitter.entry_id == SentMessage.entry_id)
            .where(SentMessage.message_id.in_(candidates),
                   SentMessage.kind.in_(_TO_SUBMITTER),
                   SentMessage.recipient_kind == "submitter")
        ).all()
        for sent in rows:
            email = (sent.email or "").strip().lower()
            if email and (not failed or email in failed):
                targets.setdefault(email, (sent.entry_id, sent.message_id))
    if not targets and failed:
        rows = session.execute(
            select(Submitter.entry_id, func.lower(Submitter.email).label("email"),
                   SentMessage.message_id)
            .join(SentMessage, SentMessage.entry_id == Submitter.entry_id)
            .where(func.lower(Submitter.email).in_(sorted(failed)),
                   SentMessage.kind == "acknowledge",
                   SentMessage.recipient_kind == "submitter")
            .order_by(SentMessage.id.desc())
        ).all()
        for found in rows:
            targets.setdefault(found.email, (found.entry_id, found.message_id))
    now = utcnow()
    for email, (_, message_id) in targets.items():
        digest = address_hash(key, email)
        row = session.get(UndeliverableAddress, digest)
        if row is None:
            session.add(UndeliverableAddress(address_hash=digest, bounces=1,
                                             first_bounce_at=now, last_bounce_at=now,
                                             last_message_id=(message_id or "")[:300] or None))
        else:
            row.bounces += 1
            row.last_bounce_at = now
            row.last_message_id = (message_id or "")[:300] or row.last_message_id
    session.flush()
    return sorted({entry_id for entry_id, _ in targets.values()})


# -- the staff view ---------------------------------------------------------------------


@dataclass(frozen=True)
class AutomaticRow:
    entry_id: int
    record_number: str
    received_at: datetime
    subject: str
    category: str
    reason: str
    channel: str


@dataclass(frozen=True)
class AutomaticPage:
    rows: list[AutomaticRow]
    counts: dict[str, int]
    category: str | None
    more: bool


def automatic_page(session: Session, user: StaffAccount, category: str | None, *,
                   relay_domain: str, limit: int = PAGE_SIZE) -> AutomaticPage:
    """The automatic mail routed to the user's agency (the inbox's isolation: nobody sees
    another agency's entries), newest first, optionally of one category."""
    if category not in CATEGORIES:
        category = None
    scope: list[ColumnElement[bool]] = [Entry.agency_id == user.agency_id]
    counts = dict.fromkeys(CATEGORIES, 0)
    for name, n in session.execute(
        select(AutomaticEntry.category, func.count())
        .join(Entry, Entry.id == AutomaticEntry.entry_id)
        .where(and_(True, *scope)).group_by(AutomaticEntry.category)
    ):
        counts[name] = int(n)
    conditions = list(scope)
    if category:
        conditions.append(AutomaticEntry.category == category)
    found = session.execute(
        select(Entry.id, Entry.record_number, Entry.received_at, Entry.subject, Entry.channel,
               AutomaticEntry.category, AutomaticEntry.reason)
        .join(AutomaticEntry, AutomaticEntry.entry_id == Entry.id)
        .where(and_(True, *conditions))
        .order_by(Entry.received_at.desc(), Entry.id.desc())
        .limit(limit + 1)
    ).all()
    more = len(found) > limit
    rows = [AutomaticRow(entry_id=r.id, record_number=r.record_number,
                         received_at=_utc(r.received_at), subject=r.subject or "",
                         category=r.category, reason=r.reason, channel=r.channel)
            for r in found[:limit]]
    audience = Audience.RECORDS_OFFICER if user.role in _RECORDS_ROLES else Audience.AGENCY
    subjects = renditions.render_many_subjects(
        session, [(r.entry_id, r.subject) for r in rows],
        {r.entry_id: (audience, user.agency_id) for r in rows}, relay_domain)
    return AutomaticPage([replace(r, subject=subjects.get(r.entry_id, "")) for r in rows],
                         counts, category, more)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__: Sequence[str] = [
    "KEY_PURPOSE", "AutomaticPage", "AutomaticRow", "address_hash", "automatic_page",
    "is_automatic", "is_undeliverable", "mark_undeliverable", "not_automatic",
    "record_automatic",
]
