"""Group commit: concurrent writers share a transaction; each gets its own result or error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.db import Database, WriterQueue
from intake.db.models import Entry
from intake.db.writer import GroupCommit, Job
from intake.services.records import NewSubmission, Recorded, record_submissions
from tests.conftest import ORIGINALS_KEY


def _submission(text: str) -> NewSubmission:
    return NewSubmission(channel="web", kind="feedback", raw=text.encode(),
                         content_type="text/plain", subject=text, body=text)


class Poison(Exception):
    """The one item of a batch that cannot be stored."""


def _writer(db: Database, sizes: list[int],
            hold_first: threading.Event | None = None) -> GroupCommit[str, Recorded]:
    def write_batch(session: Session, texts: Sequence[str]) -> list[Recorded]:
        if hold_first is not None and not sizes:
            hold_first.wait(timeout=30)  # the first batch waits until the others queued
        sizes.append(len(texts))
        out = []
        for text in texts:
            if text == "poison":
                raise Poison("this item cannot be stored")
            out.append(record_submissions(session, [_submission(text)], record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0])
        return out

    return GroupCommit(db, write_batch)


def _run_concurrently(writer: GroupCommit[str, Recorded], texts: list[str],
                      all_queued: threading.Event | None = None
                      ) -> dict[str, Recorded | BaseException]:
    results: dict[str, Recorded | BaseException] = {}
    lock = threading.Lock()

    def run(text: str) -> None:
        try:
            value: Recorded | BaseException = writer.write(text)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            value = exc
        with lock:
            results[text] = value

    threads = [threading.Thread(target=run, args=(t,)) for t in texts]
    threads[0].start()
    if all_queued is not None:
        # Let the first one become leader, take its batch and block; queue the rest.
        _wait(lambda: writer._leading and not writer._queue)
    for t in threads[1:]:
        t.start()
    if all_queued is not None:
        _wait(lambda: len(writer._queue) == len(texts) - 1)
        all_queued.set()
    for t in threads:
        t.join(timeout=60)
    return results


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def test_waiting_writers_share_one_commit_and_each_gets_its_own_entry(db_url: str) -> None:
    db = Database(db_url)
    sizes: list[int] = []
    hold = threading.Event()
    writer = _writer(db, sizes, hold_first=hold)
    texts = [f"message {n}" for n in range(12)]
    try:
        results = _run_concurrently(writer, texts, all_queued=hold)
        assert sizes == [1, 11]  # the leader's own item, then everyone who queued meanwhile
        assert all(isinstance(r, Recorded) and r.created for r in results.values())
        numbers = {r.record_number for r in results.values()}  # type: ignore[union-attr]
        assert len(numbers) == 12
        with db.session() as s:
            stored = dict(s.execute(select(Entry.subject, Entry.record_number)).all())
        # Each caller got the record number of its own message.
        assert stored == {t: results[t].record_number for t in texts}  # type: ignore[union-attr]
    finally:
        db.dispose()


class _Echo(GroupCommit[str, str]):
    """A group commit that writes nothing: it records each batch's items, answers each
    item upper-cased, and holds its first ``holds`` batches open (``running[n]`` is set
    while batch n waits for ``release[n]``)."""

    def __init__(self, turn: Callable[[], AbstractContextManager[Any]], holds: int = 0
                 ) -> None:
        super().__init__(cast(Database, None), lambda session, items: [], turn=turn)
        self.batches: list[list[str]] = []
        self.running = [threading.Event() for _ in range(holds)]
        self.release = [threading.Event() for _ in range(holds)]

    def _commit_once(self, batch: list[Job[str, str]]) -> None:
        self.batches.append([job.item for job in batch])
        number = len(self.batches) - 1
        if number < len(self.running):
            self.running[number].set()
            assert self.release[number].wait(30)
        self._done(batch, [job.item.upper() for job in batch])


def test_a_caller_returns_when_its_batch_ends_not_after_the_next_batch() -> None:
    """The callers of a batch are answered once it commits, even if another caller takes
    the next batch at once. With a plain leader lock, a running thread (here the last
    leader, on to its next submission, as a server thread is) took the lock before the
    woken callers of the batch could look at their results, and they waited for that
    whole next batch too (its commit's fsync included)."""
    gate = threading.Lock()  # the write turn: held here until the first batch has gathered
    writer = _Echo(lambda: gate, holds=2)
    answered = {item: threading.Event() for item in "abc"}
    results: dict[str, str] = {}

    def call(*items: str) -> None:
        for item in items:  # one after the other, as a server thread takes requests
            results[item] = writer.write(item)
            answered[item].set()

    first = threading.Thread(target=call, args=("a", "c"))
    second = threading.Thread(target=call, args=("b",))
    gate.acquire()
    first.start()
    _wait(lambda: writer._leading)
    second.start()
    _wait(lambda: len(writer._queue) == 2)
    gate.release()  # "a" leads the batch [a, b]
    assert writer.running[0].wait(30)
    writer.release[0].set()
    assert writer.running[1].wait(30)  # "a" answered, its thread leads [c], held open
    assert answered["b"].wait(10), "b waited for the batch after its own"
    writer.release[1].set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert writer.batches == [["a", "b"], ["c"]]
    assert results == {"a": "A", "b": "B", "c": "C"}


def test_a_caller_is_answered_before_what_its_leader_does_after_the_commit() -> None:
    """What the writer turn runs once released (the work items' messages, sent to the
    broker after the commit) is the leader's to wait for, not every caller's."""
    gate = threading.Lock()
    sending = threading.Event()
    sent = threading.Event()

    @contextmanager
    def turn() -> Iterator[None]:
        with gate:
            yield
        sending.set()  # as WriterQueue.turn runs its after_turn tasks
        assert sent.wait(30)

    writer = _Echo(turn)
    results: dict[str, str] = {}
    answered = {item: threading.Event() for item in "ab"}

    def call(item: str) -> None:
        results[item] = writer.write(item)
        answered[item].set()

    threads = [threading.Thread(target=call, args=(item,)) for item in "ab"]
    gate.acquire()
    threads[0].start()
    _wait(lambda: writer._leading)
    threads[1].start()
    _wait(lambda: len(writer._queue) == 2)
    gate.release()
    assert sending.wait(30)
    assert answered["b"].wait(10), "b waited for its leader's messages"
    assert not answered["a"].is_set()
    sent.set()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {"a": "A", "b": "B"}


def test_a_caller_told_of_a_failure_before_its_item_was_taken_has_it_dropped() -> None:
    """If the writer turn cannot be had, the caller gets the error and its item leaves the
    queue: no later batch stores what the person was told had failed."""
    broken = [True]

    @contextmanager
    def turn() -> Iterator[None]:
        if broken[0]:
            raise OSError("the lock file is gone")
        yield

    writer = _Echo(turn)
    with pytest.raises(OSError):
        writer.write("refused")
    assert writer._queue == [] and not writer._leading
    broken[0] = False
    assert writer.write("later") == "LATER"
    assert writer.batches == [["later"]]


def test_a_caller_interrupted_while_it_waits_has_its_item_dropped() -> None:
    """A caller whose wait is interrupted (here the wait raises, as a signal's handler
    would) before its item was taken gets that error, and the item leaves the queue."""
    class Interrupted(Exception):
        """What the interrupted wait raises."""

    writer = _Echo(nullcontext, holds=1)
    first = threading.Thread(target=writer.write, args=("first",))
    first.start()
    assert writer.running[0].wait(30)  # "first" is being written; the next caller must wait

    condition = writer._changed
    real_wait = condition.wait

    def interrupted_wait(timeout: float | None = None) -> bool:
        condition.wait = real_wait  # type: ignore[method-assign]
        raise Interrupted

    condition.wait = interrupted_wait  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        writer.write("interrupted")
    assert writer._queue == [] and writer._leading  # "first"'s batch still runs
    writer.release[0].set()
    first.join(timeout=30)
    assert writer.write("after") == "AFTER"
    assert writer.batches == [["first"], ["after"]]


def test_a_failing_item_fails_alone_and_the_others_are_stored(db_url: str) -> None:
    db = Database(db_url)
    sizes: list[int] = []
    hold = threading.Event()
    writer = _writer(db, sizes, hold_first=hold)
    texts = ["first", "a", "poison", "b", "c"]
    try:
        results = _run_concurrently(writer, texts, all_queued=hold)
        assert isinstance(results["poison"], Poison)
        assert all(isinstance(results[t], Recorded) for t in texts if t != "poison")
        assert writer.stats.retried_alone == 4  # the failed batch, one transaction each
        with db.session() as s:
            subjects = set(s.scalars(select(Entry.subject)))
        assert subjects == {"first", "a", "b", "c"}
    finally:
        db.dispose()


def test_one_writer_alone_is_one_batch_of_one(db_url: str) -> None:
    db = Database(db_url)
    sizes: list[int] = []
    writer = _writer(db, sizes)
    try:
        first = writer.write("hello")
        again = writer.write("hello")  # the same bytes: the same entry
        assert first.created and not again.created and first.entry_id == again.entry_id
        assert sizes == [1, 1]
        with pytest.raises(Poison):
            writer.write("poison")
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Entry)) == 1
    finally:
        db.dispose()


