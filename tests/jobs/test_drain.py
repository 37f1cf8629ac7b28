"""The one-shot commands' routing: drained in the calling thread, several items per commit."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from intake.core.failures import TransientError
from intake.db.models import Disclosure, Entry, Event, RoutingDecision, WorkItem, WorkState
from intake.runtime import Runtime
from intake.services import work as workitems
from intake.services.consent import verify_chains
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from tests.conftest import ORIGINALS_KEY


def _record(runtime: Runtime, n: int) -> list[int]:
    ids = []
    with runtime.db.session() as s:
        for i in range(n):
            rec = record_submissions(s, [NewSubmission(
                channel="web", kind="contact", raw=f"pothole {i}".encode(),
                content_type="text/plain", subject="Road", body=f"Pothole number {i}",
                form_slug="contact", submitter=SubmitterData(email=f"c{i}@example.org"))],
                    record_prefix="EX",
                        originals_key=ORIGINALS_KEY)[0]
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
            raise TransientError("agency system down")

    runtime.jobs.register("route", flaky)
    broker_before = sum(q.qsize() for q in runtime.jobs.broker.queues.values())  # type: ignore[attr-defined]  # noqa: E501
    with runtime.db.session() as s:
        ids = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")
                             .order_by(WorkItem.id)))
    assert runtime.jobs.perform_batch(ids, "w1") == 4
    items = _items(runtime)
    assert items[(entries[2], "route")] == (WorkState.PENDING, 0)  # transient: no attempt used
    assert (entries[2], "deliver") not in items
    with runtime.db.session() as s:
        failed = s.scalar(select(WorkItem).where(WorkItem.entry_id == entries[2],
                                                 WorkItem.kind == "route"))
        assert failed is not None and failed.last_error == "agency system down"
        assert failed.deferrals == 1
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


def _effects(runtime: Runtime, entry_id: int) -> dict[str, object]:
    """What routing wrote for an entry, without ids, times and chain positions."""
    with runtime.db.session() as s:
        decision = s.scalars(select(RoutingDecision).where(
            RoutingDecision.entry_id == entry_id)).one()
        events = sorted((e.kind, e.actor, tuple(sorted(
            (k, str(v).replace(f"entry:{entry_id}", "entry:*")) for k, v in e.detail.items()
            if k not in ("disclosure_seq", "sha256")))) for e in s.scalars(
            select(Event).where(Event.entry_id == entry_id, Event.kind != "received")))
        ledger = sorted(tuple((k, str(getattr(d, k))) for k in (
            "nature", "purpose", "basis", "allowed", "reason", "include_identity",
            "recipient_kind", "recipient_name", "recipient_address", "rule_id",
            "rules_sha256", "actor")) for d in s.scalars(
            select(Disclosure).where(Disclosure.entry_id == entry_id)))
        items = sorted((i.kind, i.state, sorted(i.payload)) for i in s.scalars(
            select(WorkItem).where(WorkItem.entry_id == entry_id)))
        entry = s.get(Entry, entry_id)
        assert entry is not None
        return {"route_to": decision.route_to, "tags": decision.tags,
                "trace": decision.trace, "agency": entry.agency_id, "entry_tags": entry.tags,
                "events": events, "ledger": ledger, "items": items}


def test_a_batch_writes_what_routing_one_by_one_writes(runtime: Runtime) -> None:
    one = _record(runtime, 2)
    with runtime.db.session() as s:
        rec = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=b"pothole 0 again", content_type="text/plain",
            subject="Road", body="Pothole number 0", form_slug="contact",
            submitter=SubmitterData(email="c0@example.org"))], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
        batched = [rec.entry_id]
        rec = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=b"pothole 1 again", content_type="text/plain",
            subject="Road", body="Pothole number 1", form_slug="contact",
            submitter=SubmitterData(email="c1@example.org"))], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
        batched.append(rec.entry_id)
        route_ids = dict(s.execute(select(WorkItem.entry_id, WorkItem.id)
                                   .where(WorkItem.kind == "route")).all())
    for entry_id in one:
        assert runtime.jobs.perform(route_ids[entry_id], "w") == "done"
    assert runtime.jobs.perform_batch([route_ids[e] for e in batched], "w") == 2
    for single, batch in zip(one, batched, strict=True):
        assert _effects(runtime, single) == _effects(runtime, batch)
    with runtime.db.session() as s:
        assert all(r.verdict.ok for r in verify_chains(s))


def test_a_batch_reuses_a_work_item_already_queued(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    entries = _record(runtime, 3)
    with runtime.db.session() as s:
        # A receipt already queued for the second entry (as a rerun would find it):
        # the batch reuses it (no second item), still in one transaction.
        queued = workitems.enqueue(s, "acknowledge", dedupe_key=f"acknowledge:{entries[1]}",
                                   entry_id=entries[1])
        ids = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")
                             .order_by(WorkItem.id)))
    assert runtime.jobs.perform_batch(ids, "w") == 3
    assert "failed as a whole" not in caplog.text
    items = _items(runtime)
    assert all(items[(e, "route")][0] == WorkState.DONE for e in entries)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(RoutingDecision)) == 3
        assert s.scalar(select(func.count()).select_from(WorkItem)
                        .where(WorkItem.kind == "acknowledge")) == 3
        receipt = s.scalar(select(Disclosure).where(Disclosure.entry_id == entries[1],
                                                    Disclosure.nature == "acknowledge"))
        assert receipt is not None and receipt.work_item_id == queued
        item = s.get(WorkItem, queued)
        assert item is not None and item.payload == {"disclosure_id": receipt.id}
        assert all(r.verdict.ok for r in verify_chains(s))
