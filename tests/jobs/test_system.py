"""Jobs that cannot lose work: messages after commit, a sweeper, exactly-once effects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.core.failures import PermanentError, TransientError
from intake.db.models import Entry, Event, RoutingDecision, WorkItem
from intake.outbound.memory import MemoryMailSender
from intake.runtime import Runtime
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from intake.services.work import enqueue, retry_dead
from intake.settings import Settings
from tests.conftest import (
    ORIGINALS_KEY,
    SMALL_RULES,
    TEST_SECRET,
    free_port,
    make_settings,
    memory_senders,
    wait_for,
)


def _record(runtime: Runtime, body: str = "There is a pothole on Route 9") -> int:
    with runtime.db.session() as s:
        rec = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=body.encode(), content_type="text/plain",
            subject="Road", body=body, form_slug="contact",
            submitter=SubmitterData(email="citizen@example.org"))], record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0]
    return rec.entry_id


def _queued(runtime: Runtime) -> int:
    broker = runtime.jobs.broker
    return sum(q.qsize() for name, q in broker.queues.items())  # type: ignore[attr-defined]


def _routing_effects(runtime: Runtime, entry_id: int) -> tuple[int, int, str | None]:
    with runtime.db.session() as s:
        decisions = s.scalar(select(func.count()).select_from(RoutingDecision)
                             .where(RoutingDecision.entry_id == entry_id))
        routed = s.scalar(select(func.count()).select_from(Event)
                          .where(Event.entry_id == entry_id, Event.kind == "routed"))
        agency = s.scalar(select(Entry.agency_id).where(Entry.id == entry_id))
    return int(decisions or 0), int(routed or 0), agency


def _state(runtime: Runtime, entry_id: int, kind: str = "route") -> str | None:
    with runtime.db.session() as s:
        return s.scalar(select(WorkItem.state).where(WorkItem.entry_id == entry_id,
                                                     WorkItem.kind == kind))


def test_message_is_sent_only_after_commit(runtime: Runtime) -> None:
    with runtime.db.sessions() as s, s.begin():
        record_submissions(s, [NewSubmission(channel="web", kind="contact", raw=b"x",
                                           content_type="text/plain")], record_prefix="EX",
                                                   originals_key=ORIGINALS_KEY)[0]
        s.flush()
        assert _queued(runtime) == 0  # nothing sent while the transaction is open
    assert _queued(runtime) == 1


def test_rolled_back_work_sends_nothing(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError), runtime.db.session() as s:
        record_submissions(s, [NewSubmission(channel="web", kind="contact", raw=b"y",
                                           content_type="text/plain")], record_prefix="EX",
                                                   originals_key=ORIGINALS_KEY)[0]
        raise RuntimeError("the request failed after recording")
    assert _queued(runtime) == 0
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkItem)) == 0


def test_embedded_worker_routes_an_entry(runtime: Runtime) -> None:
    runtime.jobs.start()
    entry_id = _record(runtime)
    wait_for(lambda: _state(runtime, entry_id) == "done", message="route done")
    assert _routing_effects(runtime, entry_id) == (1, 1, "dot")


def test_lost_message_is_swept_and_done_exactly_once(runtime: Runtime) -> None:
    entry_id = _record(runtime)
    assert _queued(runtime) == 1
    runtime.jobs.broker.flush_all()  # the broker loses the message
    assert _queued(runtime) == 0
    runtime.jobs.start()
    wait_for(lambda: _state(runtime, entry_id) == "done", message="swept work done")
    assert runtime.jobs.stats.swept >= 1
    # Let the sweeper run a few more times: nothing is done twice.
    swept = runtime.jobs.stats.swept
    wait_for(lambda: runtime.jobs.stats.last_sweep_at is not None and
             runtime.jobs.stats.swept >= swept, message="another sweep")
    assert _routing_effects(runtime, entry_id) == (1, 1, "dot")


@pytest.fixture
def mailing_runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose mail goes to memory, so that every item it makes can finish (with no
    mail server configured, mail waits, and keeps the queue busy, up to the age limit)."""
    rt = Runtime(settings, memory_senders(MemoryMailSender()))
    rt.rules.load()
    try:
        yield rt
    finally:
        rt.close()


def test_duplicate_messages_have_one_effect(mailing_runtime: Runtime) -> None:
    runtime = mailing_runtime
    entry_id = _record(runtime)
    with runtime.db.session() as s:
        item_id = s.scalar(select(WorkItem.id).where(WorkItem.entry_id == entry_id))
    assert item_id is not None
    for _ in range(5):
        runtime.jobs.send(item_id)
    runtime.jobs.start()
    wait_for(lambda: _state(runtime, entry_id) == "done", message="route done")
    wait_for(lambda: _queued(runtime) == 0, message="queue drained")
    runtime.jobs.broker.join("intake")  # type: ignore[attr-defined]
    assert _routing_effects(runtime, entry_id) == (1, 1, "dot")


