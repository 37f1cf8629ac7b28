"""The public record, as SQLAlchemy 2.0 typed models.

Tables and why they exist:

- ``entries``: one row per submission (web form or e-mail): the public-record
  entry with its record number, channel, kind, subject, text, status and the
  agency it is routed to. No personal data about the submitter lives here
  beyond what they typed into the text itself (found and redacted by the PII
  detector in renditions).
- ``submitters``: the submitter's personal data (name, e-mail, phone, postal
  address), one row per entry, kept apart so that one place holds PII and
  access to it can be controlled and logged.
- ``originals``: the sealed original, the exact bytes received (raw e-mail,
  raw form payload) with their SHA-256, encrypted under the entry's own key
  (``entry_keys``; the SHA-256 is of the plaintext). Never updated or
  deleted (database triggers refuse it).
- ``entry_keys``: each entry's data key, wrapped; deleting it destroys the
  entry's originals.
- ``events``: the append-only timeline of each entry (received, routed,
  forwarded, viewed, ...). Never updated or deleted (triggers).
- ``work_items``: durable "to do" rows that background jobs act on. The
  database is the source of truth; a dramatiq message is only a trigger.
- ``routing_decisions``: every routing decision for an entry: the agency,
  cc, tags, matched rule ids, the trace and the SHA-256 of the rules file
  that decided, so "why did this go there?" always has an answer.
- ``policy_texts``, ``consent_events``, ``disclosures``, ``chain_heads``,
  ``relay_tokens``, ``access_links``, ``pii_findings``: the privacy core's
  records (see :mod:`intake.services.consent`).
- ``record_counters``: one row per (prefix, year), the allocator of
  human-friendly record numbers (``EX-2026-000123``), incremented with a
  single atomic UPDATE ... RETURNING so concurrent writers never collide.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# The base and column types live in intake.db.base; they stay importable from here.
from intake.db.base import Base, BigID, UTCDateTime, utcnow

__all__ = [
    "APPEND_ONLY_TABLES", "AccessLink", "Attachment", "Base", "BigID", "ChainHead", "Channel",
    "ConsentEventRow", "Disclosure", "Entry", "EntryKey", "EntryKind", "EntryStatus", "Event",
    "Original", "PiiFinding", "PolicyTextRow", "RecordCounter", "RelayToken", "RoutingDecision",
    "SentMessage", "Submitter", "ThreadMessage", "UTCDateTime", "WorkItem", "WorkState",
    "utcnow",
]


class Channel(enum.StrEnum):
    WEB = "web"
    EMAIL = "email"


class EntryKind(enum.StrEnum):
    CONTACT = "contact"
    FEEDBACK = "feedback"
    SURVEY = "survey"
    EMAIL = "email"


class EntryStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


class WorkState(enum.StrEnum):
    PENDING = "pending"    # waiting to run (at or after next_attempt_at)
    RUNNING = "running"    # claimed by a worker until locked_until
    DONE = "done"
    DEAD = "dead"          # permanent failure or attempts exhausted; staff may retry


def _enum_values(e: type[enum.Enum]) -> list[str]:
    return [str(m.value) for m in e]


class RecordCounter(Base):
    __tablename__ = "record_counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_agency_status_received", "agency_id", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    record_number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    form_slug: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # What the staff search indexes: the public rendition without its removed spans
    # (intake.core.rendition.search_text), so no search can test for a citizen's address.
    # No Python-side default: the record store writes it for every entry (a prepared
    # INSERT refuses a column whose Python default it would silently skip).
    search_text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # Structured form answers (topic, rating, survey answers); no submitter PII.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=EntryStatus.NEW)
    # Indexed as the first column of ix_entries_agency_status_received (and of the staff
    # inbox's ix_entries_agency_received_id).
    agency_id: Mapped[str | None] = mapped_column(String(64))
    # Makes a repeated ingest of the same bytes (or a re-posted form token) harmless.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # The submitter's language ("en" or "es"), chosen once when the entry came in: every
    # page and message to the citizen uses it (migration 0017).
    language: Mapped[str] = mapped_column(String(8), nullable=False, server_default="en")

    submitter: Mapped[Submitter | None] = relationship(back_populates="entry", uselist=False)
    original: Mapped[Original | None] = relationship(back_populates="entry", uselist=False)
    events: Mapped[list[Event]] = relationship(
        back_populates="entry", order_by="Event.id", viewonly=True
    )


class Submitter(Base):
    """The one place that holds the submitter's personal data."""

    __tablename__ = "submitters"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), unique=True, nullable=False
    )
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    postal_address: Mapped[str | None] = mapped_column(Text)

    entry: Mapped[Entry] = relationship(back_populates="submitter")


class Original(Base):
    """The sealed original: exact bytes as received, encrypted (``raw``; read it with
    :func:`intake.services.records.open_original`). Never modified."""

    __tablename__ = "originals"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), unique=True, nullable=False
    )
    content_type: Mapped[str] = mapped_column(String(128), nullable=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="original")


