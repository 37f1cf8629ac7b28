"""The job machinery: dramatiq broker, the one actor, the sweeper.

One actor, ``perform_work_item(work_item_id)``, runs every kind of work by
looking up a handler for the row's ``kind``. Handlers get a session in an open
transaction and the claimed :class:`WorkItem`; their database effects commit
together with the "done" mark. They may run more than once for the same item
(a crash after an external side effect and before the commit), so handlers
with external effects must be idempotent themselves (delivery uses a fixed
Message-ID for that).

Brokers, chosen by ``INTAKE_BROKER_URL``:

- unset: dramatiq's in-memory ``StubBroker`` with worker threads inside the
  same process (``intake serve``); a message lost with the process is
  re-sent from the database by the sweeper at the next start;
- ``redis://`` / ``amqp://``: real brokers, run by ``intake worker`` on any
  number of hosts.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import event
from sqlalchemy.orm import Session

from intake.core.failures import PermanentError, TransientError
from intake.services import heartbeats
from intake.services import work as workitems
from intake.services.work import (
    AFTER_COMMIT,
    Database,
    WorkItem,
    counts_by_state,
    due_item_ids,
    unfinished_count,
)
from intake.settings import Settings

log = logging.getLogger("intake.jobs")

QUEUE = "intake"
ACTOR_NAME = "perform_work_item"
#: Broker messages a worker process takes ahead, per worker thread (dramatiq's default: 2).
PREFETCH_PER_THREAD = 16

#: Due items of a kind registered with ``together=`` that one message's worker thread
#: claims with the item the message names (oldest first).
CLAIM_TOGETHER = 20
#: A batch claimed together reads what its items need again (for the items not yet
#: sent) once its reads are this old, and after a failure: each item's send-time
#: decision is taken on inputs read at most this long before its send.
READS_FRESH_SECONDS = 1.0
#: How many ids of items claimed together a process remembers, so that their own
#: messages need no claim (beyond it, such a message costs one UPDATE that takes nothing).
TAKEN_TOGETHER_KEPT = 100_000

Handler = Callable[[Session, WorkItem], None]
BatchHandler = Callable[[Session, list[WorkItem]], None]


@dataclass(frozen=True)
class Together:
    """A kind whose due items are claimed together (:meth:`JobSystem.register`): ``read``
    reads what a list of its items needs, in one query per table; ``send`` performs one
    item with those reads. Each item still commits on its own, right after its send."""

    read: Callable[[Session, list[WorkItem]], Any]
    send: Callable[[Session, WorkItem, Any], None]
    #: After an item failed: the reads with what a failure changes read again (for the
    #: forwards, the circuits); None reads everything again. Reading everything after
    #: each failure made a batch whose destination is down cost a read per item left.
    refresh: Callable[[Session, Any], Any] | None = None


class BrokerUnavailable(RuntimeError):
    """The configured broker cannot be reached."""


def make_broker(settings: Settings) -> dramatiq.Broker:
    if settings.broker_url is None:
        return StubBroker()
    if settings.broker_kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        # Short socket timeouts: a dead Redis must fail a send fast (the
        # sweeper re-sends later) instead of hanging a web request.
        return RedisBroker(url=settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=settings.broker_url, confirm_delivery=True)


def check_broker(broker: dramatiq.Broker, settings: Settings) -> None:
    """Raise :class:`BrokerUnavailable` with a one-line reason if it is down."""
    if settings.broker_url is None:
        return
    try:
        if settings.broker_kind == "redis":
            broker.client.ping()  # type: ignore[attr-defined]
        else:
            import pika

            params = pika.URLParameters(settings.broker_url)
            params.socket_timeout = 5
            params.blocked_connection_timeout = 5
            params.connection_attempts = 1
            pika.BlockingConnection(params).close()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; say which
        raise BrokerUnavailable(
            f"{settings.broker_kind} broker unreachable ({type(exc).__name__})"
        ) from exc


@dataclass
class JobStats:
    performed: int = 0
    failed: int = 0
    swept: int = 0
    last_sweep_at: datetime | None = None
    send_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


class JobSystem:
    """Broker, actor, handlers and the :class:`Sweeper`, bound to one database."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.retry_policy = workitems.RetryPolicy.from_settings(settings)
        self.broker = make_broker(settings)
        self.handlers: dict[str, Handler] = {}
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.together: dict[str, Together] = {}
        # Items this process claimed with another item's message and did or is doing
        # (ids, oldest first): their own messages, when they come here, need no claim.
        self._taken_together: dict[int, None] = {}
        self._taken_lock = threading.Lock()
        self.reads_fresh_seconds = READS_FRESH_SECONDS
        self.stats = JobStats()
        # False where no message could reach a worker (see create_app): new work items
        # then wait in the database for a sweeper (intake serve's) to send them.
        self.send_messages = True
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._worker: dramatiq.Worker | None = None
        self.sweeper = Sweeper(settings, db, self.send, self.stats)
        self.heartbeat = Heartbeat(settings, db, self.identity)
        # Set after every commit that created work: wakes :meth:`drain`.
        self._work_committed = threading.Event()
        self.actor: dramatiq.Actor[[int], None] = dramatiq.actor(
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=QUEUE,
            max_retries=0,  # retries are rows in the database, not broker redeliveries
            time_limit=int(settings.lease_seconds * 1000),
        )(self._perform)
        # after_commit also fires when a SAVEPOINT is released (with the nested
        # transaction still current): only the outermost commit sends.
        event.listen(db.sessions, "after_commit", self._after_commit)
        event.listen(db.sessions, "after_rollback", self._after_rollback)

    # -- sending ---------------------------------------------------------

    def register(self, kind: str, handler: Handler | None = None, *,
                 many: BatchHandler | None = None, together: Together | None = None) -> None:
        """``handler`` performs one item of ``kind``; ``many``, if given, a batch of them
        (for :meth:`perform_batch`), all or nothing.

        With ``together`` instead of ``handler``, the message for one item of ``kind``
        claims up to :data:`CLAIM_TOGETHER` due items of it at once (:meth:`perform`),
        reads for them all at once and sends them one by one, each committed on its
        own; the one-item handler is the same code: a batch of one.
        """
        if together is not None:
            spec = together

            def handler(session: Session, item: WorkItem) -> None:
                spec.send(session, item, spec.read(session, [item]))

            self.together[kind] = together
        else:
            self.together.pop(kind, None)
        if handler is None:
            raise TypeError("register needs a handler or together=")
        self.handlers[kind] = handler
        if many is not None:
            self.batch_handlers[kind] = many
        else:
            self.batch_handlers.pop(kind, None)

    def _after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return
        pending = session.info.pop(workitems.PENDING_SENDS, None)
        if not pending:
            return
        if not self.send_messages:
            self._work_committed.set()
            return
        # In a Database.session, sent once the writer turn is released: the next
        # writer need not wait for the broker.
        deferred = session.info.get(AFTER_COMMIT)
        if deferred is not None:
            deferred.append(lambda: self._committed(pending))
        else:
            self._committed(pending)

    def _committed(self, pending: Sequence[tuple[int, datetime]]) -> None:
        """These new work items (id, due) are committed: send their messages (where no
        worker could receive one, they wait for the sweeper) and wake :meth:`drain`."""
        if not pending:
            return
        if self.send_messages:
            for item_id, due in pending:
                self.send(item_id, due)
        self._work_committed.set()

    def _after_rollback(self, session: Session) -> None:
        if session.get_nested_transaction() is None:  # the outermost transaction
            session.info.pop(workitems.PENDING_SENDS, None)

    def send(self, item_id: int, due: datetime | None = None) -> bool:
        """Send the trigger message; a failure is logged and left to the sweeper."""
        delay_ms = 0
        if due is not None:
            delay_ms = max(0, int((due - datetime.now(UTC)).total_seconds() * 1000))
        try:
            self.actor.send_with_options(args=(item_id,), delay=delay_ms or None)
        except Exception as exc:  # noqa: BLE001 - the row is durable; the sweeper re-sends
            self.stats.bump("send_failures")
            log.warning("work item %s: message not sent (%s); the sweeper will re-send",
                        item_id, type(exc).__name__)
            return False
        return True

    # -- performing ------------------------------------------------------

    def _perform(self, item_id: int) -> None:
        worker = f"{self.identity}:{threading.get_ident()}"
        self.perform(item_id, worker)

    def perform(self, item_id: int, worker: str) -> str:
        """Run one work item if it is due and unclaimed (:meth:`perform_batch` of one;
        for a kind registered ``together``, with the due items of its kind claimed with
        it). Returns what happened to that item: done, failed, lease-lost, released or
        not-claimed."""
        with self._taken_lock:
            if self._taken_together.pop(item_id, False) is None:
                # Claimed and done (or being done) here with an earlier item's message:
                # this message is spent. (An item that failed or was given back was
                # dropped from the set: the message sent for its retry claims it.)
                return "not-claimed"
        with self.db.session() as session:
            claimed = workitems.claim_together(
                session, item_id, worker, self.settings.lease_seconds,
                kinds=tuple(self.together), limit=CLAIM_TOGETHER)
        if not claimed:
            return "not-claimed"
        spec = self.together.get(claimed[0].kind)
        if spec is None:
            outcomes = self._run(claimed, worker)
        else:
            try:
                outcomes = self._run_together(spec, claimed, worker, item_id)
            except BaseException:
                # The thread is stopped mid-batch (a time limit, a shutdown): the items
                # left are found again by their messages or the sweeper, once their lease
                # runs out; this process must not take those messages for spent.
                self._unmark_taken([item.id for item in claimed])
                raise
        return next((outcome for item, outcome in zip(claimed, outcomes, strict=True)
                     if item.id == item_id), "not-claimed")

    def perform_batch(self, item_ids: Sequence[int], worker: str) -> int:
        """Run several items with two commits in all instead of two each. Returns how many
        were done.

        The items are claimed in one transaction; their handlers then run in one
        transaction (a kind's batch handler all or nothing, else each under a
        savepoint, so one that fails is rolled back alone and its failure
        recorded beside the others); the "done" marks are set at the end in one
        UPDATE that checks every claim still holds. Should a claim have been
        lost, or that transaction fail as a whole, nothing of it is committed and
        each claimed item is run on its own.
        """
        return sum(outcome == "done" for outcome in self._claim_and_run(item_ids, worker))

    def _claim_and_run(self, item_ids: Sequence[int], worker: str) -> list[str]:
        with self.db.session() as session:
            claimed = workitems.claim_many(session, item_ids, worker,
                                            self.settings.lease_seconds)
        return self._run(claimed, worker) if claimed else []

    def _mark_taken(self, item_ids: Sequence[int]) -> None:
        with self._taken_lock:
            self._taken_together.update(dict.fromkeys(item_ids))
            excess = len(self._taken_together) - TAKEN_TOGETHER_KEPT
            for old in list(itertools.islice(self._taken_together, max(0, excess))):
                del self._taken_together[old]  # its message, if it comes, claims nothing

    def _unmark_taken(self, item_ids: Sequence[int]) -> None:
        with self._taken_lock:
            for item_id in item_ids:
                self._taken_together.pop(item_id, None)

    def _run_together(self, spec: Together, claimed: Sequence[WorkItem], worker: str,
                      message_item: int) -> list[str]:
        """Items of one kind claimed together: read for them all, then each item sent and
        committed on its own transaction (a failure is its own: recorded, the others go
        on), so a worker killed mid-batch can re-send at most the one in flight.

        The reads are taken again for the items left once they are
        :data:`READS_FRESH_SECONDS` old; after an item failed, only what a failure changes
        (``spec.refresh``; all of them without one). Items not started once half the
        lease has gone (a slow server) are given back, due now, rather than risk a
        lease that expires while they are sent.
        """
        started = time.monotonic()
        # The others' own messages, when they come to this process while their items wait
        # here, need no claim. Each is forgotten before its item runs (its failure or
        # release sends a new message, which must claim it) and remembered once done.
        self._mark_taken([item.id for item in claimed if item.id != message_item])
        outcomes: list[str] = []
        reads: Any = None
        read_at = 0.0
        failed = False
        for n, item in enumerate(claimed):
            if time.monotonic() - started > self.settings.lease_seconds / 2:
                rest = [i.id for i in claimed[n:]]
                self._unmark_taken(rest)
                with self.db.session() as session:
                    workitems.release_many(session, rest, worker)
                return outcomes + ["released"] * len(rest)
            refresh = spec.refresh if failed else None
            whole = reads is None or time.monotonic() - read_at > self.reads_fresh_seconds \
                or (failed and refresh is None)
            if whole or refresh is not None:
                try:
                    with self.db.session() as session:
                        if whole:
                            read_at = time.monotonic()
                            reads = spec.read(session, list(claimed[n:]))
                        elif refresh is not None:
                            # What the failure changed (a circuit), read again; the rest
                            # of the reads still holds.
                            reads = refresh(session, reads)
                except Exception as exc:  # noqa: BLE001 - each item then reads for itself
                    self._unmark_taken([i.id for i in claimed[n:]])
                    return outcomes + self._one_by_one(claimed[n:], worker, type(exc).__name__)
            failed = False
            self._unmark_taken([item.id])
            outcome = self._run([item], worker, call=partial(_send_with, spec.send, reads))[0]
            outcomes.append(outcome)
            if outcome == "done":
                if item.id != message_item:
                    self._mark_taken([item.id])
            else:
                failed = True
        return outcomes

    def _run(self, claimed: Sequence[WorkItem], worker: str,
             call: Handler | None = None) -> list[str]:
        """Run the handlers of items ``worker`` has claimed, in one transaction; record the
        outcomes (see :meth:`perform_batch`). One item runs without a savepoint: its
        failure fails the transaction, and is recorded in a new one. ``call`` (one item
        only) runs it instead of its kind's handler."""
        try:
            with self.db.session() as session:
                if call is not None:
                    call(session, session.merge(claimed[0], load=False))
                    outcomes = ["done"]
                else:
                    outcomes = self._call_handlers(session, claimed, worker)
                finished = [item.id for item, outcome in zip(claimed, outcomes, strict=True)
                            if outcome == "done"]
                if finished and not workitems.complete_many(session, finished, worker):
                    # A lease expired and someone else took an item: undo our effects.
                    raise _LeaseLost()
        except _LeaseLost:
            if len(claimed) == 1:
                log.warning("work item %s (%s): lease lost; effects rolled back",
                            claimed[0].id, claimed[0].kind)
                return ["lease-lost"]
            return self._one_by_one(claimed, worker, "a lease was lost")
        except Exception as exc:  # noqa: BLE001 - recorded on the row, then retried or dead-lettered
            if len(claimed) > 1:
                return self._one_by_one(claimed, worker, type(exc).__name__)
            with self.db.session() as session:
                self._record_failure(session, claimed[0].id, claimed[0].kind, worker, exc)
            return ["failed"]
        for item, outcome in zip(claimed, outcomes, strict=True):
            if outcome == "done":
                self.stats.bump("performed")
                log.info("work item %s (%s) done", item.id, item.kind)
        return outcomes

    def _call_handlers(self, session: Session, claimed: Sequence[WorkItem],
                       worker: str) -> list[str]:
        if len(claimed) == 1:
            # The row as claimed, attached without reading it again.
            self._call_handler(session, session.merge(claimed[0], load=False))
            return ["done"]
        batch = self.batch_handlers.get(claimed[0].kind)
        if batch is not None and all(item.kind == claimed[0].kind for item in claimed):
            # All or nothing: if it raises, each item runs on its own.
            batch(session, [session.merge(item, load=False) for item in claimed])
            return ["done"] * len(claimed)
        return [self._run_in_savepoint(session, item, worker) for item in claimed]

    def _one_by_one(self, claimed: Sequence[WorkItem], worker: str, why: str) -> list[str]:
        log.warning("batch of %d work items failed as a whole (%s); running them one by one",
                    len(claimed), why)
        return [outcome for item in claimed for outcome in self._run([item], worker)]

    def _call_handler(self, session: Session, item: WorkItem) -> None:
        handler = self.handlers.get(item.kind)
        if handler is None:
            raise PermanentError(f"no handler for work kind '{item.kind}'")
        handler(session, item)

    def _record_failure(self, session: Session, item_id: int, kind: str, worker: str,
                        exc: Exception) -> None:
        """After a failed attempt: the retry or dead letter on the row, a count, a log line."""
        self.stats.bump("failed")
        failed = workitems.record_failure(session, item_id, worker, exc, self.retry_policy)
        if isinstance(exc, TransientError):
            # Expected while a destination is down: not a warning per item.
            log.info("work item %s (%s) deferred (%s); now %s", item_id, kind,
                     type(exc).__name__, failed.state if failed else "unknown")
        else:
            log.warning("work item %s (%s) failed with %s; now %s", item_id, kind,
                        type(exc).__name__, failed.state if failed else "unknown")

    def _run_in_savepoint(self, session: Session, claimed: WorkItem, worker: str) -> str:
        sends = len(session.info.get(workitems.PENDING_SENDS) or ())
        try:
            try:
                with session.begin_nested():
                    self._call_handler(session, session.merge(claimed, load=False))
            except BaseException:
                # Work items created under the rolled-back savepoint: not to be announced.
                del session.info.setdefault(workitems.PENDING_SENDS, [])[sends:]
                raise
        except Exception as exc:  # noqa: BLE001 - recorded on the row, then retried or dead-lettered
            self._record_failure(session, claimed.id, claimed.kind, worker, exc)
            return "failed"
        return "done"

    # -- draining (the one-shot commands) -----------------------------------

    def drain(self, kinds: Collection[str], *, finish: threading.Event,
              stop: threading.Event | None = None, idle_seconds: float = 1.0,
              batch: int = 200, chunk: int = 50) -> int:
        """Perform due items of ``kinds`` in the calling thread, oldest first.

        For ``intake poll --once`` and ``intake ingest`` in embedded mode: they
        route what they stored before they exit, without dramatiq worker threads
        taking other work (deliveries wait for ``intake serve`` or ``intake
        worker``, whose sweeper sends them). Returns, with the number performed,
        once ``finish`` is set and no item of ``kinds`` is pending or running
        (a failed one is retried when due, as the worker would), or when ``stop``
        is set.
        """
        worker = f"{self.identity}:{threading.get_ident()}:drain"
        kinds = tuple(kinds)
        performed = 0
        while stop is None or not stop.is_set():
            finishing = finish.is_set()  # read first: what was stored before is seen below
            self._work_committed.clear()
            with self.db.session() as session:
                ids = due_item_ids(session, kinds, batch)
                waiting = 0 if ids or not finishing else unfinished_count(session, kinds)
            for start in range(0, len(ids), chunk):
                if stop is not None and stop.is_set():
                    break
                performed += self.perform_batch(ids[start:start + chunk], worker)
            if ids:
                continue
            if finishing and not waiting:
                return performed
            # Nothing due: wait for new work, for ``finish``, or for a retry to fall due.
            self._work_committed.wait(idle_seconds)
        return performed

    def wake(self) -> None:
        """Wake :meth:`drain` now (after setting its ``finish`` or ``stop``)."""
        self._work_committed.set()

    # -- lifecycle -------------------------------------------------------

    def start(self, *, consume: bool = True, sweep: bool = True) -> None:
        """Start worker threads (``consume``) and the sweeper thread."""
        if consume and self._worker is None:
            threads = self.settings.worker_threads
            self._worker = dramatiq.Worker(
                self.broker,
                queues={QUEUE},
                worker_threads=threads,
                worker_timeout=250,
            )
            # dramatiq takes 2 messages a thread ahead by default, and its Redis consumer,
            # once that many are taken and not yet acknowledged, sleeps (5 ms, doubling up
            # to worker_timeout) before it looks again: with work items of a few ms the
            # threads sat idle waiting for it (the "fixed wait per message" of issue 28).
            # A deeper prefetch keeps them fed. A process that dies with messages taken
            # ahead loses nothing: the broker re-queues them, and the sweeper re-sends
            # any item still waiting in the database.
            self._worker.queue_prefetch = max(self._worker.queue_prefetch,
                                              threads * PREFETCH_PER_THREAD)
            self._worker.start()
            self.heartbeat.start()
        if sweep:
            self.sweeper.start()

    @property
    def consuming(self) -> bool:
        """Worker threads of this process take work from the broker."""
        return self._worker is not None

    def worker_died(self) -> str | None:
        """Why this process's dramatiq worker can no longer work (a consumer or worker
        thread that ended), or None while it is whole. ``intake worker`` exits on it."""
        worker = self._worker
        if worker is None:
            return None
        for consumer in worker.consumers.values():
            if not consumer.is_alive():
                return f"the consumer of queue {consumer.queue_name!r} stopped"
        dead = sum(not thread.is_alive() for thread in worker.workers)
        if dead:
            return f"{dead} of {len(worker.workers)} worker thread(s) stopped"
        return None

    def stop(self) -> None:
        self.heartbeat.stop()
        if self._worker is not None:
            self._worker.stop(timeout=10_000)
            self._worker = None
        self.sweeper.stop()
        self.broker.close()

    def counts(self) -> dict[str, int]:
        """Work items per state (``intake jobs status``, ``/healthz``)."""
        with self.db.session() as session:
            return counts_by_state(session)