def test_the_same_bytes_from_a_concurrent_writer_are_one_entry_and_leave_no_gap(
        db_url: str) -> None:
    """Another process stores the same bytes and has not committed yet: the second
    writer waits on the record counter (PostgreSQL's row lock, SQLite's write lock),
    then finds the first one's entry, answers with it and gives its number back."""
    db = Database(db_url)
    year = datetime.now(UTC).year
    stored_first = threading.Event()
    commit_first = threading.Event()
    answers: dict[str, Recorded | BaseException] = {}

    def first() -> None:
        try:
            with db.session() as s:
                answers["first"] = record_submissions(
                    s, [_submission("same bytes")], record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0]
                stored_first.set()
                assert commit_first.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            answers["first"] = exc
            stored_first.set()

    def second() -> None:
        try:
            with db.session() as s:
                answers["second"] = record_submissions(
                    s, [_submission("other bytes"), _submission("same bytes")],
                    record_prefix="EX", originals_key=ORIGINALS_KEY)[1]
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            answers["second"] = exc

    one = threading.Thread(target=first)
    one.start()
    assert stored_first.wait(timeout=30)
    two = threading.Thread(target=second)
    two.start()
    two.join(timeout=0.5)
    assert two.is_alive()  # waiting for the first writer's transaction
    commit_first.set()
    one.join(timeout=30)
    two.join(timeout=30)
    try:
        a, b = answers["first"], answers["second"]
        assert isinstance(a, Recorded) and a.created, a
        assert isinstance(b, Recorded) and not b.created, b
        assert (b.entry_id, b.record_number) == (a.entry_id, a.record_number)
        with db.session() as s:
            numbers = sorted(s.scalars(select(Entry.record_number)))
        assert numbers == [f"EX-{year}-000001", f"EX-{year}-000002"]  # no gap
    finally:
        db.dispose()


