"""Database access: engine, sessions, migrations and record-number allocation."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: threads queue, processes poll
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    bindparam,
    create_engine,
    event,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from intake.db.inserts import execute
from intake.db.models import RecordCounter

log = logging.getLogger("intake.db")

#: ``session.info`` key of a :meth:`Database.session`: callables run once it has
#: committed, the writer turn is released and the session is closed.
AFTER_COMMIT = "intake.after_commit"


def after_commit(session: Session, task: Callable[[], None]) -> None:
    """Run ``task`` once ``session``'s transaction has committed (see :data:`AFTER_COMMIT`);
    now, in a session not opened by :meth:`Database.session`. What was asked under a
    savepoint that is then rolled back is taken back with :func:`forget_after`."""
    deferred: list[Callable[[], None]] | None = session.info.get(AFTER_COMMIT)
    if deferred is None:
        task()
    else:
        deferred.append(task)


def after_commit_mark(session: Session) -> int:
    """Where :func:`forget_after` cuts, taken before a savepoint begins."""
    return len(session.info.get(AFTER_COMMIT) or ())


def forget_after(session: Session, mark: int) -> None:
    """A savepoint was rolled back: what :func:`after_commit` was asked since ``mark``
    (log lines about rows that are no longer written) is not done."""
    deferred = session.info.get(AFTER_COMMIT)
    if deferred is not None:
        del deferred[mark:]


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for safe concurrent use on SQLite or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's
            # deferred BEGIN, which can dead-lock two writers that both read first.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # FULL: a commit is on disk before it returns (NORMAL could lose the last
            # commits at a power cut, after a form had already shown its record number).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front: writers queue on the
            # busy timeout instead of failing with "database is locked".
            execute(conn, "BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, connect_args={"connect_timeout": 10}, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_after_idle(engine)
    return engine


#: A pooled PostgreSQL connection idle this long is tested before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0
_IDLE_SINCE = "intake.idle_since"


def _ping_after_idle(engine: Engine) -> None:
    """Test a pooled connection before use if it has been idle (a restarted server, a
    dropped network, an idle timeout), and replace it if it is dead.

    SQLAlchemy's ``pool_pre_ping`` does the same before every use: a round trip
    more for every transaction, which is most of what a busy pool's
    connections would spend on it. One in use moments ago is not tested; if it
    died meanwhile, the statement fails, the connection is invalidated and the
    caller's retry gets a new one (:class:`intake.db.writer.GroupCommit` retries
    once).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)  # leaves no transaction open
        except Exception as exc:  # noqa: BLE001 - any failure: not a connection to use
            # The pool discards this connection and checks out a new one.
            raise DisconnectionError(f"idle connection failed a ping ({type(exc).__name__})") \
                from exc
        if not alive:
            raise DisconnectionError("idle connection failed a ping")


