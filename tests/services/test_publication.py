"""``auto_after`` really happens: routing queues a ``publish`` work item that the job
system performs when it falls due, through the same publish gate as an officer's review.

Real databases (SQLite and PostgreSQL), the real route handler and job system.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.core.publication import RecordsConfigError
from intake.db.models import Entry, Event, WorkItem
from intake.db.staff_models import StaffAccount
from intake.runtime import Runtime, StartupError
from intake.services import publication
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from intake.services.work import due_item_ids
from tests.conftest import ORIGINALS_KEY, make_account, make_settings


def store(runtime: Runtime, body: str, received_at: datetime, *, form: str = "feedback",
          key: str) -> int:
    with runtime.db.session() as s:
        [recorded] = record_submissions(s, [NewSubmission(
            channel="web", kind="feedback", raw=key.encode(), content_type="application/json",
            subject="About the highway", body=body, form_slug=form, fields={},
            submitter=SubmitterData(name="Ada Lovelace", email="ada@example.org"),
            received_at=received_at)], record_prefix=runtime.settings.record_prefix,
            pii_key=runtime.pii_key, originals_key=ORIGINALS_KEY)
        return recorded.entry_id


def items(runtime: Runtime, kind: str) -> list[tuple[int, int | None, datetime]]:
    with runtime.db.session() as s:
        return [(i.id, i.entry_id, i.next_attempt_at) for i in s.scalars(
            select(WorkItem).where(WorkItem.kind == kind).order_by(WorkItem.id))]


def route_all(runtime: Runtime) -> None:
    for item_id, _, _ in items(runtime, "route"):
        runtime.jobs.perform(item_id, "test")


def state(runtime: Runtime, entry_id: int) -> str | None:
    with runtime.db.session() as s:
        return publication.publication_state(s, entry_id)


def test_auto_after_publishes_when_due_and_never_what_the_gate_refuses(
        runtime: Runtime) -> None:
    now = datetime.now(UTC)
    old = store(runtime, "The highway sign is bent.", now - timedelta(days=31), key="old")
    young = store(runtime, "The highway sign is bent again.", now - timedelta(days=2),
                  key="young")
    sensitive = store(runtime, "Highway toll: my SSN is 219-45-6781.",
                      now - timedelta(days=40), key="ssn")
    contact = store(runtime, "A highway question.", now - timedelta(days=40), form="contact",
                    key="contact")
    route_all(runtime)

    queued = {entry_id: due for _, entry_id, due in items(runtime, "publish")}
    assert set(queued) == {old, young, sensitive}  # contact is after_review: nothing queued
    assert queued[young] > now + timedelta(days=27)
    with runtime.db.session() as s:
        due = due_item_ids(s, [publication.PUBLISH_WORK], 100)
    assert sorted(e for i, e, _ in items(runtime, "publish") if i in due) == \
        sorted([old, sensitive])
    for item_id in due:
        runtime.jobs.perform(item_id, "test")

    assert state(runtime, old) == publication.PUBLISHED
    assert state(runtime, young) is None
    assert state(runtime, sensitive) is None  # high-severity finding: a review first
    assert state(runtime, contact) is None
    with runtime.db.session() as s:
        skipped = s.scalars(select(Event.detail).where(Event.entry_id == sensitive,
                                                       Event.kind == "publish-skipped")).all()
        published = s.scalars(select(Event.actor).where(Event.entry_id == old,
                                                        Event.kind == "published")).all()
        rows, _ = publication.public_page(s, publication.PublicQuery(q="bent"))
    assert skipped == [{"reason": "unreviewed-findings"}]
    assert published == ["system:auto-after"]
    assert [r.subject for r in rows] == ["About the highway"]


def test_auto_after_leaves_an_entry_an_officer_already_decided_about(
        runtime: Runtime) -> None:
    old = store(runtime, "The highway sign is bent.", datetime.now(UTC) - timedelta(days=31),
                key="old")
    route_all(runtime)
    officer = make_account(runtime, "records@governor.examplia.gov", "governor",
                           role="records_officer")
    with runtime.db.session() as s:
        entry, user = s.get(Entry, old), s.get(StaffAccount, officer.id)
        assert entry is not None and user is not None
        publication.withhold(s, user, entry, runtime.records, "personal-information",
                             "names a neighbour")
    [(item_id, _, _)] = items(runtime, "publish")
    runtime.jobs.perform(item_id, "test")
    runtime.jobs.perform(item_id, "test")  # idempotent
    assert state(runtime, old) == publication.WITHHELD


def test_a_records_file_that_does_not_validate_stops_start_up(tmp_path: Path,
                                                                sqlite_url: str) -> None:
    bad = tmp_path / "records.yaml"
    bad.write_text("version: 1\npublish: {default: sometimes}\nreasons: {}\n")
    with pytest.raises(StartupError, match=r"INTAKE_RECORDS: .*records.yaml: publish.default"):
        Runtime(make_settings(tmp_path, sqlite_url, INTAKE_RECORDS=str(bad)))
    bad.write_text("version: 1\npublish:\n  default: never\n  forms: [\n")
    with pytest.raises(RecordsConfigError, match=r"records.yaml:5: not valid YAML"):
        publication.load_records_file(bad)
