"""The staff search over HTTP, on SQLite and PostgreSQL: record numbers, stemmed words,
names and addresses only for the staff whose rendition shows them, filters, snippets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.db.models import Entry
from intake.runtime import Runtime
from intake.services.consent import ensure_policy_text, record_consent
from tests.conftest import POLICY, Account, csrf, login, make_account, make_entry

NUMBER = re.compile(r'class="record-number">([^<]+)<')


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def logged_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    login(client, account)
    return client


def found(client: FlaskClient, **query: str) -> list[str]:
    """The record numbers the inbox lists for ``query``."""
    response = client.get("/staff/inbox", query_string=query)
    assert response.status_code == 200
    return NUMBER.findall(response.get_data(as_text=True))


def record_number(runtime: Runtime, entry_id: int) -> str:
    with runtime.db.session() as s:
        number = s.scalar(select(Entry.record_number).where(Entry.id == entry_id))
        assert number is not None
        return number


def consent(runtime: Runtime, entry_id: int, recipient_class: str) -> None:
    with runtime.db.session() as s:
        ensure_policy_text(s, *POLICY)
        record_consent(s, entry_id=entry_id, action=ConsentAction.GRANT,
                       purpose=Purpose.SHARE_IDENTITY, recipient_class=recipient_class,
                       policy_version=POLICY[0], method=ConsentMethod.WEB_CHECKBOX,
                       evidence=b"consent=on")


def test_record_numbers_stemmed_words_filters_and_snippets(app: Flask, runtime: Runtime) -> None:
    day = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    pothole = make_entry(runtime, "dot", subject="Road damage", received_at=day, key="a",
                         body="There is a deep pothole on Main Street, near the school. "
                              "Write to ada@example.org or call (217) 555-0143.")
    light = make_entry(runtime, "dot", subject="Dark corner", received_at=day + timedelta(days=1),
                       key="b", body="The streetlights are broken <script>alert(1)</script> "
                                     "since the storms.")
    elsewhere = make_entry(runtime, "parks", subject="Trail", key="c",
                           body="A pothole on the trail to the lake.")
    agent = make_account(runtime, "search@dot.examplia.gov", "dot")
    colleague = make_account(runtime, "other@dot.examplia.gov", "dot")
    client = logged_in(app, agent)
    numbers = {i: record_number(runtime, i) for i in (pothole, light, elsewhere)}

    # The record number, exactly, as the app shows it (and in the forms people paste).
    for query in (numbers[light], numbers[light].lower(), f"#{numbers[light]}",
                  f"[#{numbers[light]}]"):
        assert found(client, q=query) == [numbers[light]], query
    assert found(client, q=numbers[elsewhere]) == []  # another agency's: not found
    assert found(client, q=numbers[light][:-1] + "9") == []

    # Words with stemming: plural finds singular and back; other agencies' entries stay out.
    assert found(client, q="potholes") == [numbers[pothole]]
    assert found(client, q="streetlight storm") == [numbers[light]]
    assert found(client, q="potholes storms") == []  # every word is required

    # The snippet: the searched word marked, the text escaped, never hidden text.
    page = client.get("/staff/inbox?q=potholes").get_data(as_text=True)
    snippet = re.search(r'<p class="snippet">(.*?)</p>', page, re.S)
    assert snippet is not None and "<mark>pothole</mark>" in snippet.group(1)
    assert "ada@example.org" not in page and "555-0143" not in page
    page = client.get("/staff/inbox?q=storms").get_data(as_text=True)
    assert "<mark>storms</mark>" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page

    # Filters with the search: status, assignee, dates.
    token = csrf(client)
    assert client.post(f"/staff/entries/{light}/status",
                       data={"status": "closed", "csrf_token": token}).status_code == 303
    assert client.post(f"/staff/entries/{pothole}/assign",
                       data={"staff_id": str(colleague.id), "csrf_token": token}
                       ).status_code == 303
    assert found(client, q="streetlights", status="closed") == [numbers[light]]
    assert found(client, q="streetlights", status="new") == []
    assert found(client, q="pothole", assignee=str(colleague.id)) == [numbers[pothole]]
    assert found(client, q="pothole", assignee="none") == []
    assert found(client, q="streetlights", assignee="none") == [numbers[light]]
    assert found(client, **{"from": "2026-03-03"}) == [numbers[light]]
    assert found(client, q="pothole", to="2026-03-02") == [numbers[pothole]]
    assert found(client, q="streetlights", to="2026-03-02") == []


def test_names_and_addresses_are_found_only_by_staff_who_may_see_them(
        app: Flask, runtime: Runtime) -> None:
    shared = make_entry(runtime, "dot", cc=("parks",), subject="Pothole", key="shared",
                        name="Maria Lopez", email="maria.lopez@example.org",
                        body="A pothole on Route 9.")
    consent(runtime, shared, "agency:dot")  # the name and address: for dot only
    hidden = make_entry(runtime, "dot", cc=("parks",), subject="Pothole", key="hidden",
                        name="Grace Hopper", email="grace.hopper@example.org",
                        body="Another pothole on Route 9.")
    number = record_number(runtime, shared)
    dot = logged_in(app, make_account(runtime, "agent@dot.examplia.gov", "dot"))
    parks = logged_in(app, make_account(runtime, "agent@parks.examplia.gov", "parks"))
    officer = logged_in(app, make_account(runtime, "records@dot.examplia.gov", "dot",
                                          role="records_officer"))

    # dot's staff see Maria Lopez's name and address (her consent): the search finds them.
    for query in ("Maria Lopez", "lopez", "maria.lopez@example.org", "MARIA.LOPEZ@Example.org"):
        assert found(dot, q=query) == [number], query
    # Grace Hopper gave no consent: dot's staff see neither, so nothing is found by them.
    for query in ("Grace Hopper", "hopper", "grace.hopper@example.org"):
        page = dot.get("/staff/inbox", query_string={"q": query}).get_data(as_text=True)
        assert NUMBER.findall(page) == [] and "No entries match." in page, query
    # parks holds copies of both but no consent covers parks; a records officer sees
    # contact data only through a logged reveal: no hit for any name or address.
    for client in (parks, officer):
        for query in ("Maria Lopez", "maria.lopez@example.org", "Grace Hopper",
                      "grace.hopper@example.org"):
            assert found(client, q=query) == [], query
    # The same people find the entries by their words.
    assert sorted(found(parks, q="potholes")) == sorted([number, record_number(runtime, hidden)])
    assert len(found(officer, q="potholes")) == 2


def test_hostile_search_input_is_data(app: Flask, runtime: Runtime) -> None:
    number = record_number(runtime, make_entry(runtime, "dot", body="A pothole here."))
    client = logged_in(app, make_account(runtime, "fuzz@dot.examplia.gov", "dot"))
    for query in ("pot\x00holes", "a\x00@example.org", "\x00", "%", "_", "'%' OR 1=1 --",
                  '"', "NEAR(", "[#", "#", "x" * 300, "@", "maria@", "EX-2026-"):
        response = client.get("/staff/inbox", query_string={"q": query})
        assert response.status_code == 200, query
    assert found(client, q="pot\x00holes") == []  # two words, neither in the entry
    assert found(client, q="potholes\x00") == [number]
