"""Delivery survives outages: real SMTP (aiosmtpd) and HTTP servers on loopback.

- The SMTP server is down for longer than the whole retry schedule of INTAKE_MAX_ATTEMPTS
  would have lasted: 200 forwards wait (the circuit opens), the server comes back, all
  200 arrive exactly once, 0 dead letters.
- A webhook receiver answers 503, then 200: all arrive once, 0 dead letters.
- A permanent answer (SMTP 550) is a dead letter at once, saying why in plain words,
  shown by ``intake jobs status``.
- The age limit, with a frozen clock: a delivery failing transiently for longer than
  INTAKE_DELIVERY_MAX_AGE becomes a dead letter that says for how long and why.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.cli import cli
from intake.db.delivery_models import DeliveryCircuit
from intake.db.models import WorkItem
from intake.runtime import Runtime
from intake.services import circuits, work
from intake.services.records import NewSubmission, record_submissions
from tests.conftest import DOT, ORIGINALS_KEY, TEST_SECRET, SmtpSink, make_runtime, wait_for

# Short timings so the whole test takes seconds; the old schedule (3 attempts with a
# 0.05 s base) would have been over in well under a second.
OUTAGE_ENV = {
    "INTAKE_MAX_ATTEMPTS": "3", "INTAKE_RETRY_BASE": "0.05", "INTAKE_RETRY_CAP": "1",
    "INTAKE_CIRCUIT_FAILURES": "3", "INTAKE_CIRCUIT_COOLDOWN": "0.3",
}


def _submit(rt: Runtime, n: int, body: str = "Pothole number {i} on Route 9") -> list[str]:
    """``n`` entries without a submitter address (forwards only), in one transaction."""
    with rt.db.session() as s:
        recorded = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=f"outage-{i}-{body}".encode(),
            content_type="text/plain", body=body.format(i=i), form_slug="contact")
            for i in range(n)], record_prefix="EX", originals_key=ORIGINALS_KEY)
    return [r.record_number for r in recorded]


def _items(rt: Runtime, kind: str = "deliver") -> list[WorkItem]:
    with rt.db.session() as s:
        return list(s.scalars(select(WorkItem).where(WorkItem.kind == kind)
                              .order_by(WorkItem.id)))


def _circuit(rt: Runtime, destination: str) -> DeliveryCircuit | None:
    with rt.db.session() as s:
        return s.get(DeliveryCircuit, destination)


def test_smtp_down_longer_than_the_retry_schedule_then_all_200_arrive_once(
        tmp_path: Path, db_url: str) -> None:
    sink = SmtpSink().start()
    sink.stop()  # the server goes down
    rt = make_runtime(tmp_path, db_url, sink.port, **OUTAGE_ENV)
    destination = f"smtp://127.0.0.1:{sink.port}"
    opened: list[bool] = []
    try:
        rt.jobs.start()
        numbers = _submit(rt, 200)

        def all_waited_out_the_old_schedule() -> bool:
            circuit = _circuit(rt, destination)
            opened.append(circuit is not None and circuit.state == "open")
            found = _items(rt)
            assert not [i for i in found if i.state == "dead"], "a dead letter"
            # Each has failed or waited at least INTAKE_MAX_ATTEMPTS times: the old
            # code would have made every one of them a dead letter by now. No attempt
            # used up: 0, or 1 for an item claimed right now (forwards are claimed in
            # batches, so a few dozen may be running at the moment of the snapshot).
            return len(found) == 200 and all(
                i.deferrals >= 3 and i.attempts == (1 if i.state == "running" else 0)
                and i.state != "done" for i in found)

        wait_for(all_waited_out_the_old_schedule, timeout=180,
                 message="every forward deferred three times")
        assert any(opened), "the circuit never opened"
        assert sink.all() == []
        sink.start()  # the server is back
        wait_for(lambda: len(sink.all()) >= 200, timeout=180, message="200 forwards")
        wait_for(lambda: all(i.state == "done" for i in _items(rt)), timeout=60,
                 message="all done")
    finally:
        rt.close()
        sink.stop()
    received = sink.to(DOT)
    assert len(received) == 200
    # Exactly once: parse what the server received.
    assert Counter(r.message["X-Intake-Record"] for r in received) == Counter(numbers)
    assert len({r.message_id for r in received}) == 200
    assert [i for i in _items(rt) if i.state == "dead"] == []
    circuit = _circuit(rt, destination)
    assert circuit is not None and (circuit.state, circuit.failures) == ("closed", 0)


class _FlakyReceiver(BaseHTTPRequestHandler):
    """Answers 503 to the first ``unavailable`` POSTs, then 200; keeps what it accepted."""

    unavailable: ClassVar[int] = 0
    accepted: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            if _FlakyReceiver.refused < _FlakyReceiver.unavailable:
                _FlakyReceiver.refused += 1
                status = 503
            else:
                _FlakyReceiver.accepted.append(json.loads(body))
                status = 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def flaky_receiver() -> Iterator[int]:
    _FlakyReceiver.unavailable, _FlakyReceiver.refused, _FlakyReceiver.accepted = 40, 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_webhook_answering_503_then_200_gets_everything_once(
        tmp_path: Path, db_url: str, flaky_receiver: int) -> None:
    sink = SmtpSink().start()
    # 40 answers of 503 for 10 deliveries: more than their INTAKE_MAX_ATTEMPTS (3) could
    # have absorbed, had each failure used one up.
    rt = make_runtime(tmp_path, db_url, sink.port, webhook_port=flaky_receiver,
                      **{**OUTAGE_ENV, "INTAKE_CIRCUIT_COOLDOWN": "0.1", "INTAKE_RETRY_CAP": "0.3"})
    try:
        rt.jobs.start()
        numbers = _submit(rt, 10, body="Is campground {i} open in July?")
        wait_for(lambda: len(_FlakyReceiver.accepted) >= 10, timeout=120,
                 message="10 webhook deliveries")
        wait_for(lambda: all(i.state == "done" for i in _items(rt)), timeout=60,
                 message="all done")
        deferred = [i.deferrals for i in _items(rt)]
    finally:
        rt.close()
        sink.stop()
    assert _FlakyReceiver.refused == 40  # the receiver really was unavailable
    assert sum(deferred) >= 40 and all(i.attempts == 1 for i in _items(rt))
    assert Counter(p["record_number"] for p in _FlakyReceiver.accepted) == Counter(numbers)
    assert [i for i in _items(rt) if i.state == "dead"] == []


def test_a_permanent_smtp_answer_is_a_dead_letter_at_once_saying_why(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    sink.reject[DOT] = "550 5.1.1 <intake@dot.examplia.gov>: mailbox unavailable"
    rt = make_runtime(tmp_path, db_url, sink.port, **OUTAGE_ENV)
    try:
        rt.jobs.start()
        _submit(rt, 1)
        wait_for(lambda: _items(rt) and _items(rt)[0].state == "dead", message="dead letter")
    finally:
        rt.close()
    [dead] = _items(rt)
    reason = (f"the mail server 127.0.0.1:{sink.port} refused the message: "
              "550 5.1.1 <intake@dot.examplia.gov>: mailbox unavailable")
    assert (dead.attempts, dead.deferrals, dead.last_error) == (1, 0, reason)
    assert sink.all() == []
    # An answer about this message says nothing against the server: no circuit.
    assert _circuit(rt, f"smtp://127.0.0.1:{sink.port}") is None
    env = {"INTAKE_DATABASE_URL": db_url, "INTAKE_SECRET_KEY": TEST_SECRET,
           "INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}
    shown = CliRunner().invoke(cli, ["jobs", "status"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "dead: 1" in shown.output and reason in shown.output
    as_json = json.loads(CliRunner().invoke(cli, ["jobs", "status", "--json"], env=env).output)
    assert as_json["dead"] == 1
    assert [(d["id"], d["reason"]) for d in as_json["dead_letters"]] == [(dead.id, reason)]


class FrozenClock:
    """``utcnow`` for the work queue and the circuits: it moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_age_limit_makes_a_dead_letter_that_says_how_long_and_why(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FrozenClock()
    monkeypatch.setattr(work, "utcnow", clock)
    monkeypatch.setattr(circuits, "utcnow", clock)
    down = SmtpSink()  # nothing listens: every try is "connection refused"
    rt = make_runtime(tmp_path, db_url, down.port, INTAKE_DELIVERY_MAX_AGE=str(3 * 86400),
                      INTAKE_CIRCUIT_FAILURES="100")
    try:
        _submit(rt, 1)
        finish = threading.Event()
        finish.set()
        rt.jobs.drain(["route"], finish=finish)
        [item] = _items(rt)

        def attempt(at: timedelta) -> WorkItem:
            clock.now = first + at
            assert rt.jobs.perform(item.id, "test-worker") == "failed"
            [row] = _items(rt)
            return row

        first = clock.now
        row = attempt(timedelta(0))
        assert (row.state, row.attempts, row.deferrals) == ("pending", 0, 1)
        assert row.last_error == (f"could not reach the mail server 127.0.0.1:{down.port} "
                                  "(connection refused)")
        row = attempt(timedelta(days=3) - timedelta(seconds=1))
        assert (row.state, row.deferrals) == ("pending", 2)
        row = attempt(timedelta(days=3))
        assert (row.state, row.attempts, row.deferrals) == ("dead", 0, 3)
        assert row.last_error == (
            f"not delivered in 3 days, the age limit: could not reach the mail server "
            f"127.0.0.1:{down.port} (connection refused)")
    finally:
        rt.close()
