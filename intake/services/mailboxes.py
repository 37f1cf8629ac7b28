"""The state of each polled mailbox in the database: its lease, last UID done, counters.

One ``mailbox_states`` row per configured mailbox name. The IMAP poller
(:mod:`intake.mail.poller`) calls these functions and gets plain values back;
it never touches the tables itself.

- The **lease** keeps one poller per mailbox across processes and hosts; it
  expires, so a dead poller is replaced (:func:`acquire_lease`).
- **Last UID done** (under the folder's UIDVALIDITY) says which messages are
  committed; it moves in the same transaction as the messages it covers
  (:func:`advance`), and only while the lease is still ours.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.db import Database
from intake.db.mail_models import MailboxState
from intake.db.models import utcnow
from intake.services.mail_intake import TRANSIENT_ERRORS

__all__ = [
    "Database", "LeaseLost", "acquire_lease", "advance", "record_error", "record_pass",
    "release_lease", "sync_uidvalidity",
]


class LeaseLost(Exception):
    """Another poller holds this mailbox now; stop before committing anything more."""


def acquire_lease(db: Database, name: str, owner: str, seconds: float) -> bool:
    """Take or renew the mailbox's lease with one atomic UPDATE; False if someone else has it."""
    with db.session() as session:
        if session.get(MailboxState, name) is None:
            try:
                with session.begin_nested():
                    session.add(MailboxState(name=name, last_uid=0, messages_stored=0,
                                             messages_quarantined=0, updated_at=utcnow()))
            except IntegrityError:
                pass  # created concurrently
        now = utcnow()
        taken = session.execute(
            update(MailboxState)
            .where(MailboxState.name == name,
                   or_(MailboxState.lease_owner.is_(None), MailboxState.lease_owner == owner,
                       MailboxState.lease_expires_at < now))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds),
                    updated_at=now)
            .returning(MailboxState.name)
        ).first()
        return taken is not None


def release_lease(db: Database, name: str, owner: str) -> None:
    """Give the lease up, if it is still ``owner``'s."""
    with db.session() as session:
        session.execute(
            update(MailboxState)
            .where(MailboxState.name == name, MailboxState.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None, updated_at=utcnow())
        )


def record_error(db: Database, name: str, error: str | None) -> None:
    """Note the class of the error that stopped a pass (shown to staff); never raises for a
    database that is down too (the poller's log line is then all there is)."""
    try:
        with db.session() as session:
            session.execute(update(MailboxState).where(MailboxState.name == name)
                            .values(last_error=error, last_poll_at=utcnow(),
                                    updated_at=utcnow()))
    except TRANSIENT_ERRORS:
        pass


def record_pass(db: Database, name: str) -> None:
    """Note a pass that finished: its time, and no error."""
    with db.session() as session:
        session.execute(update(MailboxState).where(MailboxState.name == name)
                        .values(last_poll_at=utcnow(), last_error=None, updated_at=utcnow()))


def sync_uidvalidity(db: Database, name: str, owner: str, uidvalidity: int
                     ) -> tuple[int, bool]:
    """The last UID done under the folder's ``uidvalidity``, and whether it changed.

    A changed UIDVALIDITY (the server rebuilt the folder) starts again from 0:
    the raw-bytes idempotency key makes the re-scan store nothing twice.
    Raises :class:`LeaseLost` unless ``owner`` holds the lease.
    """
    with db.session() as session:
        state = session.get(MailboxState, name, with_for_update=True)
        if state is None or state.lease_owner != owner:
            raise LeaseLost(name)
        if state.uidvalidity == uidvalidity:
            return state.last_uid, False
        changed = state.uidvalidity is not None
        state.uidvalidity = uidvalidity
        state.last_uid = 0
        state.updated_at = utcnow()
        return 0, changed


def advance(session: Session, name: str, owner: str, *, uid: int, uidvalidity: int,
            stored: int, quarantined: int, lease_seconds: float) -> None:
    """In the messages' own transaction: last UID done = ``uid``, the counters up, the lease
    renewed. Raises :class:`LeaseLost` (so the transaction rolls back) unless the lease is
    still ``owner``'s under the same UIDVALIDITY."""
    now = utcnow()
    values: dict[str, Any] = {
        "last_uid": uid, "updated_at": now, "last_poll_at": now,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "messages_stored": MailboxState.messages_stored + stored,
        "messages_quarantined": MailboxState.messages_quarantined + quarantined,
    }
    updated = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, MailboxState.lease_owner == owner,
               MailboxState.uidvalidity == uidvalidity)
        .values(**values)
        .returning(MailboxState.name)
    ).first()
    if updated is None:
        raise LeaseLost(name)
