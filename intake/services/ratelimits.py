"""Rate-limit counters in the database, shared by every worker process.

A ``limits`` storage (the interface Flask-Limiter and ``limits`` strategies
count on) for fixed windows, used when no Redis is configured: the counters
of a form's rate limit must be the same for every gunicorn worker, or a
10/minute limit lets 10 per worker through.

One hit is one atomic upsert (``INSERT ... ON CONFLICT (key) DO UPDATE ...
RETURNING``, on SQLite and PostgreSQL alike): a new key or an ended window
starts at the hit's amount, a live window adds to its count; the count after
the hit comes back in the same statement, so two processes can never both
see the last free hit. Rows whose window has ended are deleted at most once
every :data:`PURGE_SECONDS` per process, in the transaction of a hit.

On SQLite the counters are written on connections of their own with
``PRAGMA synchronous=NORMAL``: in WAL mode a commit then waits for no fsync
(about 0.25 ms a hit instead of 5 ms on this machine), and a power cut can
lose at most the last counts of a window, never corrupt the file. On
PostgreSQL the hit's transaction sets ``synchronous_commit`` off for itself
(``SET LOCAL``), with the same trade (about 0.3 ms a hit instead of 5 ms). The
records themselves keep their durable commits.

Keys are those of ``limits`` (``LIMITER/<prefix>/<scope>/<client key>/...``);
the client key is a keyed hash of the address (``intake.web.forms.client_key``),
never the address.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any, cast

from limits.storage import Storage
from sqlalchemy import Table, bindparam, case, delete, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from intake.db import Database
from intake.db.edge_models import RateLimitCounter

COUNTERS = cast(Table, RateLimitCounter.__table__)
#: How often (at most) a process deletes the rows of ended windows.
PURGE_SECONDS = 60.0


@cache
def _upsert(dialect: str) -> Insert:
    """The one statement of a hit: start a window, or add to the live one; the count after."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(COUNTERS)
    stmt = stmt.values(key=bindparam("key"), hits=bindparam("amount"),
                                   expires_at=bindparam("expires_at"))
    ended = COUNTERS.c.expires_at <= bindparam("now")
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"hits": case((ended, stmt.excluded.hits), else_=COUNTERS.c.hits + stmt.excluded.hits),
              "expires_at": case((ended, stmt.excluded.expires_at),
                                 else_=COUNTERS.c.expires_at)},
    ).returning(COUNTERS.c.hits)


_NO_WAIT_FOR_FLUSH = text("SET LOCAL synchronous_commit TO OFF")


class DatabaseCounters(Storage):
    """Fixed-window counters in ``rate_limit_counters`` (see the module docstring)."""

    STORAGE_SCHEME = None  # built with its database, never from a URI

    def __init__(self, db: Database, **options: Any) -> None:
        self.db = db
        self._own: Database | None = None
        if db.dialect == "sqlite":
            # Its own pool (same file, same writer lock) whose commits skip the fsync.
            self.db = self._own = Database(db.url)

            @event.listens_for(self._own.engine, "connect")
            def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        super().__init__(None, wrap_exceptions=False)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def _purge_due(self) -> bool:
        now = time.monotonic()
        with self._purge_lock:
            if now < self._next_purge:
                return False
            self._next_purge = now + PURGE_SECONDS
            return True

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        purge = self._purge_due()
        with self.db.session() as session:
            if self.db.dialect == "postgresql":
                session.execute(_NO_WAIT_FOR_FLUSH)
            if purge:
                session.execute(delete(COUNTERS).where(COUNTERS.c.expires_at <= now))
            hits = session.execute(_upsert(self.db.dialect), {
                "key": key, "amount": amount, "expires_at": now + expiry, "now": now,
            }).scalar_one()
        return int(hits)

    def get(self, key: str) -> int:
        with self.db.engine.connect() as conn:
            hits = conn.execute(select(COUNTERS.c.hits).where(
                COUNTERS.c.key == key, COUNTERS.c.expires_at > time.time())).scalar()
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        with self.db.engine.connect() as conn:
            expires_at = conn.execute(select(COUNTERS.c.expires_at).where(
                COUNTERS.c.key == key)).scalar()
        return float(expires_at) if expires_at is not None else time.time()

    def check(self) -> bool:
        try:
            self.db.ping()
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.db.session() as session:
            cleared = session.scalar(select(func.count()).select_from(COUNTERS))
            session.execute(delete(COUNTERS))
        return int(cleared or 0)

    def clear(self, key: str) -> None:
        with self.db.session() as session:
            session.execute(delete(COUNTERS).where(COUNTERS.c.key == key))

    def close(self) -> None:
        """Close the connections of its own (SQLite), if any."""
        if self._own is not None:
            self._own.dispose()

    def __len__(self) -> int:
        """Rows held (ended windows linger until the next purge)."""
        with self.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(COUNTERS)).scalar() or 0)
