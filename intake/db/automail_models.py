"""Tables of automatic mail: which entries a machine sent, which addresses bounce.

- ``automatic_entries``: one row per entry stored from an automatic message (an
  auto-reply, bounce, bulk or list mail, spam, a challenge-response request): its
  category and the signal that decided it. Such an entry is not acknowledged, not
  forwarded, not published and not in the inbox list; staff see it at
  ``/staff/automatic``.
- ``undeliverable_addresses``: addresses our acknowledgements bounced from, keyed by a
  keyed hash of the lowercased address (HMAC-SHA256 under a key derived from the secret
  key), never the address itself: later acknowledgements to it are not sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, UTCDateTime, utcnow


class AutomaticEntry(Base):
    __tablename__ = "automatic_entries"
    __table_args__ = (
        Index("ix_automatic_entries_category_entry", "category", "entry_id"),
    )

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True, autoincrement=False
    )
    # auto-reply | bounce | bulk | spam | challenge (intake.core.mail.automatic.CATEGORIES)
    category: Mapped[str] = mapped_column(String(16), nullable=False)
    # The signal that decided it, e.g. "auto-submitted: auto-replied", "from: postmaster".
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class UndeliverableAddress(Base):
    __tablename__ = "undeliverable_addresses"

    # Hex HMAC-SHA256 of the lowercased address (services.automail.address_key).
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    bounces: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    first_bounce_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                      default=utcnow)
    last_bounce_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                     default=utcnow)
    # The Message-ID of the acknowledgement that bounced last (ours, no personal data).
    last_message_id: Mapped[str | None] = mapped_column(String(300))
