"""The records officers' retention pages over HTTP: holds, review, the log, both languages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.core.retention import Schedule, load_schedule_file
from intake.db.models import Entry, Event
from intake.db.staff_models import AccessLogEntry
from intake.runtime import Runtime
from intake.services import retention
from intake.services.records import OriginalUnavailable, open_original
from tests.conftest import (
    ORIGINALS_KEY,
    Account,
    csrf,
    login,
    make_account,
    make_entry,
    make_settings,
)

SCHEDULE = """\
version: 1
series:
  - id: roads
    title: Road complaints
    citation: GRS 6.5 item 020
    match: {agency: dot}
    trigger: received
    keep: 1y
    disposition: destroy
  - id: governor
    title: Governor's correspondence
    match: {agency: governor}
    trigger: received
    keep: 1y
    disposition: review
"""
OLD = datetime.now(UTC) - timedelta(days=400)


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    schedule = tmp_path / "retention.yaml"
    schedule.write_text(SCHEDULE)
    runtime = Runtime(make_settings(tmp_path, db_url, INTAKE_RETENTION=str(schedule)))
    runtime.rules.load()
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)
    application.testing = True
    return application


@pytest.fixture
def officer(rt: Runtime) -> Account:
    return make_account(rt, "records@examplia.gov", "dot", "records_officer")


@pytest.fixture
def client(app: Flask, officer: Account) -> FlaskClient:
    c = app.test_client()
    login(c, officer)
    return c


def number_of(rt: Runtime, entry_id: int) -> str:
    with rt.db.session() as s:
        number = s.scalar(select(Entry.record_number).where(Entry.id == entry_id))
    assert number is not None
    return number


def test_the_overview_says_what_the_next_run_would_do_in_english_and_spanish(
        rt: Runtime, client: FlaskClient) -> None:
    make_entry(rt, "dot", received_at=OLD, key="old-1")
    make_entry(rt, "dot", received_at=OLD, key="old-2")
    make_entry(rt, "dot", key="new")
    page = client.get("/staff/retention/", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert '<html lang="en">' in body
    row = re.search(r"Road complaints.*?</tr>", body, re.S)
    assert row is not None
    cells = re.findall(r"<td>(\d+)</td>", row.group(0))
    assert cells == ["2", "0"]
    assert "destroy the personal data, 1 year(s) after it was received" in row.group(0)
    assert 'aria-current="page">Retention</a>' in body

    spanish = client.get("/staff/retention/?lang=es").get_data(as_text=True)
    assert '<html lang="es">' in spanish
    assert "Lo que haría la próxima ejecución" in spanish
    assert "Saltar al contenido principal" in spanish
    # The browser's preference chooses too.
    by_header = client.get("/staff/retention/", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert '<html lang="es">' in by_header.get_data(as_text=True)


def test_other_staff_may_not_see_retention(rt: Runtime, app: Flask) -> None:
    agent = make_account(rt, "agent@examplia.gov", "dot", "agent")
    c = app.test_client()
    login(c, agent)
    for path in ("/staff/retention/", "/staff/retention/holds", "/staff/retention/log"):
        assert c.get(path).status_code == 403
    assert c.post("/staff/retention/holds", data={
        "csrf_token": csrf(c), "reason": "r", "case_reference": "c",
        "record_numbers": "EX-2026-000001"}).status_code == 403
    assert "Retention</a>" not in c.get("/staff/inbox").get_data(as_text=True)
    assert app.test_client().get("/staff/retention/").status_code == 302  # to the login


def test_a_hold_is_placed_listed_and_released_with_events_and_access_log(
        rt: Runtime, client: FlaskClient) -> None:
    held = make_entry(rt, "dot", received_at=OLD, key="held")
    number = number_of(rt, held)
    token = csrf(client, "/staff/retention/holds")
    # Without the CSRF token: refused.
    assert client.post("/staff/retention/holds", data={
        "reason": "Litigation", "case_reference": "2030-CV-17",
        "record_numbers": number}).status_code == 400
    placed = client.post("/staff/retention/holds", data={
        "csrf_token": token, "lang": "en", "mode": "records", "reason": "Litigation",
        "case_reference": "2030-CV-17", "record_numbers": f" {number.lower()}, "})
    assert placed.status_code == 303
    detail = client.get(placed.headers["Location"]).get_data(as_text=True)
    assert "Hold 1 placed on 1 entries." in detail
    assert number in detail and "2030-CV-17" in detail
    listing = client.get("/staff/retention/holds").get_data(as_text=True)
    assert "<strong>Active</strong>" in listing

    # The next run would keep it: the overview counts it as held.
    overview = client.get("/staff/retention/").get_data(as_text=True)
    row = re.search(r"Road complaints.*?</tr>", overview, re.S)
    assert row is not None and re.findall(r"<td>(\d+)</td>", row.group(0)) == ["0", "1"]

    released = client.post("/staff/retention/holds/1/release", data={
        "csrf_token": token, "lang": "es", "reason": "Case closed"})
    assert released.status_code == 303
    assert "lang=es" in released.headers["Location"]
    after = client.get(released.headers["Location"]).get_data(as_text=True)
    assert "Retención 1 liberada" in after or "Retención legal 1 liberada" in after
    with rt.db.session() as s:
        kinds = s.scalars(select(Event.kind).where(Event.entry_id == held)
                          .order_by(Event.id)).all()
        assert kinds[-2:] == ["legal-hold", "legal-hold-released"]
        assert s.scalars(select(AccessLogEntry.what).where(AccessLogEntry.entry_id == held)
                         .order_by(AccessLogEntry.id)).all() == [
            "legal-hold", "legal-hold-released"]
    again = client.post("/staff/retention/holds/1/release", data={
        "csrf_token": token, "reason": "again"})
    assert "The hold was released already." in client.get(
        again.headers["Location"]).get_data(as_text=True)


def test_a_hold_on_a_search_holds_the_entries_it_finds_now(rt: Runtime,
                                                           client: FlaskClient) -> None:
    found = make_entry(rt, "dot", subject="Bridge collapse", body="The bridge collapsed.",
                       key="bridge")
    make_entry(rt, "dot", subject="Pothole", key="pothole")
    make_entry(rt, "parks", subject="Bridge collapse in the park", key="other-agency")
    placed = client.post("/staff/retention/holds", data={
        "csrf_token": csrf(client), "mode": "search", "q": "collapse", "reason": "Claim",
        "case_reference": "C-1"})
    assert placed.status_code == 303
    page = client.get(placed.headers["Location"]).get_data(as_text=True)
    assert "Entries (1)" in page and number_of(rt, found) in page
    assert "q=collapse" in page
    with rt.db.session() as s:
        assert retention.held_entry_ids(s, [found]) == {found}


def test_hostile_input_is_refused_and_shown_escaped(rt: Runtime, client: FlaskClient) -> None:
    token = csrf(client)
    answer = client.post("/staff/retention/holds", data={
        "csrf_token": token, "reason": "r", "case_reference": "c",
        "record_numbers": "<script>alert(1)</script>"}, follow_redirects=True)
    body = answer.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert html.escape("Unknown record number(s): <SCRIPT>ALERT(1)</SCRIPT>") in body
    missing_case = client.post("/staff/retention/holds?lang=es", data={
        "csrf_token": token, "lang": "es", "reason": "r", "case_reference": " ",
        "record_numbers": number_of(rt, make_entry(rt, "dot"))}, follow_redirects=True)
    assert "Indique la referencia del caso." in missing_case.get_data(as_text=True)
    assert client.get("/staff/retention/holds/999").status_code == 404
    with rt.db.session() as s:
        assert retention.holds(s) == []


def test_review_decisions_and_the_disposition_log(rt: Runtime, app: Flask) -> None:
    governor = make_account(rt, "records@governor.examplia.gov", "governor",
                            "records_officer")
    c = app.test_client()
    login(c, governor)
    first = make_entry(rt, "governor", received_at=OLD, key="gov-1",
                       name="Grace Hopper", email="grace@example.net")
    second = make_entry(rt, "governor", received_at=OLD, key="gov-2")
    assert retention.apply_schedule(rt.db, retention_schedule(rt), datetime.now(UTC),
                                    actor="test").total == 2
    page = c.get("/staff/retention/").get_data(as_text=True)
    ids = re.findall(r'action="/staff/retention/review/(\d+)"', page)
    assert len(ids) == 2
    token = csrf(c, "/staff/retention/")
    destroyed = c.post(f"/staff/retention/review/{ids[0]}", data={
        "csrf_token": token, "decision": "destroy"})
    assert destroyed.status_code == 303
    assert f"{number_of(rt, first)}: its personal data was destroyed." in c.get(
        destroyed.headers["Location"]).get_data(as_text=True)
    c.post(f"/staff/retention/review/{ids[1]}", data={"csrf_token": token, "decision": "keep"})
    with rt.db.session() as s:
        with pytest.raises(OriginalUnavailable):
            open_original(s, first, ORIGINALS_KEY)
        assert open_original(s, second, ORIGINALS_KEY)
    assert "No entry awaits review." in c.get("/staff/retention/").get_data(as_text=True)
    log = c.get("/staff/retention/log").get_data(as_text=True)
    assert log.count("Listed for review") == 2
    assert "Personal data destroyed" in log and "Kept on review" in log
    assert "Grace" not in log and "grace@example.net" not in log
    # The DOT officer's log shows none of the governor's entries.
    other = app.test_client()
    login(other, make_account(rt, "records@dot.examplia.gov", "dot", "records_officer"))
    assert number_of(rt, first) not in other.get("/staff/retention/log").get_data(as_text=True)


def retention_schedule(rt: Runtime) -> Schedule:
    return load_schedule_file(rt.settings.retention_schedule_path)
