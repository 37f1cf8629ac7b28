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

The counters are written on a small pool of connections of their own
(same database; on SQLite the same writer lock) whose commits do not wait for
the disk: SQLite ``PRAGMA synchronous=NORMAL`` (WAL mode), PostgreSQL
``synchronous_commit=off`` and autocommit, so a hit is one statement and one
round trip. A crash can lose the last counts of a window, never corrupt
anything; the records keep their durable commits. Measured on the
development machine: about 5 ms a hit with durable commits, 0.2 ms (SQLite)
and 0.3 ms (PostgreSQL) without.

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
from sqlalchemy import Table, bindparam, case, delete, event, func, select
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


#: The counters' own connections, per process, opened as needed: a hit holds one for one
#: statement. As many as a worker has threads, so none is opened and closed per hit.
POOL_SIZE = 8
POOL_OVERFLOW = 8


def _counters_database(db: Database) -> Database:
    """Connections of the counters' own on ``db``'s database, committing without a flush."""
    if db.dialect == "sqlite":
        # The same file, and the same writer lock file as ``db`` (its flock excludes theirs
        # in this process too). Never hit from inside a write: that would wait on itself.
        own = Database(db.url)
        setting = "PRAGMA synchronous=NORMAL"
    else:
        own = Database(db.url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                       isolation_level="AUTOCOMMIT")
        setting = "SET synchronous_commit TO OFF"

    @event.listens_for(own.engine, "connect")
    def _no_flush(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(setting)
        cursor.close()

    return own


class DatabaseCounters(Storage):
    """Fixed-window counters in ``rate_limit_counters`` (see the module docstring)."""

    STORAGE_SCHEME = None  # built with its database, never from a URI

    def __init__(self, db: Database, **options: Any) -> None:
        self.db = _counters_database(db)
        self._upsert = _upsert(db.dialect)
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
        params = {"key": key, "amount": amount, "expires_at": now + expiry, "now": now}
        # SQLite: one transaction in the writer turn (BEGIN IMMEDIATE); PostgreSQL: each
        # statement commits by itself (autocommit).
        with self.db.writer_turn(), self.db.engine.begin() as conn:
            if purge:
                conn.execute(delete(COUNTERS).where(COUNTERS.c.expires_at <= now))
            hits = conn.execute(self._upsert, params).scalar_one()
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
        with self.db.writer_turn(), self.db.engine.begin() as conn:
            return conn.execute(delete(COUNTERS)).rowcount

    def clear(self, key: str) -> None:
        with self.db.writer_turn(), self.db.engine.begin() as conn:
            conn.execute(delete(COUNTERS).where(COUNTERS.c.key == key))

    def close(self) -> None:
        """Close its connections."""
        self.db.dispose()

    def __len__(self) -> int:
        """Rows held (ended windows linger until the next purge)."""
        with self.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(COUNTERS)).scalar() or 0)