def test_concurrent_performers_claim_once(runtime: Runtime) -> None:
    import threading

    entry_id = _record(runtime)
    with runtime.db.session() as s:
        item_id = s.scalar(select(WorkItem.id).where(WorkItem.entry_id == entry_id))
    assert item_id is not None
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def run(n: int) -> None:
        barrier.wait()
        outcomes.append(runtime.jobs.perform(item_id, f"test-worker-{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["done"] + ["not-claimed"] * 5
    assert _routing_effects(runtime, entry_id) == (1, 1, "dot")


@pytest.fixture
def flaky_runtime(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    settings = make_settings(tmp_path, db_url, INTAKE_RETRY_BASE="0.02", INTAKE_MAX_ATTEMPTS="3",
                             INTAKE_SWEEP_INTERVAL="0.2", INTAKE_REDELIVER_AFTER="0.5",
                             INTAKE_RETRY_CAP="0.05")
    rt = Runtime(settings)
    rt.rules.load()
    calls: list[int] = []

    def transient(session: Session, item: WorkItem) -> None:
        calls.append(item.id)
        raise TransientError("connection refused")

    def permanent(session: Session, item: WorkItem) -> None:
        calls.append(item.id)
        raise PermanentError("550 mailbox unavailable")

    def broken(session: Session, item: WorkItem) -> None:
        calls.append(item.id)
        raise RuntimeError("a fault of intake's own")

    rt.jobs.register("transient", transient)
    rt.jobs.register("permanent", permanent)
    rt.jobs.register("broken", broken)
    rt.calls = calls  # type: ignore[attr-defined]
    try:
        yield rt
    finally:
        rt.close()


def _item(runtime: Runtime, kind: str) -> int:
    with runtime.db.session() as s:
        return enqueue(s, kind, dedupe_key=f"{kind}:1")


def _row(runtime: Runtime, item_id: int) -> WorkItem:
    with runtime.db.session() as s:
        item = s.get(WorkItem, item_id)
        assert item is not None
        return item


def test_transient_failures_use_no_attempts(flaky_runtime: Runtime) -> None:
    """INTAKE_MAX_ATTEMPTS=3, yet a transient failure (a server that is down) is tried
    again and again without using up attempts: only the age limit ends it."""
    rt = flaky_runtime
    rt.jobs.start()
    item_id = _item(rt, "transient")
    wait_for(lambda: rt.calls.count(item_id) >= 8,  # type: ignore[attr-defined]
             message="eight tries")
    row = _row(rt, item_id)
    assert (row.state, row.attempts) in {("pending", 0), ("running", 1)}
    assert row.deferrals >= 7 and row.last_error == "connection refused"


def test_other_failures_dead_letter_after_max_attempts(flaky_runtime: Runtime) -> None:
    rt = flaky_runtime
    rt.jobs.start()
    item_id = _item(rt, "broken")
    wait_for(lambda: _row(rt, item_id).state == "dead", message="dead letter")
    row = _row(rt, item_id)
    assert row.attempts == 3
    assert row.last_error == ("failed 3 times (INTAKE_MAX_ATTEMPTS): "
                              "RuntimeError: a fault of intake's own")
    assert rt.calls.count(item_id) == 3  # type: ignore[attr-defined]
    with rt.db.session() as s:
        assert retry_dead(s, [item_id]) == [item_id]
    wait_for(lambda: _row(rt, item_id).state == "dead" and _row(rt, item_id).attempts == 3
             and rt.calls.count(item_id) == 6,  # type: ignore[attr-defined]
             message="retried, dead again")


def test_permanent_failure_is_dead_at_once(flaky_runtime: Runtime) -> None:
    rt = flaky_runtime
    rt.jobs.start()
    item_id = _item(rt, "permanent")
    wait_for(lambda: _row(rt, item_id).state == "dead", message="dead letter")
    row = _row(rt, item_id)
    assert row.attempts == 1
    assert row.last_error == "550 mailbox unavailable"


def test_broker_down_at_commit_loses_nothing(tmp_path: Path, db_url: str) -> None:
    port = free_port()  # nothing listens here: the broker is "down"
    settings = make_settings(tmp_path, db_url, INTAKE_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    rt = Runtime(settings)
    try:
        entry_id = _record(rt)  # the commit succeeds although the send fails
        assert rt.jobs.stats.send_failures == 1
        assert _state(rt, entry_id) == "pending"
    finally:
        rt.db.dispose()


def test_sweeper_re_sends_with_growing_waits(runtime: Runtime) -> None:
    """A backlog item that only waits in the queue is re-sent at doubling intervals."""
    from datetime import timedelta

    from sqlalchemy import update

    from intake.db.models import utcnow
    from intake.services.work import stale_items

    entry_id = _record(runtime)
    with runtime.db.session() as s:
        item_id = s.scalar(select(WorkItem.id).where(WorkItem.entry_id == entry_id))
        s.execute(update(WorkItem).values(enqueued_at=utcnow() - timedelta(seconds=120)))
    waits = []
    for _ in range(3):
        with runtime.db.session() as s:
            assert list(stale_items(s, redeliver_after_seconds=60)) == [item_id]
        with runtime.db.session() as s:
            assert list(stale_items(s, redeliver_after_seconds=60)) == []  # not yet again
            item = s.get(WorkItem, item_id)
            assert item is not None and item.resend_after is not None
            waits.append(round((item.resend_after - utcnow()).total_seconds() / 60))
            # Let the wait pass.
            s.execute(update(WorkItem).values(resend_after=utcnow() - timedelta(seconds=1)))
    assert waits == [2, 4, 8]  # minutes: 60 s doubled per re-send


def test_a_web_process_without_workers_leaves_work_to_the_sweeper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    """gunicorn's wsgi:app (create_app() with no broker) runs no worker, and its embedded
    broker reaches no other process: it sends nothing (no queue piling up in memory),
    the work item waits in the database, and intake serve's sweeper has it done."""
    from intake import create_app

    for name, value in {"INTAKE_DATABASE_URL": db_url, "INTAKE_SECRET_KEY": TEST_SECRET,
                        "INTAKE_RULES": str(SMALL_RULES),
                        "INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("INTAKE_BROKER_URL", raising=False)
    web = create_app().extensions["intake"]
    entry_id = _record(web)
    assert _queued(web) == 0
    assert _state(web, entry_id) == "pending"
    web.db.dispose()

    # What intake serve builds (it passes its runtime to create_app, and sends).
    serve = Runtime(make_settings(tmp_path, db_url, INTAKE_REDELIVER_AFTER="0.5",
                                  INTAKE_SWEEP_INTERVAL="0.2"))
    serve.rules.load()
    try:
        assert serve.jobs.send_messages
        serve.jobs.start()
        wait_for(lambda: _state(serve, entry_id) == "done", message="swept and routed")
        assert _routing_effects(serve, entry_id) == (1, 1, "dot")
    finally:
        serve.close()


@pytest.mark.parametrize("through", ["session", "group commit"])
def test_messages_wait_until_the_sqlite_write_lock_is_released(
        tmp_path: Path, sqlite_template: Path, through: str) -> None:
    """A broker that is slow to answer (Redis down: a 5 s connect timeout) must not hold
    SQLite's one write lock, which every writer of every process waits for: the message
    is sent once the transaction has committed and the writer turn is released; written
    through the form writer's group commit, which holds the turn around its whole batch,
    once that outer turn is released too."""
    import shutil

    from intake.db.writer import GroupCommit

    path = tmp_path / "intake.sqlite3"
    shutil.copyfile(sqlite_template, path)
    rt = Runtime(make_settings(tmp_path, f"sqlite:///{path}"))
    writers = rt.db.writers
    assert writers is not None
    held_at_send: list[int] = []
    real_send = rt.jobs.actor.send_with_options

    def send(**kwargs: object) -> object:
        held_at_send.append(writers._depth)  # the writer turns this thread holds
        return real_send(**kwargs)  # type: ignore[arg-type]

    rt.jobs.actor.send_with_options = send  # type: ignore[method-assign,assignment]
    try:
        if through == "session":
            entry_id = _record(rt)
        else:
            writer = GroupCommit(rt.db, lambda session, texts: record_submissions(session, [
                NewSubmission(channel="web", kind="feedback", raw=t.encode(),
                              content_type="text/plain", subject=t, body=t) for t in texts],
                record_prefix="EX", originals_key=ORIGINALS_KEY))
            entry_id = writer.write("hello").entry_id
        assert held_at_send == [0]
        assert _queued(rt) == 1 and _state(rt, entry_id) == "pending"
    finally:
        rt.close()


def test_worker_threads_take_messages_well_ahead(runtime: Runtime) -> None:
    """dramatiq's Redis consumer sleeps (up to worker_timeout) whenever the messages it
    took ahead are all still unacknowledged; at its default of 2 a thread, short work
    items left the threads waiting for it. Each worker thread takes 16 ahead."""
    from intake.jobs.system import PREFETCH_PER_THREAD, QUEUE

    runtime.jobs.start()
    worker = runtime.jobs._worker
    assert worker is not None
    assert PREFETCH_PER_THREAD == 16
    assert worker.consumers[QUEUE].prefetch == runtime.settings.worker_threads * 16