def _kill_pooled_connection(db: Database) -> None:
    """Terminate, from outside, the server process of the connection the pool holds."""
    with db.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = Database(db.url)
    try:
        with admin.engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})").scalar()
    finally:
        admin.dispose()


def test_a_write_whose_connection_died_is_written_again_once(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import intake.db

    monkeypatch.setattr(intake.db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no ping: it fails
    db = Database(pg_url)
    try:
        writer = _writer(db, [])
        writer.write("before")
        _kill_pooled_connection(db)
        recorded = writer.write("after the server dropped us")
        assert recorded.created and writer.stats.reconnected == 1
        with db.sessions() as s:
            assert sorted(s.scalars(select(Entry.subject))) == [
                "after the server dropped us", "before"]
    finally:
        db.dispose()


def test_an_idle_pooled_connection_is_tested_and_replaced_before_use(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import intake.db

    monkeypatch.setattr(intake.db, "PING_AFTER_IDLE_SECONDS", 0.0)
    db = Database(pg_url)
    try:
        writer = _writer(db, [])
        writer.write("before")
        _kill_pooled_connection(db)
        assert writer.write("after").created
        assert writer.stats.reconnected == 0  # the ping found it dead, not the write
    finally:
        db.dispose()


def test_who_queues_while_the_sqlite_write_turn_is_taken_joins_the_next_batch(
        sqlite_url: str) -> None:
    db = Database(sqlite_url)
    writers = db.writers
    assert writers is not None
    sizes: list[int] = []
    _queued_behind_a_held_turn(db, writers, _writer(db, sizes), sizes)


def test_postgresql_form_writers_of_a_host_take_turns_on_a_lock_file(
        pg_url: str, tmp_path: Path) -> None:
    """The record counter's row lock serialises PostgreSQL's form writers anyway: waiting
    on a file lock instead lets each batch hold everyone who queued meanwhile."""
    from intake.db import WriterQueue
    from intake.services.forms import form_writer

    db = Database(pg_url)
    lock = tmp_path / "not yet" / "form-writer.lock"
    assert form_writer(db, record_prefix="EX", turn_lock=lock,
                       originals_key=ORIGINALS_KEY).turn
    assert lock.parent.is_dir()  # made for it
    turns = WriterQueue(lock)
    sizes: list[int] = []

    def write_batch(session: Session, texts: Sequence[str]) -> list[Recorded]:
        sizes.append(len(texts))
        return [record_submissions(session, [_submission(t)], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0] for t in texts]

    # Another WriterQueue on the same file: as another process of the host would hold it.
    _queued_behind_a_held_turn(db, WriterQueue(lock),
                               GroupCommit(db, write_batch, turn=turns.turn), sizes)


def _queued_behind_a_held_turn(db: Database, holder_turns: WriterQueue,
                               writer: GroupCommit[str, Recorded], sizes: list[int]) -> None:
    released = threading.Event()
    taken = threading.Event()

    def other_writer() -> None:  # as another process holding the lock would
        with holder_turns.turn():
            taken.set()
            released.wait(timeout=30)

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert taken.wait(timeout=10)
    results: dict[str, Recorded | BaseException] = {}

    def run(text: str) -> None:
        try:
            results[text] = writer.write(text)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            results[text] = exc

    threads = [threading.Thread(target=run, args=(f"m{n}",)) for n in range(5)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(writer._queue) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first is the leader, waiting for the turn; all queued
        released.set()
        for t in threads:
            t.join(timeout=30)
        holder.join(timeout=30)
        assert sizes == [5]  # one transaction for all who waited
        assert all(isinstance(r, Recorded) and r.created for r in results.values())
    finally:
        released.set()
        db.dispose()