class EntryKey(Base):
    """An entry's data key, wrapped with the key-encryption key (:mod:`intake.core.sealing`).

    It opens the entry's sealed original and its replies' raw bytes. Deleting
    the row is how retention destroys them; it is not append-only for that.
    """

    __tablename__ = "entry_keys"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True, autoincrement=False
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Event(Base):
    """Append-only timeline. ``detail`` never holds personal data or bodies."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), nullable=False, default="system")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    entry: Mapped[Entry] = relationship(back_populates="events")


class RoutingDecision(Base):
    """Every routing decision made for an entry, with the rules file that made it."""

    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    route_to: Mapped[str] = mapped_column(String(64), nullable=False)
    cc: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    matched_rules: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    rules_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    # Who decided: "rules" (the route work) or "staff:<id>" (a reroute); migration 0019.
    actor: Mapped[str | None] = mapped_column(String(128))


class WorkItem(Base):
    """A durable unit of background work. Actors receive only its id."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_work_items_dedupe_key"),
        Index("ix_work_items_state_next_attempt", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), index=True
    )
    # e.g. "route:42": creating the same work twice is a no-op, not a duplicate.
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=WorkState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Transient failures (destination down, 4xx, timeouts): they never use up attempts.
    deferrals: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # The first of them (since it was created or retried by hand): the age limit's start.
    deferred_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # When a broker message was last sent for it; the sweeper re-sends stale ones.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How often the sweeper re-sent it, and when it may do so next: each re-send
    # doubles the wait, so a long queue backlog is not flooded with repeats.
    resends: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                         server_default="0")
    resend_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# -- privacy: consent, disclosures, relay, access links, PII findings ---------


class PolicyTextRow(Base):
    """A consent or notice text exactly as shown, by version. Immutable."""

    __tablename__ = "policy_texts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChainHead(Base):
    """The newest link of each hash chain; appends lock this row, so seq is gap-free."""

    __tablename__ = "chain_heads"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class ConsentEventRow(Base):
    """Append-only, hash-chained consent grants and withdrawals.

    Current consent is derived from these rows by the pure core, never stored.
    """

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient_class: Mapped[str] = mapped_column(String(140), nullable=False)
    policy_version: Mapped[str] = mapped_column(
        ForeignKey("policy_texts.version", ondelete="RESTRICT"), nullable=False
    )
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    evidence_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False, default="submitter")
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class Disclosure(Base):
    """The disclosure ledger: every decision of the gate, allowed or refused.

    Hash-chained and append-only. An allowed disclosure that sends something
    names the work item that will send it (created in the same transaction).
    """

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    nature: Mapped[str] = mapped_column(String(32), nullable=False)  # forward, reroute, reply, ...
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    basis: Mapped[str] = mapped_column(String(16), nullable=False)
    allowed: Mapped[bool] = mapped_column(nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    include_identity: Mapped[bool] = mapped_column(nullable=False)
    recipient_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient_id: Mapped[str] = mapped_column(String(140), nullable=False)
    recipient_name: Mapped[str] = mapped_column(String(200), nullable=False)
    recipient_address: Mapped[str] = mapped_column(String(500), nullable=False)
    consent_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("consent_events.id", ondelete="RESTRICT")
    )
    citation: Mapped[str | None] = mapped_column(String(200))
    rule_id: Mapped[str | None] = mapped_column(String(128))
    rules_sha256: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    work_item_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128), nullable=False, default="system")
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class RelayToken(Base):
    """``reply+<token>@<relay domain>`` stands for the submitter of one entry."""

    __tablename__ = "relay_tokens"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), unique=True, nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AccessLink(Base):
    """The submitter's private status link. Only the token's SHA-256 is stored."""

    __tablename__ = "access_links"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class PiiFinding(Base):
    """Where the PII detector found what: kind, place, detector, keyed hash; never the value."""

    __tablename__ = "pii_findings"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    place: Mapped[str] = mapped_column(String(64), nullable=False)  # subject, body, ...
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    start: Mapped[int] = mapped_column(Integer, nullable=False)
    end: Mapped[int] = mapped_column(Integer, nullable=False)
    detector: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    value_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # Why (issue 27): the detector's confidence and the evidence that fired, space-separated
    # ("stdnum:valid context:+ssn"); never a value.
    confidence: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("1.0"))
    evidence: Mapped[str] = mapped_column(String(255), nullable=False, server_default="")


# -- attachments and the conversation ---------------------------------------------


class Attachment(Base):
    """A file that came with an entry (form upload or e-mail part). Immutable.

    Stored under a generated id; ``filename`` is the sanitised name as sent,
    ``sniffed_type`` comes from the content, never from the name.
    """

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    thread_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("thread_messages.id", ondelete="RESTRICT")
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    declared_type: Mapped[str] = mapped_column(String(128), nullable=False)
    sniffed_type: Mapped[str] = mapped_column(String(128), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # None when over the size cap
    inline: Mapped[bool] = mapped_column(nullable=False, default=False)
    content_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ThreadMessage(Base):
    """A message in an entry's conversation after the first: replies, relayed mail, notes.

    Inbound ones keep their exact bytes in ``raw`` (a sealed original of their
    own, encrypted under the entry's key: read it with
    :func:`intake.services.records.open_thread_message`) and their subject and
    body with the P6 values replaced by markers; outbound ones record what was
    sent. Append-only.
    """

    __tablename__ = "thread_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    direction: Mapped[str] = mapped_column(String(8), nullable=False)  # "in" | "out" | "note"
    author_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # submitter, agency, staff
    author_id: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class SentMessage(Base):
    """Every Message-ID intake issued, so replies can find their entry (In-Reply-To)."""

    __tablename__ = "sent_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    work_item_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # forward, acknowledge, relay
    recipient_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    recipient_id: Mapped[str] = mapped_column(String(140), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# Tables whose rows may be inserted but never updated or deleted; migrations
# install triggers that enforce it on SQLite and PostgreSQL.
APPEND_ONLY_TABLES = (
    "originals", "events", "routing_decisions", "policy_texts", "consent_events",
    "disclosures", "relay_tokens", "attachments", "thread_messages",
)
