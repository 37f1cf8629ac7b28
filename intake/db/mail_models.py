"""Tables of the e-mail intake: per-mailbox polling state and the quarantine.

- ``mailbox_states``: one row per configured mailbox (by name): the folder's
  UIDVALIDITY and the last UID whose message is committed, the lease that
  keeps one poller per mailbox across processes and hosts, and the last
  poll's outcome for operators.
- ``quarantined_messages``: the raw bytes (sealed) of every message that could not be
  stored as an entry or a thread message, with the error; staff resolve them.
  One row per distinct content (SHA-256), so a re-fetch after a crash does
  not quarantine the same bytes twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, BigID, UTCDateTime, utcnow


class MailboxState(Base):
    __tablename__ = "mailbox_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    # Every message with a UID up to this one (under ``uidvalidity``) is committed.
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    messages_stored: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    messages_quarantined: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class QuarantinedMessage(Base):
    __tablename__ = "quarantined_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # Sealed under the row's own data key, stored wrapped in ``wrapped_key``
    # (:func:`intake.services.mail_intake.open_quarantined`); as received when that is
    # None (quarantined before revision 0010).
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    error_class: Mapped[str] = mapped_column(String(128), nullable=False)
    error_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    mailbox: Mapped[str | None] = mapped_column(String(64))
    uid: Mapped[int | None] = mapped_column(BigInteger)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    resolved: Mapped[bool] = mapped_column(nullable=False, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
