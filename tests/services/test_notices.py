"""Notices to staff over real SMTP (aiosmtpd): the assignment notice and the daily digest
carry the record number and a link to the staff page, and nothing of the citizen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake import create_app
from intake.cli import cli
from intake.db.models import Disclosure, Entry, WorkItem
from intake.runtime import Runtime
from intake.services.delivery import ASSIGNMENT_NOTICE, DIGEST
from tests.conftest import (
    TEST_SECRET,
    Received,
    SmtpSink,
    csrf,
    login,
    make_account,
    make_entry,
    make_runtime,
)

CITIZEN = {"name": "Maria Lopez", "email": "maria.lopez@example.org"}
SUBJECT = "Sinkhole swallowed my mailbox"
BODY = "A sinkhole on Oak Avenue, call me on (217) 555-0143 or write maria.lopez@example.org."
# Nothing of these may reach a staff notice.
PERSONAL = ("maria", "lopez", "sinkhole", "oak avenue", "555-0143", "mailbox")


@pytest.fixture
def rt(tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, db_url, sink.port)
    try:
        yield runtime
    finally:
        runtime.close()


def entry(rt: Runtime, key: str, received_at: datetime | None = None,
          agency: str = "dot") -> tuple[int, str]:
    entry_id = make_entry(rt, agency, subject=SUBJECT, body=BODY, key=key,
                          received_at=received_at, **CITIZEN)
    with rt.db.session() as s:
        number = s.scalar(select(Entry.record_number).where(Entry.id == entry_id))
        assert number is not None
        return entry_id, number


def items(rt: Runtime, kind: str) -> list[int]:
    with rt.db.session() as s:
        return list(s.scalars(select(WorkItem.id).where(WorkItem.kind == kind)
                              .order_by(WorkItem.id)))


def assert_no_personal_data(received: Received) -> None:
    """Neither in the bytes nor in the message as the receiver decodes it."""
    message = received.message
    text = "\n".join([received.raw.decode("utf-8", "replace"), message.get_content(),
                      *(str(value) for value in message.values())]).lower()
    leaked = [word for word in PERSONAL if word in text]
    assert leaked == [], leaked


def test_the_assignee_gets_a_link_and_no_personal_data(rt: Runtime, sink: SmtpSink) -> None:
    entry_id, number = entry(rt, "assign")
    lead = make_account(rt, "lead@dot.examplia.gov", "dot")
    crew = make_account(rt, "crew@dot.examplia.gov", "dot")
    app = create_app(runtime=rt)
    app.testing = True
    client = app.test_client()
    login(client, lead)

    def assign(staff_id: str) -> None:
        response = client.post(f"/staff/entries/{entry_id}/assign",
                               data={"staff_id": staff_id, "csrf_token": csrf(client)})
        assert response.status_code == 303

    assign("me")  # assigning oneself sends nothing
    assert items(rt, ASSIGNMENT_NOTICE) == []
    assign(str(crew.id))
    assign(str(crew.id))  # unchanged: no second notice
    [item_id] = items(rt, ASSIGNMENT_NOTICE)
    assert rt.jobs.perform(item_id, "test") == "done"

    [received] = sink.to(crew.email)
    message = received.message
    assert message["To"].addresses[0].addr_spec == crew.email
    assert number in str(message["Subject"])
    body = message.get_content()
    assert f"https://intake.examplia.gov/staff/entries/{entry_id}" in body
    assert number in body
    assert_no_personal_data(received)
    assert message["Auto-Submitted"] == "auto-generated"
    # Through the gate: a ledger row for the staff address, naming the work item.
    with rt.db.session() as s:
        row = s.scalar(select(Disclosure).where(Disclosure.nature == "assignment-notice"))
        assert row is not None and row.allowed and row.recipient_address == crew.email
        assert row.work_item_id == item_id
    # Done once: performing it again sends nothing more.
    assert rt.jobs.perform(item_id, "test") == "not-claimed"
    assert len(sink.to(crew.email)) == 1


def test_a_notice_for_an_assignment_already_changed_is_not_sent(
        rt: Runtime, sink: SmtpSink) -> None:
    entry_id, _ = entry(rt, "changed")
    lead = make_account(rt, "lead@dot.examplia.gov", "dot")
    crew = make_account(rt, "crew@dot.examplia.gov", "dot")
    app = create_app(runtime=rt)
    app.testing = True
    client = app.test_client()
    login(client, lead)
    for staff_id in (str(crew.id), "none"):
        assert client.post(f"/staff/entries/{entry_id}/assign",
                           data={"staff_id": staff_id, "csrf_token": csrf(client)}
                           ).status_code == 303
    [item_id] = items(rt, ASSIGNMENT_NOTICE)
    assert rt.jobs.perform(item_id, "test") == "done"
    assert sink.to(crew.email) == []


def test_the_daily_digest_lists_record_numbers_once(
        tmp_path: Path, db_url: str, rt: Runtime, sink: SmtpSink) -> None:
    day = datetime(2026, 4, 7, tzinfo=UTC)
    listed = [entry(rt, f"d{i}", day.replace(hour=8 + i)) for i in range(3)]
    entry(rt, "before", day.replace(day=6, hour=23))  # the day before: not listed
    entry(rt, "parks", day.replace(hour=9), agency="parks")  # parks has no digest
    env = {
        "INTAKE_SECRET_KEY": TEST_SECRET,
        "INTAKE_DATABASE_URL": rt.settings.database_url,
        "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
        "INTAKE_RULES": str(rt.settings.rules_path),
        "INTAKE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "INTAKE_MAIL_FROM": "intake@examplia.gov",
        "INTAKE_PUBLIC_URL": "https://intake.examplia.gov",
        "INTAKE_DIGEST_RECIPIENTS": "dot=chief@dot.examplia.gov",
    }
    runner = CliRunner()
    result = runner.invoke(cli, ["notices", "digest", "--day", "2026-04-07", "--send"], env=env)
    assert result.exit_code == 0, result.output
    assert "dot: 3 new entries on 2026-04-07: queued" in result.output

    [received] = sink.to("chief@dot.examplia.gov")
    assert sink.all() == [received]
    message = received.message
    assert str(message["Subject"]) == "New entries for Department of Transportation on " \
                                      "2026-04-07: 3"
    body = message.get_content()
    for entry_id, number in listed:
        assert f"{number}  https://intake.examplia.gov/staff/entries/{entry_id}" in body
    assert body.count("/staff/entries/") == 3
    assert_no_personal_data(received)
    with rt.db.session() as s:
        rows = list(s.scalars(select(Disclosure).where(Disclosure.nature == "digest")))
        assert sorted(r.entry_id for r in rows) == sorted(i for i, _ in listed)
        assert all(r.allowed and r.recipient_address == "chief@dot.examplia.gov" for r in rows)

    # Once per agency and day.
    again = runner.invoke(cli, ["notices", "digest", "--day", "2026-04-07", "--send"], env=env)
    assert again.exit_code == 0 and "already queued" in again.output
    assert len(items(rt, DIGEST)) == 1 and len(sink.all()) == 1
    quiet = runner.invoke(cli, ["notices", "digest", "--day", "2026-04-08"], env=env)
    assert "dot: 0 new entries on 2026-04-08: nothing new" in quiet.output
    assert len(items(rt, DIGEST)) == 1
