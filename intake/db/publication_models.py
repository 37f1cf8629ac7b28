"""Tables of the public records portal: what is published, withheld, marked, released.

- ``publications``: one row per entry a records officer or the publish rule
  has decided about: its state (``published``, ``withheld``,
  ``unpublished``), the review, the withhold's reason code and citation, and
  for a published entry the public rendition's subject and words (what the
  public listing shows and searches; no personal data: the public rendition
  removed it). The listing reads this table alone, newest first
  (``ix_publications_state_received``). Rows change as decisions change; the
  history is on the entry's timeline (``events``) and in the access log.
- ``redaction_marks``: a records officer's redactions (literal text, regex,
  or a span of one place), applied when a rendition is made; the stored
  texts never change. Not append-only: a literal mark's pattern may be
  personal data (a name), which retention must be able to blank.
- ``attachment_releases``: attachments a records officer released to the
  public.

Full-text search objects (PostgreSQL ``publications.search_vector``, a stored
``tsvector`` over ``public_text`` with the ``english`` configuration and its
GIN index ``ix_publications_search_vector``; SQLite FTS5
``publications_fts`` with the porter tokenizer and its triggers) are created
by migration 0015 with dialect checks and kept out of the ORM metadata like
the staff search objects (:mod:`intake.db.staff_models`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, BigID, UTCDateTime, utcnow

PUBLIC_FTS_TABLE = "publications_fts"
PUBLIC_SEARCH_INDEX = "ix_publications_search_vector"


class Publication(Base):
    __tablename__ = "publications"
    __table_args__ = (
        Index("ix_publications_state_received", "state", "received_at", "entry_id"),
    )

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True, autoincrement=False
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    # Copies of the entry's public facts, so the listing needs no join.
    record_number: Mapped[str] = mapped_column(String(32), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    agency_id: Mapped[str | None] = mapped_column(String(64))
    # A records officer reviewed it (findings, attachments); None: not reviewed.
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A withhold's reason code and its legal citation (from the records configuration).
    reason_code: Mapped[str | None] = mapped_column(String(64))
    citation: Mapped[str | None] = mapped_column(String(200))
    # The public rendition: its subject, and its words without the removed spans.
    public_subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    public_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class RedactionMark(Base):
    """A records officer's redaction: applied at render time, the stored text unchanged."""

    __tablename__ = "redaction_marks"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    # "entry" (subject, body, fields) or "attachment" (its name, on the public page)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("attachments.id", ondelete="RESTRICT")
    )
    how: Mapped[str] = mapped_column(String(16), nullable=False)  # literal | regex | span
    pattern: Mapped[str] = mapped_column(Text, nullable=False, default="")
    place: Mapped[str | None] = mapped_column(String(64))  # a span's place
    start: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[int | None] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(64), nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AttachmentRelease(Base):
    """An attachment a records officer released to the public."""

    __tablename__ = "attachment_releases"

    attachment_id: Mapped[int] = mapped_column(
        ForeignKey("attachments.id", ondelete="RESTRICT"), primary_key=True,
        autoincrement=False,
    )
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    released_by: Mapped[str] = mapped_column(String(128), nullable=False)
    released_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