class WriterQueue:
    """Makes SQLite writers wait their turn in a queue instead of polling for the lock.

    Every SQLite transaction here begins with ``BEGIN IMMEDIATE`` (it takes the
    database's write lock). A writer that finds the lock taken is left to
    SQLite's busy handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries:
    under load, requests spend more time asleep than working. Writers of this
    process queue on a thread lock instead, and processes on an exclusive
    ``flock`` of a file beside the database, where the kernel wakes the next
    one as soon as the lock is free. SQLite's own locking still guards the
    file (other programs, or a process that shares no lock file).

    The form writer also uses one on PostgreSQL (see
    :func:`intake.services.forms.form_writer`), where every form write waits for
    the record counter's row lock anyway.
    """

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._lock = threading.RLock()
        self._depth = 0
        self._after: list[Callable[[], None]] = []
        self._owner: int | None = None  # the thread holding the turn
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self.lock_path is None or fcntl is None:
            return None
        if self._pid != os.getpid():  # opened before a fork: that lock would be shared
            self._pid = os.getpid()
            try:
                # Readable and writable by whoever may write the database (umask applies).
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                # Correct without it (the database's own locks still guard the writes:
                # SQLite's file lock, PostgreSQL's row locks), only slower.
                self._fd = None
                log.warning("cannot open %s (%s); writers of this process will not queue "
                            "with other processes'", self.lock_path, type(exc).__name__)
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The writer turn of this thread (re-entrant); what was left for after it
        (:meth:`after_turn`) runs once the outermost turn is released."""
        later: list[Callable[[], None]] = []
        try:
            with self._lock:
                self._depth += 1
                self._owner = threading.get_ident()
                fd = self._file() if self._depth == 1 else None
                try:
                    if fd is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    try:
                        yield
                    finally:
                        if fd is not None:
                            fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    self._depth -= 1
                    if self._depth == 0:
                        self._owner = None
                        later, self._after = self._after, []
        finally:
            # Even if the body raised: what committed before asked for these.
            for task in later:
                task()

    def after_turn(self, task: Callable[[], None]) -> None:
        """Run ``task`` once this thread's writer turn is released (now if it holds none)."""
        if self._owner == threading.get_ident():  # only this thread sets its own id
            self._after.append(task)
        else:
            task()


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.writers: WriterQueue | None = None
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            on_disk = parsed.database and parsed.database != ":memory:"
            self.writers = WriterQueue(
                Path(f"{parsed.database}.writer-lock") if on_disk else None)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, bind: Connection | None = None) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error; on
        ``bind`` (a connection its caller keeps, see :class:`intake.db.writer.GroupCommit`)
        if given, else on one from the pool.

        On SQLite the transaction holds the database's write lock (the writer
        turn) from BEGIN to COMMIT, and only that long: the session is closed,
        and what was left for after the commit (:data:`AFTER_COMMIT`, e.g. the
        job messages) is done, once the next writer may go.
        """
        with self.sessions(bind=bind) if bind is not None else self.sessions() as session:
            deferred: list[Callable[[], None]] = []
            session.info[AFTER_COMMIT] = deferred
            if self.writers is None:
                with session.begin():
                    yield session
            else:
                with self.writers.turn(), session.begin():
                    yield session
        for task in deferred:
            if self.writers is not None:
                self.writers.after_turn(task)  # not while a caller still holds the turn
            else:
                task()

    @contextmanager
    def writer_turn(self) -> Iterator[None]:
        """Hold SQLite's writer turn (see :class:`WriterQueue`; re-entrant: sessions
        opened meanwhile in this thread take no other); nothing on PostgreSQL."""
        if self.writers is None:
            yield
        else:
            with self.writers.turn():
                yield

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


@cache
def insert_or_nothing(dialect: str, table: Table, *conflict_columns: str) -> Insert:
    """``INSERT ... ON CONFLICT (columns) DO NOTHING`` into ``table`` for ``dialect``.

    With ``.returning(...)`` it yields no row when the unique key already
    exists, without aborting the transaction (no savepoint needed). Built once
    per dialect and table and executed with parameter dicts: constructing a
    statement per call costs more than running it.
    """
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(dialect)  # pragma: no cover - only the two supported backends


_COUNTERS = cast(Table, RecordCounter.__table__)
_BUMP_SQL = ("UPDATE record_counters SET last_value = last_value + ? "
             "WHERE prefix = ? AND year = ? RETURNING last_value")
_UNBUMP = (
    update(_COUNTERS)
    .where(_COUNTERS.c.prefix == bindparam("p"), _COUNTERS.c.year == bindparam("y"),
           _COUNTERS.c.last_value >= bindparam("n"))
    .values(last_value=_COUNTERS.c.last_value - bindparam("n"))
)


def format_record_number(prefix: str, year: int, value: int) -> str:
    return f"{prefix}-{year}-{value:06d}"


def _connection(db: Session | Connection) -> Connection:
    return db if isinstance(db, Connection) else db.connection()


def allocate_record_numbers(db: Session | Connection, prefix: str,
                            whens: Sequence[datetime]) -> list[str]:
    """Consecutive record numbers, one per ``whens`` item (in its year), in order.

    One ``UPDATE ... RETURNING`` per year present moves the counter by as
    many numbers as that year needs.
    """
    conn = _connection(db)
    per_year = Counter(when.year for when in whens)
    next_value: dict[int, int] = {}
    for year, count in per_year.items():
        # On the DB-API cursor: every submission runs it, inside its write lock.
        bumped = execute(conn, _BUMP_SQL, (count, prefix, year))
        if not bumped:
            ensure_record_counter(conn, prefix, year)
            bumped = execute(conn, _BUMP_SQL, (count, prefix, year))
        next_value[year] = int(bumped[0][0]) - count + 1
    numbers = []
    for when in whens:
        numbers.append(format_record_number(prefix, when.year, next_value[when.year]))
        next_value[when.year] += 1
    return numbers


def ensure_record_counter(db: Session | Connection, prefix: str, year: int) -> None:
    """The counter row of ``prefix`` and ``year``, created at 0 if there is none."""
    conn = _connection(db)
    conn.execute(insert_or_nothing(conn.dialect.name, _COUNTERS, "prefix", "year"),
                 {"prefix": prefix, "year": year, "last_value": 0})


def release_record_numbers(db: Session | Connection, prefix: str, year: int,
                           count: int) -> None:
    """Give back the last ``count`` numbers allocated for ``prefix`` in ``year``.

    Only for numbers this transaction has just allocated and will not use (the
    submissions turned out to be duplicates): the counter row stays locked by
    this transaction until it ends, so no one else can have taken a later
    number, and the sequence keeps no gap.
    """
    if count:
        _connection(db).execute(_UNBUMP, {"p": prefix, "y": year, "n": count})
