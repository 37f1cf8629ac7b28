"""Retention with a frozen clock: the dry run, disposal, legal holds and the review list.

"Now" is a fixed moment handed to the service (the clock the run goes by), and
entries are recorded as received long before it; every test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from intake.core.retention import Schedule, load_schedule
from intake.db.metadata import metadata
from intake.db.models import Attachment, Entry, Event, PiiFinding, Submitter, ThreadMessage
from intake.db.retention_models import DispositionLogEntry
from intake.db.staff_models import AccessLogEntry, StaffAccount
from intake.runtime import Runtime
from intake.services import inbox, retention
from intake.services.consent import verify_chains
from intake.services.records import (
    GivenConsent,
    NewSubmission,
    OriginalUnavailable,
    SubmitterData,
    open_attachment,
    open_original,
    open_thread_message,
    record_submissions,
    seal_for_entry,
)
from tests.conftest import ORIGINALS_KEY, POLICY, make_account, make_entry, make_settings

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)
SCHEDULE = """\
version: 1
series:
  - id: roads
    match: {agency: dot}
    trigger: received
    keep: 1y
    disposition: destroy
  - id: parks
    match: {agency: parks}
    trigger: received
    keep: 1y
    disposition: archive
  - id: governor
    match: {agency: governor}
    trigger: closed
    keep: 30d
    disposition: review
