"""Copies: the agencies that hold a read-only copy of an entry.

``entry_copies`` has one row per (entry, agency) for each agency in the cc of the
entry's latest routing decision (a rule's ``cc``, or the first agency of a staff
reroute with "keep a copy"), other than the agency the entry is routed to. It is
written only by :func:`intake.services.routing.store_decisions`, the one writer
of routing decisions, so it always mirrors the latest decision; the staff inbox
reads it to list a copy agency's copies and to let it read, not act on, them.
``received_at`` repeats the entry's, so a copy agency's inbox pages through its
copies in the order of an index of their own, newest first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, UTCDateTime, utcnow


class EntryCopy(Base):
    __tablename__ = "entry_copies"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True, autoincrement=False
    )
    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        Index("ix_entry_copies_agency_received", "agency_id", "received_at", "entry_id"),
    )