class Sweeper:
    """Re-sends the messages of work items that waited too long, every sweep interval.

    The database is the source of truth and the broker only a trigger: a
    message lost with a process or a broker outage delays its work item until
    the next sweep, never loses it.
    """

    def __init__(self, settings: Settings, db: Database, send: Callable[[int], bool],
                 stats: JobStats) -> None:
        self.settings = settings
        self.db = db
        self.send = send
        self.stats = stats
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def sweep(self) -> int:
        """Re-send messages for work items that waited too long. Returns how many."""
        with self.db.session() as session:
            ids = workitems.stale_items(session, self.settings.redeliver_after_seconds)
        for item_id in ids:
            self.send(item_id)
        self.stats.bump("swept", len(ids))
        self.stats.last_sweep_at = datetime.now(UTC)
        if ids:
            log.info("sweeper re-sent %d work item(s)", len(ids))
        return len(ids)

    def start(self) -> None:
        """Sweep once now, then in a thread every ``INTAKE_SWEEP_INTERVAL`` seconds."""
        if self._thread is not None:
            return
        self._stop.clear()
        try:
            self.sweep()
        except Exception as exc:  # noqa: BLE001 - the loop tries again
            log.warning("initial sweep failed (%s)", type(exc).__name__)
        self._thread = threading.Thread(target=self._loop, name="intake-sweeper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_seconds):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - a database outage must not kill the loop
                log.warning("sweep failed (%s); will try again", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class Heartbeat:
    """Writes this process's ``worker_heartbeats`` row every third of
    ``INTAKE_HEARTBEAT_STALE`` while its worker threads consume (``/readyz`` reads it)."""

    def __init__(self, settings: Settings, db: Database, identity: str) -> None:
        self.db = db
        self.identity = identity
        self.stale_seconds = settings.heartbeat_stale_seconds
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def beat(self) -> None:
        try:
            heartbeats.beat(self.db, self.identity, "worker", self.stale_seconds)
        except Exception as exc:  # noqa: BLE001 - a database outage must not stop the loop
            log.warning("heartbeat not written (%s); will try again", type(exc).__name__)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="intake-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.stale_seconds / 3):
            self.beat()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        try:
            heartbeats.remove(self.db, self.identity)
        except Exception as exc:  # noqa: BLE001 - it goes stale on its own
            log.warning("heartbeat row not removed (%s)", type(exc).__name__)


def _send_with(send: Callable[[Session, WorkItem, Any], None], reads: Any,
               session: Session, item: WorkItem) -> None:
    send(session, item, reads)


class _LeaseLost(Exception):
    pass
