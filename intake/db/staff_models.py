"""Tables of the staff inbox: accounts, sessions, the access log, read markers, assignments.

- ``staff_accounts``: one row per employee: agency, role, argon2 password
  hash, TOTP secret, disabled flag, whether the password must be changed.
  (``failed_logins`` and ``locked_until`` are no longer used: the lockout
  became ``login_throttles``, migration 0013.)
- ``staff_sessions``: server-side half of a login. The signed cookie carries a
  random token; only its SHA-256 is stored, so logout and the idle and
  absolute timeouts are enforced here, not by trusting the cookie.
- ``access_log``: every view of personal information (who, when, which
  entry, what). Append-only (database triggers, migration 0005).
- ``login_throttles``: failed logins per key (account and client, client,
  account), each key a keyed hash (no address or e-mail stored), with the
  time until which the key is slowed down (shared by every web worker).
- ``staff_account_events``: who did what to which staff account and when
  (created, disabled, enabled, password reset, second factor reset,
  throttles lifted): the account part of the access log. Append-only.
- ``read_markers``: which entries a user has opened (unread markers).
- ``entry_assignments``: who an entry is assigned to (one row per entry).

Full-text search objects (SQLite FTS5 ``entries_fts``; PostgreSQL
``entries.search_vector`` and its GIN index) are created by migration 0005 and
built over ``entries.search_text`` since migration 0011 (no personal data in it)
with dialect checks and kept out of the ORM metadata; the Alembic comparator
registered by :func:`register_search_filter` (which :mod:`intake.db.metadata` calls)
hides them from autogenerate and from the
models-vs-migrations comparison.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, BigID, UTCDateTime, utcnow
from intake.db.models import Entry

# Search objects that live outside the ORM metadata (see the module docstring).
FTS_TABLE_PREFIX = "entries_fts"
SEARCH_COLUMN = "search_vector"
SEARCH_INDEX = "ix_entries_search_vector"


class StaffAccount(Base):
    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    agency_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(nullable=False, default=False)
    # Set by an administrator's password reset: the next login must choose a new one.
    password_must_change: Mapped[bool] = mapped_column(nullable=False, default=False,
                                                       server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffSession(Base):
    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessLogEntry(Base):
    """One view of personal information. Append-only; never holds the information itself."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    what: Mapped[str] = mapped_column(String(32), nullable=False)  # entry, attachment, original
    # A reveal's stated reason, legal basis and requester; None for a plain view.
    detail: Mapped[dict[str, str] | None] = mapped_column(JSON)


class LoginThrottle(Base):
    """Failed logins counted under one key; the key is slowed down until ``blocked_until``."""

    __tablename__ = "login_throttles"

    # HMAC-SHA256 of the scope and its parts (account e-mail, client address), hex.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)  # pair, client, account
    # HMAC of the normalised e-mail for the pair and account scopes: lifts an account's
    # throttles (intake staff unlock) without storing the address or the client.
    account_key: Mapped[str | None] = mapped_column(String(64), index=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                      index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffAccountEvent(Base):
    """One change to a staff account: who (an account, or the command line), what, when."""

    __tablename__ = "staff_account_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # The administrator's account; None when the change came from the command line.
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), index=True
    )
    # "staff:<id>" or "cli:<operating-system user>": readable even without a join.
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(String(32), nullable=False)


class ReadMarker(Base):
    __tablename__ = "read_markers"

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), primary_key=True
    )
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True
    )
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class EntryAssignment(Base):
    __tablename__ = "entry_assignments"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="RESTRICT"), primary_key=True
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


# The inbox's keyset order within one agency (all statuses): newest first.
Index("ix_entries_agency_received_id", Entry.agency_id, Entry.received_at, Entry.id)

APPEND_ONLY_STAFF_TABLES = ("access_log", "staff_account_events")


# -- keep the search objects out of autogenerate and the models-vs-migrations test ---------


def _is_search_object(op: Any) -> bool:
    name = getattr(op, "table_name", None) or ""
    # The public records' search objects too (intake.db.publication_models, migration 0015).
    if name.startswith((FTS_TABLE_PREFIX, "publications_fts")):
        return True
    if getattr(op, "column_name", None) == SEARCH_COLUMN:
        return True
    return getattr(op, "index_name", None) in (SEARCH_INDEX, "ix_publications_search_vector")


def register_search_filter() -> None:
    """Hide the search objects from Alembic's autogenerate (and so from the
    models-vs-migrations test). Called by :mod:`intake.db.metadata`, which is what
    Alembic and that test load: a process that only uses the tables does not import
    Alembic for it."""
    try:  # the priority dispatcher exists since Alembic 1.18
        from alembic.autogenerate.compare import comparators
        from alembic.operations import ops
        from alembic.util import DispatchPriority, PriorityDispatchResult
    except ImportError:  # pragma: no cover - older Alembic: the app works, autogenerate
        return  # and the models-vs-migrations test then report the search objects

    def hide_search_objects(autogen_context: Any, upgrade_ops: ops.UpgradeOps) -> Any:
        kept: list[Any] = []
        for op in upgrade_ops.ops:
            if isinstance(op, ops.ModifyTableOps):
                op.ops = [o for o in op.ops if not _is_search_object(o)]
                if not op.ops:
                    continue
            elif _is_search_object(op):
                continue
            kept.append(op)
        upgrade_ops.ops = kept
        return PriorityDispatchResult.CONTINUE

    comparators.dispatch_for("autogenerate", priority=DispatchPriority.LAST)(
        hide_search_objects
    )

