"""Group commit: concurrent callers' writes share one transaction and one durable commit.

Every submission must be on disk before the person is told it was received,
and each durable commit costs an fsync (SQLite ``synchronous=FULL``, and
PostgreSQL by default) while the database's write lock or the record
counter's row lock is held. Taken one at a time, those commits line up
behind each other and cap a process at a few hundred submissions a second,
however many threads it runs.

:class:`GroupCommit` is the database's own remedy, applied in-process (the
leader/follower pattern): a caller queues its item and, unless a batch is
being written, leads the next one: it takes every item queued so far, writes
them all in one transaction, commits once and hands each caller its own
result. The callers wait on a condition that the end of each batch
notifies, so they are answered as soon as the commit that holds their item
is done (a leader lock instead would let a running thread start the next
batch before the woken callers saw their results, and they would wait for
it too). Nobody answers before the commit that holds their item. Under no
load a batch is one item and nothing changes; under load the waiting
callers are served together.

If a batch fails, its items are written again one transaction each, so a
failure belongs only to the item that causes it and the others are stored.
A transaction that fails because its connection died (the database
restarted, the network dropped) is written once more on a new connection:
``write_batch`` must be idempotent (the form writer is: the same bytes are one
entry), since a connection lost during COMMIT leaves unknown whether it
committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from intake.db import PING_AFTER_IDLE_SECONDS, Database

log = logging.getLogger("intake.db.writer")

Item = TypeVar("Item")
Result = TypeVar("Result")

#: What a batch writes: the items in order, in the open session; one result per item.
WriteBatch = Callable[[Session, Sequence[Item]], Sequence[Result]]


@dataclass(eq=False)
class Job(Generic[Item, Result]):
    item: Item
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None


@dataclass
class GroupStats:
    batches: int = 0
    items: int = 0
    largest: int = 0
    retried_alone: int = 0
    reconnected: int = 0


class GroupCommit(Generic[Item, Result]):
    def __init__(self, db: Database, write_batch: WriteBatch[Item, Result], *,
                 max_batch: int = 64,
                 turn: Callable[[], AbstractContextManager[None]] | None = None,
                 keep_connection: bool = False) -> None:
        self.db = db
        # Write every batch on one connection of its own (the process's long-lived writer
        # does, and gives it back with close()), instead of one from the pool each time.
        self.keep_connection = keep_connection
        # Held while a batch is taken and written: the database's writer turn (SQLite),
        # or what the caller gives (see form_writer).
        self.turn = turn or db.writer_turn
        self.write_batch = write_batch
        self.max_batch = max_batch
        self.stats = GroupStats()
        self._queue: list[Job[Item, Result]] = []
        # Guards the queue and ``_leading`` (a batch is being taken and written); waited on
        # by the callers whose items are queued or in that batch.
        self._changed = threading.Condition(threading.Lock())
        self._leading = False
        self._conn: Connection | None = None
        self._conn_used = 0.0

    def write(self, item: Item) -> Result:
        """Write ``item`` (perhaps with others'); returns once it is committed, or raises."""
        job: Job[Item, Result] = Job(item)
        with self._changed:
            self._queue.append(job)
        while True:
            leading = False
            try:
                with self._changed:
                    # Woken as soon as a batch ends: a caller whose item it held returns
                    # then, not after whichever batch another caller starts first.
                    while self._leading and not job.done:
                        self._changed.wait()
                    if job.done:
                        break
                    self._leading = leading = True
                # The batch is taken once the write turn is ours (SQLite's writer turn,
                # or the turn given, see form_writer): whoever queued while another
                # process held it is written in this transaction too.
                with self.turn():
                    with self._changed:
                        batch = self._queue[:self.max_batch]
                        del self._queue[:self.max_batch]
                    self._run(batch)
                    with self._changed:  # its callers go now, not after what follows the
                        self._changed.notify_all()  # turn (the work items' messages)
            except BaseException:
                # The wait was interrupted, or the turn could not be had, before this item
                # was taken: it leaves the queue with its caller's error, so that no later
                # batch stores what its caller was told had failed.
                with self._changed:
                    if not job.done and any(queued is job for queued in self._queue):
                        self._queue = [queued for queued in self._queue if queued is not job]
                raise
            finally:
                if leading:
                    with self._changed:
                        self._leading = False
                        self._changed.notify_all()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _run(self, batch: list[Job[Item, Result]]) -> None:
        try:
            try:
                self._commit(batch)
            except Exception:  # noqa: BLE001 - find the item that fails: one transaction each
                if len(batch) == 1:
                    raise
                self.stats.retried_alone += len(batch)
                for job in batch:
                    try:
                        self._commit([job])
                    except Exception as exc:  # noqa: BLE001 - that caller gets its error
                        job.error = exc
        except BaseException as exc:
            for job in batch:
                if job.result is None and job.error is None:
                    job.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for job in batch:
                job.done = True

    def _commit(self, batch: list[Job[Item, Result]]) -> None:
        try:
            self._commit_once(batch)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database connection lost during a write (%s); writing again",
                        type(exc.orig).__name__)
            self.stats.reconnected += 1
            self._commit_once(batch)

    def _commit_once(self, batch: list[Job[Item, Result]]) -> None:
        """Write ``batch`` in one transaction and commit it, then :meth:`_done` (a subclass
        may write some batches another way)."""
        with self.db.session(bind=self._connection() if self.keep_connection else None
                             ) as session:
            results = self.write_batch(session, [job.item for job in batch])
            if len(results) != len(batch):
                raise RuntimeError("write_batch must return one result per item")
        self._done(batch, results)

    def _connection(self) -> Connection:
        """The writer's own connection, used only by the leader of a batch (taking one
        from the pool and giving it back for every batch costs more than the batch's
        rows). One idle for a while goes back to the pool, which tests it before it is
        used again (see :func:`intake.db.make_engine`); one that failed is replaced."""
        conn, now = self._conn, time.monotonic()
        if conn is not None and (conn.invalidated or conn.closed or conn.in_transaction()
                                 or now - self._conn_used >= PING_AFTER_IDLE_SECONDS):
            conn.close()
            conn = None
        if conn is None:
            conn = self._conn = self.db.engine.connect()
        self._conn_used = now
        return conn

    def close(self) -> None:
        """Give the writer's connection back to the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _done(self, batch: list[Job[Item, Result]], results: Sequence[Result]) -> None:
        """``batch`` is committed: hand each caller its result."""
        for job, result in zip(batch, results, strict=True):
            job.result = result
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
