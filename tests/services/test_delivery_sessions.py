"""Forwards over kept SMTP sessions, end to end: a runtime's worker threads deliver to a
real SMTP server (aiosmtpd), which hangs up on every session in the middle of the work.
What the server received is what counts: every forward once, none lost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select

from intake.db.models import WorkItem
from intake.runtime import Runtime
from tests.conftest import CITIZEN, DOT, make_runtime, wait_for
from tests.outbound.test_senders import _SessionSink
from tests.services.test_delivery import submit


def _all_done(rt: Runtime) -> bool:
    with rt.db.session() as s:
        states = list(s.scalars(select(WorkItem.state)))
    return bool(states) and all(state == "done" for state in states)


def test_forwards_reuse_sessions_and_survive_the_server_hanging_up(
        tmp_path: Path, db_url: str) -> None:
    sink = _SessionSink().start()
    rt = make_runtime(tmp_path, db_url, sink.port, INTAKE_WORKER_THREADS="2",
                      INTAKE_ACK_LIMIT="100")
    numbers: list[str] = []
    try:
        rt.jobs.start()
        for i in range(6):
            numbers.append(submit(rt, f"Pothole {i} on Route 9.")[1])
        wait_for(lambda: len(sink.to(DOT)) >= 6, message="the first six forwards")
        wait_for(lambda: _all_done(rt), message="the first work done")
        first_sessions = len(sink.transports)
        sink.hang_up()  # every kept session is now dead on the server's side
        for i in range(6, 12):
            numbers.append(submit(rt, f"Pothole {i} on Route 9.")[1])
        wait_for(lambda: len(sink.to(DOT)) >= 12, message="the next six forwards")
        wait_for(lambda: _all_done(rt), message="all work done")
    finally:
        rt.close()
        sink.stop()
    forwards = sink.to(DOT)
    # Exactly once: each record forwarded once, each Message-ID once.
    assert Counter(r.message["X-Intake-Record"] for r in forwards) == Counter(numbers)
    assert len({r.message_id for r in forwards}) == 12
    receipts = sink.to(CITIZEN)
    assert len({r.message_id for r in receipts}) == len(receipts) == 12
    # 24 messages in all, over at most one session per thread before the hang-up and one
    # per thread after it.
    assert 1 <= first_sessions <= 2
    assert len(sink.transports) <= first_sessions + 2
    assert "NOOP" not in {command for _, command in sink.commands}
    with rt.db.session() as s:
        failed = list(s.scalars(select(WorkItem).where(WorkItem.deferrals > 0)))
    assert failed == [], "a session the server closed is replaced, not a failed delivery"
