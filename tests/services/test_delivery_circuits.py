"""The circuit breaker of a destination, on the database every worker shares.

Closed -> open after INTAKE_CIRCUIT_FAILURES failures in a row; paused until its
cool-down is over; then one probe at a time (half-open); closed by a success, opened
again (for longer) by a failed probe. Driven with explicit times, on SQLite and
PostgreSQL; the race between two workers for the probe on PostgreSQL, where they run
at once (SQLite's one writer serialises them anyway).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from intake import create_app
from intake.core.failures import DestinationPaused, TransientError
from intake.db.delivery_models import DeliveryCircuit
from intake.db.models import WorkItem, WorkState
from intake.runtime import Runtime
from intake.services import circuits
from intake.services.circuits import CircuitPolicy
from intake.services.work import enqueue
from tests.conftest import login, make_account, make_entry, make_settings

DEST = "smtp://mail.examplia.gov:25"
POLICY = CircuitPolicy(failures=3, retry_base_seconds=1.0, cooldown_seconds=60.0,
                       cap_seconds=600.0)
DOWN = TransientError("SMTP unavailable: ConnectionRefusedError", unreachable=True,
                      reason="could not reach the mail server mail.examplia.gov:25 "
                             "(connection refused)")
T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def _runtime(tmp_path: Path, url: str) -> Runtime:
    rt = Runtime(make_settings(tmp_path, url))
    rt.rules.load()
    return rt


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = _runtime(tmp_path, db_url)
    yield runtime
    runtime.close()


def _fail(rt: Runtime, at: datetime) -> datetime:
    with rt.db.session() as s:
        due, _ = circuits.failed(s, DEST, DOWN, POLICY, at)
    return due


def _admit(rt: Runtime, at: datetime) -> None:
    with rt.db.session() as s:
        circuits.admit(s, DEST, POLICY, at)


def _row(rt: Runtime) -> DeliveryCircuit:
    with rt.db.session() as s:
        row = s.get(DeliveryCircuit, DEST)
        assert row is not None
        return row


def test_a_circuit_opens_pauses_probes_and_closes(rt: Runtime) -> None:
    _admit(rt, T0)  # unknown destination: closed
    first = _fail(rt, T0)
    assert T0 <= first <= T0 + timedelta(seconds=1)  # backoff below the threshold
    _fail(rt, T0)
    assert _row(rt).state == "closed"
    reopen = _fail(rt, T0)  # the third in a row opens it, for half to all the cool-down
    row = _row(rt)
    assert (row.state, row.failures, row.failing_since) == ("open", 3, T0)
    assert T0 + timedelta(seconds=30) <= reopen <= T0 + timedelta(seconds=60)
    assert row.retry_at == reopen
    with pytest.raises(DestinationPaused) as paused:
        _admit(rt, reopen - timedelta(seconds=1))
    assert paused.value.retry_at == reopen
    assert "could not reach the mail server mail.examplia.gov:25" in paused.value.reason
    # After the cool-down one probe goes; it fails: open again, for longer (doubled).
    _admit(rt, reopen)
    again = _fail(rt, reopen)
    assert reopen + timedelta(seconds=60) <= again <= reopen + timedelta(seconds=120)
    assert _row(rt).failures == 4
    # The next probe succeeds: closed, counters cleared; others go through again.
    with rt.db.session() as s:
        circuits.admit(s, DEST, POLICY, again)
        circuits.succeeded(s, DEST, again)
    row = _row(rt)
    assert (row.state, row.failures, row.retry_at, row.last_error) == ("closed", 0, None, None)
    _admit(rt, again)


def test_the_cool_down_is_capped(rt: Runtime) -> None:
    at = T0
    for _ in range(20):
        due = _fail(rt, at)
        at = max(at, due)
    assert _row(rt).failures == 20
    assert due - at <= timedelta(seconds=POLICY.cap_seconds)


def test_failing_destinations_are_listed(rt: Runtime) -> None:
    with rt.db.session() as s:
        assert circuits.circuits(s) == []
    _fail(rt, T0)
    with rt.db.session() as s:
        [view] = circuits.circuits(s)
    assert (view.destination, view.state, view.failures) == (DEST, "closed", 1)
    assert view.last_error == DOWN.reason


def test_only_one_worker_probes_at_a_time(tmp_path: Path, pg_url: str) -> None:
    """Two workers after the cool-down: the first holds the probe (the row lock, until its
    transaction ends); the second is told to wait instead of sending too."""
    rt = _runtime(tmp_path, pg_url)
    try:
        for _ in range(3):
            reopen = _fail(rt, T0)
        holding, release = threading.Event(), threading.Event()
        outcome: list[str] = []

        def prober() -> None:
            with rt.db.session() as s:
                circuits.admit(s, DEST, POLICY, reopen)
                holding.set()
                release.wait(30)  # the probe's send, in flight
                circuits.succeeded(s, DEST, reopen)

        thread = threading.Thread(target=prober)
        thread.start()
        assert holding.wait(30)
        try:
            _admit(rt, reopen)
            outcome.append("admitted")
        except DestinationPaused as paused:
            outcome.append("paused")
            assert paused.retry_at > reopen
        release.set()
        thread.join(30)
        assert outcome == ["paused"]
        _admit(rt, reopen)  # closed by the probe's success
        assert _row(rt).state == "closed"
    finally:
        rt.close()


def test_the_admin_page_shows_why_a_dead_letter_failed(rt: Runtime) -> None:
    """Where staff already see dead letters, the reason is the plain one."""
    entry_id = make_entry(rt, "dot")
    reason = ("the mail server mail.examplia.gov:25 refused the message: "
              "550 5.1.1 <intake@dot.examplia.gov>: mailbox unavailable")
    with rt.db.session() as s:
        item = s.get(WorkItem, enqueue(s, "deliver", dedupe_key="dead-1", entry_id=entry_id))
        assert item is not None
        item.state, item.last_error = WorkState.DEAD, reason
    admin = make_account(rt, "root@examplia.gov", "dot", role="system_admin")
    client = create_app(runtime=rt).test_client()
    login(client, admin)
    page = client.get("/staff/admin")
    assert page.status_code == 200
    assert html.escape(reason, quote=False) in page.get_data(as_text=True).replace(
        "&#34;", '"').replace("&#39;", "'")
