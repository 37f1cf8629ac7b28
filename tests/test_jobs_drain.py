"""The one-shot commands' routing: drained in the calling thread, several items per commit."""

from __future__ import annotations

import threading

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from intake.db.models import Disclosure, Entry, Event, RoutingDecision, WorkItem, WorkState
from intake.jobs import workitems
from intake.runtime import Runtime
from intake.services.privacy import verify_chains
from intake.services.records import NewSubmission, SubmitterData, record_submission


def _record(runtime: Runtime, n: int) -> list[int]:
    ids = []
    with runtime.db.session() as s:
        for i in range(n):
            rec = record_submission(s, NewSubmission(
                channel="web", kind="contact", raw=f"pothole {i}".encode(),
                content_type="text/plain", subject="Road", body=f"Pothole number {i}",
                form_slug="contact", submitter=SubmitterData(email=f"c{i}@example.org")), "EX")
            ids.append(rec.entry_id)
    return ids


def _items(runtime: Runtime) -> dict[tuple[int | None, str], tuple[str, int]]:
    with runtime.db.session() as s:
        rows = s.execute(select(WorkItem.entry_id, WorkItem.kind, WorkItem.state,
                                WorkItem.attempts)).all()
    return {(r.entry_id, r.kind): (r.state, r.attempts) for r in rows}


def test_drain_routes_everything_and_leaves_deliveries_to_the_workers(runtime: Runtime) -> None:
    entries = _record(runtime, 7)
    finish = threading.Event()
    finish.set()
    assert runtime.jobs.drain(("route",), finish=finish, chunk=3) == 7
    items = _items(runtime)
    for entry_id in entries:
        assert items[(entry_id, "route")] == (WorkState.DONE, 1)
        # Planned through the gate, not attempted: `intake serve` or a worker sends them.
        assert items[(entry_id, "deliver")] == (WorkState.PENDING, 0)
        assert items[(entry_id, "acknowledge")] == (WorkState.PENDING, 0)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(RoutingDecision)) == 7
        assert s.scalar(select(func.count()).select_from(Disclosure)) == 14
        assert set(s.scalars(select(Entry.agency_id))) == {"dot"}
        delivers = s.scalars(select(WorkItem).where(WorkItem.kind != "route")).all()
        ledger = {d.id: d for d in s.scalars(select(Disclosure))}
        for item in delivers:  # each outbox item names its ledger row, and back
            assert ledger[item.payload["disclosure_id"]].work_item_id == item.id
        assert all(r.verdict.ok for r in verify_chains(s))


def test_a_failing_item_in_a_batch_is_rolled_back_alone(runtime: Runtime) -> None:
    entries = _record(runtime, 5)
    route = runtime.jobs.handlers["route"]

    def flaky(session: Session, item: WorkItem) -> None:
        route(session, item)  # its effects, then a failure: all of it must be undone
        if item.entry_id == entries[2]:
            raise workitems.TransientError("agency system down")

    runtime.jobs.register("route", flaky)
    broker_before = sum(q.qsize() for q in runtime.jobs.broker.queues.values())  # type: ignore[attr-defined]  # noqa: E501
    with runtime.db.session() as s:
        ids = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")
                             .order_by(WorkItem.id)))
    assert runtime.jobs.perform_batch(ids, "w1") == 4
    items = _items(runtime)
    assert items[(entries[2], "route")] == (WorkState.PENDING, 1)
    assert (entries[2], "deliver") not in items
    with runtime.db.session() as s:
        failed = s.scalar(select(WorkItem).where(WorkItem.entry_id == entries[2],
                                                 WorkItem.kind == "route"))
        assert failed is not None and failed.last_error is not None
        assert "agency system down" in failed.last_error
        assert s.scalar(select(func.count()).select_from(RoutingDecision)
                        .where(RoutingDecision.entry_id == entries[2])) == 0
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.entry_id == entries[2], Event.kind == "routed")) == 0
        assert s.scalar(select(func.count()).select_from(Disclosure)) == 8
        assert all(r.verdict.ok for r in verify_chains(s))
    # Messages: two deliveries for each of the four routed entries, and the retry of the
    # failed one; none for the rolled-back work of the failed one.
    broker_after = sum(q.qsize() for q in runtime.jobs.broker.queues.values())  # type: ignore[attr-defined]  # noqa: E501
    assert broker_after - broker_before == 4 * 2 + 1
    # The same ids again: the four done ones are not claimed twice.
    assert runtime.jobs.perform_batch(ids, "w2") == 0


def test_drain_waits_for_work_stored_while_it_runs(runtime: Runtime) -> None:
    finish = threading.Event()
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(runtime.jobs.drain(("route",), finish=finish)))
    thread.start()
    _record(runtime, 3)
    finish.set()
    runtime.jobs.wake()
    thread.join(30)
    assert not thread.is_alive()
    assert done == [3]


def test_a_lost_claim_in_a_batch_undoes_only_that_item(runtime: Runtime) -> None:
    entries = _record(runtime, 3)
    route = runtime.jobs.handlers["route"]

    def stalled(session: Session, item: WorkItem) -> None:
        route(session, item)
        if item.entry_id == entries[1]:
            # As if this worker stalled past its lease and another took the item.
            session.execute(update(WorkItem).where(WorkItem.id == item.id)
                            .values(claimed_by="someone-else"))

    runtime.jobs.register("route", stalled)
    with runtime.db.session() as s:
        ids = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")
                             .order_by(WorkItem.id)))
    assert runtime.jobs.perform_batch(ids, "w1") == 2
    items = _items(runtime)
    assert items[(entries[0], "route")][0] == WorkState.DONE
    assert items[(entries[2], "route")][0] == WorkState.DONE
    assert items[(entries[1], "route")][0] == WorkState.RUNNING  # left to its new owner
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(RoutingDecision)
                        .where(RoutingDecision.entry_id == entries[1])) == 0
        assert s.scalar(select(func.count()).select_from(RoutingDecision)) == 2
        assert all(r.verdict.ok for r in verify_chains(s))
