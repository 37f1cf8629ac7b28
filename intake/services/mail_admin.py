"""What a system administrator sees and does of the e-mail intake on the admin page.

Each mailbox's polling state, the unresolved quarantine (messages that could
not be stored as entries), and dismissing one of them: its row and bytes
stay on record, only marked resolved. Retrying one is
:func:`intake.services.mail_intake.store_or_quarantine`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.db.mail_models import MailboxState, QuarantinedMessage
from intake.db.models import utcnow

__all__ = [
    "MailboxState", "QuarantinedMessage", "dismiss", "mailbox_states", "open_quarantine",
    "unresolved",
]

QUARANTINE_SHOWN = 200


def mailbox_states(session: Session) -> list[MailboxState]:
    """Every polled mailbox's state, by name."""
    return list(session.scalars(select(MailboxState).order_by(MailboxState.name)))


def open_quarantine(session: Session, limit: int = QUARANTINE_SHOWN) -> list[QuarantinedMessage]:
    """The unresolved quarantined messages, newest first, at most ``limit``."""
    return list(session.scalars(
        select(QuarantinedMessage).where(QuarantinedMessage.resolved.is_(False))
        .order_by(QuarantinedMessage.quarantined_at.desc()).limit(limit)))


def unresolved(session: Session, quarantine_id: int) -> QuarantinedMessage | None:
    """The quarantined message ``quarantine_id`` if it is still unresolved, else None."""
    row = session.get(QuarantinedMessage, quarantine_id)
    return None if row is None or row.resolved else row


def dismiss(row: QuarantinedMessage, by: str) -> None:
    """Mark a quarantined message resolved by ``by`` (``staff:<id>``); its bytes stay."""
    row.resolved, row.resolved_at, row.resolved_by = True, utcnow(), by
