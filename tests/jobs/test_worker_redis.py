"""A broker that loses the message: the work still gets done, exactly once.

Real Redis (and RabbitMQ), a real `intake worker` process, SQLite file or PostgreSQL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import redis
from sqlalchemy import func, select

from intake.db.models import Event, RoutingDecision, WorkItem
from intake.runtime import Runtime
from intake.services.records import NewSubmission, record_submissions
from tests.conftest import (
    ORIGINALS_KEY,
    SMALL_RULES,
    make_settings,
    output_of,
    subprocess_env,
    wait_for,
)


def _record(rt: Runtime, body: str) -> int:
    with rt.db.session() as s:
        return record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=body.encode(), content_type="text/plain",
            body=body, form_slug="contact")],
                record_prefix="EX", originals_key=ORIGINALS_KEY)[0].entry_id


def _done(rt: Runtime, entry_id: int) -> bool:
    with rt.db.session() as s:
        return s.scalar(select(WorkItem.state).where(WorkItem.entry_id == entry_id,
                                                     WorkItem.kind == "route")) == "done"


def _effects(rt: Runtime, entry_id: int) -> tuple[int, int]:
    with rt.db.session() as s:
        decisions = s.scalar(select(func.count()).select_from(RoutingDecision)
                             .where(RoutingDecision.entry_id == entry_id))
        events = s.scalar(select(func.count()).select_from(Event)
                          .where(Event.entry_id == entry_id, Event.kind == "routed"))
    return int(decisions or 0), int(events or 0)


def test_flushed_redis_loses_no_work(
    tmp_path: Path, db_url: str, redis_url: str,
    server_process: Callable[..., subprocess.Popen[str]],
) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_BROKER_URL=redis_url)
    rt = Runtime(settings)
    client = redis.Redis.from_url(redis_url)
    try:
        entry_id = _record(rt, "A pothole on Route 9")
        assert client.keys("dramatiq:*"), "the message should be in Redis after the commit"
        client.flushdb()  # the broker loses it
        assert client.keys("dramatiq:*") == []

        env = subprocess_env(
            INTAKE_DATABASE_URL=db_url, INTAKE_BROKER_URL=redis_url,
            INTAKE_RULES=str(SMALL_RULES), INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
            INTAKE_REDELIVER_AFTER="1", INTAKE_SWEEP_INTERVAL="0.5",
        )
        worker = server_process(["worker", "--threads", "2"], env)
        wait_for(lambda: _done(rt, entry_id) or worker.poll() is not None, timeout=60,
                 message="the lost work to be done")
        assert worker.poll() is None, output_of(worker)
        assert _done(rt, entry_id)

        # More work afterwards proves the worker and its sweeper kept running;
        # the first entry must still have been routed exactly once.
        second = _record(rt, "Campground reservations")
        wait_for(lambda: _done(rt, second), timeout=60, message="second entry")
        assert _effects(rt, entry_id) == (1, 1)
        assert _effects(rt, second) == (1, 1)
    finally:
        client.close()
        rt.close()


def test_purged_rabbitmq_queue_loses_no_work(
    tmp_path: Path, sqlite_url: str, amqp_url: str,
    server_process: Callable[..., subprocess.Popen[str]],
) -> None:
    """The same promise on the RabbitMQ broker: the queue is purged after the commit."""
    import pika

    settings = make_settings(tmp_path, sqlite_url, INTAKE_BROKER_URL=amqp_url)
    rt = Runtime(settings)
    try:
        entry_id = _record(rt, "A pothole on Route 9")
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        assert channel.queue_declare("intake", durable=True, passive=True).method.message_count == 1
        channel.queue_purge("intake")  # the broker loses it
        connection.close()
        env = subprocess_env(
            INTAKE_DATABASE_URL=sqlite_url, INTAKE_BROKER_URL=amqp_url,
            INTAKE_RULES=str(SMALL_RULES), INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
            INTAKE_REDELIVER_AFTER="1", INTAKE_SWEEP_INTERVAL="0.5",
        )
        worker = server_process(["worker", "--threads", "2"], env)
        wait_for(lambda: _done(rt, entry_id) or worker.poll() is not None, timeout=60,
                 message="the lost work to be done")
        assert worker.poll() is None, output_of(worker)
        assert _effects(rt, entry_id) == (1, 1)
    finally:
        rt.close()