"""
SSN = "219-09-9999"


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(tmp_path, db_url))
    runtime.rules.load()
    yield runtime
    runtime.close()


@pytest.fixture
def schedule() -> Schedule:
    return load_schedule(SCHEDULE, "retention.yaml")


def officer(rt: Runtime, agency: str = "dot") -> StaffAccount:
    account = make_account(rt, f"officer-{agency}@examplia.gov", agency, "records_officer")
    with rt.db.session() as s:
        user = s.get(StaffAccount, account.id)
        assert user is not None
        s.expunge(user)
        return user


def doomed_entry(rt: Runtime) -> int:
    """An old DOT entry with everything destroy must reach: submitter, consent, a PII
    finding, an attachment, an inbound reply, a note, and a disclosure in the ledger."""
    officer_id = officer(rt, "dot").id
    with rt.db.session() as s:
        [recorded] = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=b'{"doomed": "pothole"}',
            content_type="application/json", subject="Pothole by Grace Hopper's house",
            body=f"Pothole at 77 Birch Lane. Write to grace@example.net, SSN {SSN}.",
            form_slug="contact", fields={"topic": "roads", "rating": 4},
            submitter=SubmitterData(name="Grace Hopper", email="grace@example.net",
                                    phone="(217) 555-0199", postal_address="77 Birch Lane"),
            received_at=LONG_AGO, consent=GivenConsent(POLICY[0], POLICY[1], b"ticked"))],
            record_prefix="EX", originals_key=ORIGINALS_KEY, pii_key=rt.pii_key)
        entry = s.get(Entry, recorded.entry_id)
        assert entry is not None
        entry.agency_id = "dot"
        content = b"photo of the pothole at 77 Birch Lane"
        digest = hashlib.sha256(content).hexdigest()
        s.add(Attachment(entry_id=entry.id, filename="grace-hopper-birch-lane.jpg",
                         declared_type="image/jpeg", sniffed_type="image/jpeg",
                         size=len(content), sha256=digest,
                         content=seal_for_entry(s, entry.id, ORIGINALS_KEY, content, digest)))
        reply = b"From: grace@example.net\r\n\r\nStill there, Grace"
        reply_digest = hashlib.sha256(reply).hexdigest()
        s.add(ThreadMessage(entry_id=entry.id, direction="in", author_kind="submitter",
                            subject="Re: pothole", body="Still there, Grace",
                            raw=seal_for_entry(s, entry.id, ORIGINALS_KEY, reply,
                                               reply_digest),
                            sha256=reply_digest, idempotency_key="reply-1"))
        s.add(ThreadMessage(entry_id=entry.id, direction="note", author_kind="staff",
                            body="Called Grace at (217) 555-0199", idempotency_key="note-1"))
        user = s.get(StaffAccount, officer_id)
        assert user is not None
        inbox.reveal(s, user, entry, inbox.RevealRequest(
            reason="court order", citation="Court order 2030-CV-17",
            requester="Examplia Superior Court", requester_address="1 Court Sq"))
        return entry.id


def dump(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with rt.db.engine.connect() as conn:
        return {table.name: [tuple(row) for row in conn.execute(
            select(table).order_by(*table.primary_key.columns))]
            for table in metadata.sorted_tables}


class TestDryRun:
    def test_the_dry_run_changes_nothing(self, rt: Runtime, schedule: Schedule) -> None:
        doomed = doomed_entry(rt)
        parks = make_entry(rt, "parks", received_at=LONG_AGO, key="parks")
        make_entry(rt, "dot", received_at=NOW - timedelta(days=10), key="recent")
        before = dump(rt)
        with rt.db.session() as s:
            planned = retention.plan(s, schedule, NOW)
        assert dump(rt) == before
        by_series = {p.series.id: [d.entry_id for d in p.due] for p in planned.series}
        assert by_series == {"roads": [doomed], "parks": [parks], "governor": []}

    def test_a_closed_trigger_counts_from_the_last_closing(self, rt: Runtime,
                                                          schedule: Schedule) -> None:
        # Closing is stamped by the real clock, so here "now" is the real one moved on.
        entry_id = make_entry(rt, "governor", received_at=datetime.now(UTC) - timedelta(
            days=400), key="gov")
        user = officer(rt, "governor")
        with rt.db.session() as s:
            entry = s.get(Entry, entry_id)
            assert entry is not None
            inbox.set_status(s, user, entry, "closed")
        with rt.db.session() as s:
            # Closed just now (the event's time is the real clock): not due 30 days on...
            assert retention.plan(s, schedule, datetime.now(UTC) + timedelta(days=29)).due == []
            due = retention.plan(s, schedule, datetime.now(UTC) + timedelta(days=31)).due
        assert [d.entry_id for d in due] == [entry_id]


class TestApply:
    def test_apply_destroys_only_what_the_series_says(self, rt: Runtime, schedule: Schedule,
                                                      caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        doomed = doomed_entry(rt)
        parks = make_entry(rt, "parks", received_at=LONG_AGO, key="parks")
        recent = make_entry(rt, "dot", received_at=NOW - timedelta(days=10), key="recent")
        with rt.db.session() as s:
            before = {e.id: (e.record_number, e.received_at, e.agency_id, e.status)
                      for e in s.scalars(select(Entry))}
            attachment_id = s.scalar(select(Attachment.id).where(Attachment.entry_id == doomed))
            reply_id = s.scalar(select(ThreadMessage.id).where(
                ThreadMessage.entry_id == doomed, ThreadMessage.direction == "in"))
            ledger = s.execute(text("SELECT * FROM disclosures ORDER BY id")).all()
            consents = s.execute(text("SELECT * FROM consent_events ORDER BY id")).all()
        report = retention.apply_schedule(rt.db, schedule, NOW, actor="test")
        assert report.done == {"roads": 1, "parks": 1, "governor": 0}
        everything = repr(dump(rt))
        with rt.db.session() as s:
            # The sealed original, the attachment and the reply no longer open.
            for opening in (lambda: open_original(s, doomed, ORIGINALS_KEY),
                            lambda: open_attachment(s, doomed, attachment_id, ORIGINALS_KEY),
                            lambda: open_thread_message(s, reply_id, ORIGINALS_KEY)):
                with pytest.raises(OriginalUnavailable):
                    opening()
            entry = s.get(Entry, doomed)
            assert entry is not None
            assert (entry.subject, entry.body, entry.search_text) == ("", "", "")
            assert entry.fields == {"topic": "", "rating": 4}
            submitter = s.scalar(select(Submitter).where(Submitter.entry_id == doomed))
            assert submitter is not None
            assert (submitter.name, submitter.email, submitter.phone,
                    submitter.postal_address) == (None, None, None, None)
            assert {(m.subject, m.body) for m in s.scalars(
                select(ThreadMessage).where(ThreadMessage.entry_id == doomed))} == {("", "")}
            assert s.scalars(select(Attachment.filename).where(
                Attachment.entry_id == doomed)).all() == ["attachment"]
            hashes = s.scalars(select(PiiFinding.value_hash).where(
                PiiFinding.entry_id == doomed)).all()
            assert hashes and set(hashes) == {""}
            # Nothing of the person is left anywhere in the database's text.
            for secret in ("Hopper", "grace@example.net", "555-0199", "Birch Lane", SSN):
                assert secret not in everything, secret
                assert secret not in caplog.text, secret
            # The record number, dates, agency, ledger and chains stay.
            after = {e.id: (e.record_number, e.received_at, e.agency_id, e.status)
                     for e in s.scalars(select(Entry))}
            assert after == before
            assert s.execute(text("SELECT * FROM disclosures ORDER BY id")).all() == ledger
            assert s.execute(text("SELECT * FROM consent_events ORDER BY id")).all() == consents
            assert all(r.verdict.ok and r.verdict.rows_checked for r in verify_chains(s))
            # The archived and the recent entries are untouched and open.
            for kept in (parks, recent):
                assert open_original(s, kept, ORIGINALS_KEY)
                kept_entry = s.get(Entry, kept)
                assert kept_entry is not None and kept_entry.body.startswith("A pothole")
            assert retention.disposed_entry_ids(s) == {doomed}
            assert s.scalars(select(Entry.id).where(~retention.destroyed_clause())).all() \
                == sorted([parks, recent])
            log = s.scalars(select(DispositionLogEntry).order_by(DispositionLogEntry.id)).all()
            assert [(r.entry_id, r.series, r.action, r.run_id) for r in log] == [
                (doomed, "roads", "destroyed", report.run_id),
                (parks, "parks", "archived", report.run_id)]
            assert s.scalar(select(Event.kind).where(Event.entry_id == doomed)
                            .order_by(Event.id.desc()).limit(1)) == "retention-destroyed"

    def test_apply_twice_does_nothing_the_second_time(self, rt: Runtime,
                                                       schedule: Schedule) -> None:
        doomed_entry(rt)
        make_entry(rt, "parks", received_at=LONG_AGO, key="parks")
        retention.apply_schedule(rt.db, schedule, NOW, actor="test")
        before = dump(rt)
        second = retention.apply_schedule(rt.db, schedule, NOW, actor="test")
        assert (second.total, second.run_id) == (0, None)
        assert dump(rt) == before

    def test_an_interrupted_run_is_finished_by_the_next(self, rt: Runtime,
                                                         schedule: Schedule) -> None:
        ids = [make_entry(rt, "dot", received_at=LONG_AGO, key=f"old-{n}") for n in range(5)]

        class Interrupted(Exception):
            """Stands for a process killed in the middle of a run."""

        def stop_after_two(done: int, total: int) -> None:
            if done >= 2:
                raise Interrupted

        with pytest.raises(Interrupted):
            retention.apply_schedule(rt.db, schedule, NOW, actor="test", batch=2,
                                     progress=stop_after_two)
        with rt.db.session() as s:
            assert len(retention.disposed_entry_ids(s)) == 2
        rest = retention.apply_schedule(rt.db, schedule, NOW, actor="test", batch=2)
        assert rest.total == 3
        with rt.db.session() as s:
            assert retention.disposed_entry_ids(s) == set(ids)
            assert len(s.scalars(select(DispositionLogEntry)).all()) == 5

    def test_two_runs_at_once_handle_each_entry_once(self, rt: Runtime,
                                                     schedule: Schedule) -> None:
        ids = [make_entry(rt, "dot" if n % 2 else "parks", received_at=LONG_AGO, key=f"c{n}")
               for n in range(8)]
        reports: list[retention.RunReport] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                reports.append(retention.apply_schedule(rt.db, schedule, NOW, actor="test",
                                                        batch=1))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sum(r.total for r in reports) == 8
        with rt.db.session() as s:
            logged = s.scalars(select(DispositionLogEntry.entry_id)).all()
        assert sorted(logged) == sorted(ids)

    def test_an_entry_stored_before_sealing_is_not_destroyed(self, rt: Runtime,
                                                            schedule: Schedule) -> None:
        with rt.db.session() as s:
            entry = Entry(record_number="EX-2025-000001", channel="email", kind="email",
                          idempotency_key="old", agency_id="dot", received_at=LONG_AGO,
                          subject="old", body="kept in plaintext", search_text="old")
            s.add(entry)
            s.flush()
            raw = b"plaintext original"
            s.execute(text("INSERT INTO originals (entry_id, content_type, raw, sha256, size, "
                           "received_at) VALUES (:e, 'message/rfc822', :r, :h, :n, :t)"),
                      {"e": entry.id, "r": raw, "h": hashlib.sha256(raw).hexdigest(),
                       "n": len(raw), "t": LONG_AGO})
            entry_id = entry.id
        report = retention.apply_schedule(rt.db, schedule, NOW, actor="test")
        assert (report.total, report.unsealed) == (0, 1)
        with rt.db.session() as s:
            kept = s.get(Entry, entry_id)
            assert kept is not None and kept.body == "kept in plaintext"


class TestLegalHold:
    def test_a_held_entry_is_never_disposed_of(self, rt: Runtime, schedule: Schedule) -> None:
        held = make_entry(rt, "dot", received_at=LONG_AGO, key="held")
        free = make_entry(rt, "dot", received_at=LONG_AGO, key="free")
        user = officer(rt)
        with rt.db.session() as s:
            numbers = retention.entry_ids_for_numbers(s, user, [
                s.get(Entry, held).record_number])  # type: ignore[union-attr]
            hold_id = retention.place_hold(s, user, reason="Litigation hold",
                                           case_reference="2030-CV-17", entry_ids=numbers,
                                           scope={"record_numbers": ["x"]})
        with rt.db.session() as s:
            planned = retention.plan(s, schedule, NOW)
        assert [d.entry_id for d in planned.due] == [free]
        assert planned.held == 1
        report = retention.apply_schedule(rt.db, schedule, NOW, actor="test")
        assert (report.total, report.held) == (1, 1)
        with rt.db.session() as s:
            assert open_original(s, held, ORIGINALS_KEY)
            assert retention.disposed_entry_ids(s) == {free}
            kinds = s.scalars(select(Event.kind).where(Event.entry_id == held)).all()
            assert "legal-hold" in kinds
            assert s.scalars(select(AccessLogEntry.what).where(
                AccessLogEntry.entry_id == held)).all() == ["legal-hold"]
            assert retention.release_hold(s, user, hold_id, "Case closed") == 1
        with rt.db.session() as s:
            assert "legal-hold-released" in s.scalars(
                select(Event.kind).where(Event.entry_id == held)).all()
            with pytest.raises(retention.RetentionActionError):
                retention.release_hold(s, user, hold_id, "again")
        assert retention.apply_schedule(rt.db, schedule, NOW, actor="test").total == 1
        with rt.db.session() as s:
            assert retention.disposed_entry_ids(s) == {free, held}

    def test_a_hold_on_a_search_holds_what_it_found_then(self, rt: Runtime,
                                                          schedule: Schedule) -> None:
        found = make_entry(rt, "dot", subject="Bridge collapse", body="The bridge collapse "
                           "on Route 9", received_at=LONG_AGO, key="bridge-1")
        make_entry(rt, "dot", subject="Pothole", received_at=LONG_AGO, key="other")
        user = officer(rt)
        with rt.db.session() as s:
            ids = retention.entry_ids_for_search(s, user, inbox.InboxFilter(query="collapse"))
            assert ids == [found]
            retention.place_hold(s, user, reason="Claim", case_reference="C-1", entry_ids=ids,
                                 scope={"search": {"q": "collapse"}})
        later = make_entry(rt, "dot", subject="Bridge collapse again", body="collapse",
                           received_at=LONG_AGO, key="bridge-2")
        with rt.db.session() as s:
            assert retention.held_entry_ids(s, [found, later]) == {found}

    def test_only_records_officers_hold_and_only_their_agencys_entries(
            self, rt: Runtime) -> None:
        theirs = make_entry(rt, "parks", received_at=LONG_AGO, key="parks")
        agent = make_account(rt, "agent@examplia.gov", "dot", "agent")
        user = officer(rt, "dot")
        with rt.db.session() as s:
            agent_user = s.get(StaffAccount, agent.id)
            assert agent_user is not None
            with pytest.raises(retention.RetentionActionError, match="records officers"):
                retention.place_hold(s, agent_user, reason="r", case_reference="c",
                                     entry_ids=[theirs], scope={})
            number = s.get(Entry, theirs).record_number  # type: ignore[union-attr]
            with pytest.raises(retention.RetentionActionError, match="Unknown record"):
                retention.entry_ids_for_numbers(s, user, [number])
            with pytest.raises(retention.RetentionActionError, match="case reference"):
                retention.place_hold(s, user, reason="r", case_reference="  ",
                                     entry_ids=[theirs], scope={})


class TestReview:
    def test_review_lists_the_entry_and_an_officer_decides(self, rt: Runtime,
                                                           schedule: Schedule) -> None:
        user = officer(rt, "governor")
        received = datetime.now(UTC) - timedelta(days=400)
        ids = [make_entry(rt, "governor", received_at=received, key=f"gov-{n}")
               for n in range(3)]
        with rt.db.session() as s:
            for entry_id in ids:
                entry = s.get(Entry, entry_id)
                assert entry is not None
                inbox.set_status(s, user, entry, "closed")
        later = datetime.now(UTC) + timedelta(days=31)
        assert retention.apply_schedule(rt.db, schedule, later, actor="test").total == 3
        with rt.db.session() as s:
            listed = retention.awaiting_review(s)
            assert [r.entry_id for r in listed] == ids
            # Nothing is destroyed by being listed.
            assert retention.disposed_entry_ids(s) == set()
            retention.place_hold(s, user, reason="r", case_reference="c", entry_ids=[ids[2]],
                                 scope={})
            retention.decide_review(s, user, listed[0].id, "destroy")
            retention.decide_review(s, user, listed[1].id, "keep")
            with pytest.raises(retention.RetentionActionError, match="legal hold"):
                retention.decide_review(s, user, listed[2].id, "destroy")
        with rt.db.session() as s:
            assert retention.disposed_entry_ids(s) == {ids[0]}
            assert [r.entry_id for r in retention.awaiting_review(s)] == [ids[2]]
            with pytest.raises(retention.RetentionActionError, match="decided on already"):
                retention.decide_review(s, user, listed[1].id, "destroy")
        # A later run does not list them again.
        assert retention.apply_schedule(rt.db, schedule, later, actor="test").total == 0


def test_a_plan_with_a_time_budget_says_it_is_incomplete(rt: Runtime,
                                                          schedule: Schedule) -> None:
    for n in range(3):
        make_entry(rt, "dot", received_at=LONG_AGO, key=f"old-{n}")
    with rt.db.session() as s:
        whole = retention.plan(s, schedule, NOW, page=1)
        cut = retention.plan(s, schedule, NOW, page=1, budget_seconds=0)
    assert whole.complete and len(whole.due) == 3
    assert not cut.complete and len(cut.due) == 1


@pytest.mark.parametrize("statement", ["UPDATE disposition_log SET action = 'kept'",
                                       "DELETE FROM disposition_log"])
def test_the_disposition_log_is_append_only(rt: Runtime, schedule: Schedule,
                                            statement: str) -> None:
    make_entry(rt, "dot", received_at=LONG_AGO, key="old")
    assert retention.apply_schedule(rt.db, schedule, NOW, actor="test").total == 1
    with pytest.raises(DBAPIError, match="append-only"), rt.db.session() as s:
        s.execute(text(statement))
    with rt.db.session() as s:
        assert s.scalars(select(DispositionLogEntry.action)).all() == ["destroyed"]
