"""Tables of retention: legal holds, disposition runs and the disposition log.

- ``legal_holds``: a hold a records officer put (reason, case reference, who,
  when; for a hold made from a search, the search as asked), and its release.
- ``legal_hold_entries``: the entries a hold covers, fixed when it was made (a
  search is resolved to its entries at that moment; later entries are not held).
- ``disposition_runs``: each ``intake retention run --apply`` (who, the
  schedule's SHA-256, the moment it ran "as of", when it started and ended).
- ``disposition_log``: what happened to which entry, when, under which series,
  by which run or officer. Record numbers and series ids only: never personal
  data. Append-only (database triggers, migration 0016): it is the record that
  the disposal happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, BigID, UTCDateTime, utcnow


class LegalHold(Base):
    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    case_reference: Mapped[str] = mapped_column(String(200), nullable=False)
    # {"record_numbers": [...]} or {"search": {...the staff search's filters...}}
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(128))
    release_reason: Mapped[str | None] = mapped_column(Text)


class LegalHoldEntry(Base):
    __tablename__ = "legal_hold_entries"

    hold_id: Mapped[int] = mapped_column(
        ForeignKey("legal_holds.id", ondelete="RESTRICT"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True, index=True)


class DispositionRun(Base):
    __tablename__ = "disposition_runs"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    schedule_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DispositionLogEntry(Base):
    __tablename__ = "disposition_log"
    __table_args__ = (
        # One row per entry and action: a second run, or a run resumed, adds none.
        UniqueConstraint("entry_id", "action", name="uq_disposition_log_entry_action"),
        Index("ix_disposition_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False)
    record_number: Mapped[str] = mapped_column(String(32), nullable=False)
    series: Mapped[str] = mapped_column(String(64), nullable=False)
    # destroyed, archived, review (listed for review), kept (an officer kept it on review)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("disposition_runs.id", ondelete="RESTRICT"), index=True)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


APPEND_ONLY_RETENTION_TABLES = ("disposition_log",)
