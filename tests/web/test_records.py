"""The public records portal over HTTP, on SQLite and PostgreSQL.

Entries carry planted personal data; a records officer publishes them over
the staff pages; the tests then read what really leaves the system: the
listing, the record pages, the search results and the CSV and JSON exports.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake import create_app
from intake.db.models import Entry
from intake.runtime import Runtime
from intake.services import publication
from intake.services.staff import StaffAccount
from tests.conftest import Account, csrf, login, make_account, make_entry

SSN = "219-45-6781"
CARD = "4111 1111 1111 1111"
OTHER_EMAIL = "bob.jones@mail.example.com"
PHONE = "(217) 555-0143"
STREET = "1200 Elm Street"
NAME = "Ada Lovelace"
OWN_EMAIL = "ada@example.org"
PLANTED_BODY = (f"A pothole on Route 9 broke my axle. My SSN is {SSN} and my card {CARD}. "
                f"Write to {OTHER_EMAIL} or call {PHONE}. I live at {STREET}, Springfield. "
                f"Thanks, {NAME}")
# Every planted value, and the forms a careless rendering would leak them in.
PLANTED = (SSN, SSN.replace("-", ""), CARD, CARD.replace(" ", ""), OTHER_EMAIL, OWN_EMAIL,
           PHONE, "555-0143", STREET, "Elm Street", NAME, "Lovelace")
CITATION = "KRS 61.878(1)(a)"


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


@pytest.fixture
def officer(runtime: Runtime) -> Account:
    return make_account(runtime, "records@dot.examplia.gov", "dot", role="records_officer")


def officer_client(app: Flask, officer: Account) -> FlaskClient:
    client = app.test_client()
    login(client, officer)
    return client


def publish(client: FlaskClient, entry_id: int) -> None:
    """Publish over the officer's review page; fail if the gate refused."""
    token = csrf(client, f"/staff/review/{entry_id}")
    response = client.post(f"/staff/review/{entry_id}/publish", data={"csrf_token": token})
    assert response.status_code == 303
    page = client.get(f"/staff/review/{entry_id}").get_data(as_text=True)
    assert "Reviewed and published." in page, page[:2000]


def publish_directly(runtime: Runtime, entry_id: int, officer: Account) -> None:
    """Publish through the service (the HTTP path is proven in the tests that use it)."""
    with runtime.db.session() as s:
        user = s.get(StaffAccount, officer.id)
        entry = s.get(Entry, entry_id)
        assert user is not None and entry is not None
        decision = publication.approve(s, user, entry, runtime.records,
                                       runtime.settings.relay_domain)
        assert decision.allowed, decision.reason


def record_number_of(runtime: Runtime, entry_id: int) -> str:
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None
        return entry.record_number


def everything_public(client: FlaskClient, number: str, query: str) -> dict[str, str]:
    """Every public answer that could show the entry, by what was asked."""
    answers = {
        "list": client.get("/records"),
        "record": client.get(f"/records/{number}"),
        "search": client.get("/records", query_string={"q": query}),
        "csv": client.get("/records", query_string={"format": "csv"}),
        "json": client.get("/records", query_string={"format": "json"}),
        "search-csv": client.get("/records", query_string={"q": query, "format": "csv"}),
        "search-json": client.get("/records", query_string={"q": query, "format": "json"}),
        "record-es": client.get(f"/records/{number}", query_string={"lang": "es"}),
    }
    for what, response in answers.items():
        assert response.status_code == 200, what
    return {what: response.get_data(as_text=True) for what, response in answers.items()}


def test_a_published_entry_shows_none_of_its_planted_personal_data_and_says_why(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot", subject=f"Pothole, call {PHONE}", body=PLANTED_BODY,
                          name=NAME, email=OWN_EMAIL)
    publish(officer_client(app, officer), entry_id)
    number = record_number_of(runtime, entry_id)
    public = app.test_client()

    pages = everything_public(public, number, "pothole axle")
    for what, body in pages.items():
        assert number in body, what
        for value in PLANTED:
            assert value.lower() not in body.lower(), (what, value)
    # Each redaction is a visible mark naming its reason and the law.
    marks = re.findall(r'<mark class="redaction">\[([^\]]*)\]</mark>', pages["record"])
    assert len(marks) >= 6  # phone in the subject; SSN, card, e-mail, phone, address, name
    assert all(m == f"personal information withheld — {CITATION}" for m in marks), marks
    marks_es = re.findall(r'<mark class="redaction">\[([^\]]*)\]</mark>', pages["record-es"])
    assert marks_es and all(m == f"información personal retenida — {CITATION}"
                            for m in marks_es)
    assert "broke my axle" in pages["record"]
    exported = json.loads(pages["json"])["records"]
    assert [r["record_number"] for r in exported] == [number]
    # The words of the planted data find nothing: the index holds only the public text.
    for word in ("Elm", "Lovelace", "4111", "Springfield Elm", "jones"):
        found = public.get("/records", query_string={"q": word, "format": "json"})
        assert json.loads(found.get_data(as_text=True))["records"] == [], word


def test_unpublished_withheld_unpublished_again_and_unknown_numbers_answer_the_same_404(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    never = make_entry(runtime, "dot", subject="Never reviewed pothole", key="a")
    withheld = make_entry(runtime, "dot", subject="Withheld pothole", key="b")
    taken_back = make_entry(runtime, "dot", subject="Taken back pothole", key="c")
    client = officer_client(app, officer)
    publish(client, taken_back)
    token = csrf(client, f"/staff/review/{taken_back}")
    assert client.post(f"/staff/review/{taken_back}/unpublish",
                       data={"csrf_token": token, "comment": "published by mistake"}
                       ).status_code == 303
    assert client.post(f"/staff/review/{withheld}/withhold",
                       data={"csrf_token": token, "reason_code": "law-enforcement",
                             "comment": "open investigation"}).status_code == 303
    public = app.test_client()

    def answer(number: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        response = public.get(f"/records/{number}")
        return response.status_code, response.get_data(), sorted(response.headers.items())

    unknown = answer("EX-2026-999999")
    assert unknown[0] == 404
    for entry_id in (never, withheld, taken_back):
        number = record_number_of(runtime, entry_id)
        assert answer(number) == unknown
        for args in ({}, {"q": "pothole"}, {"format": "json"}, {"q": "pothole", "format": "csv"}):
            assert number not in public.get("/records", query_string=args).get_data(
                as_text=True)
    # No cookie is ever set for the public.
    assert "Set-Cookie" not in public.get("/records").headers


def test_pages_are_newest_first_and_follow_the_next_link_without_overlap(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ids = [make_entry(runtime, "dot", subject=f"Road report {i}",
                      body=f"Potholes keep appearing on the highway, report {i}.",
                      received_at=start + timedelta(hours=i), key=f"k{i}")
           for i in range(25)]
    for entry_id in ids:
        publish_directly(runtime, entry_id, officer)
    public = app.test_client()

    first = public.get("/records").get_data(as_text=True)
    numbers = re.findall(r'class="record-number" href="[^"]+">([^<]+)<', first)
    expected = [record_number_of(runtime, i) for i in reversed(ids)]
    assert numbers == expected[:20]
    next_url = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_url is not None
    second = public.get(next_url.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'class="record-number" href="[^"]+">([^<]+)<', second) == expected[20:]
    assert 'rel="next"' not in second

    # Stemmed English search ("pothole" finds "Potholes"), and the filters.
    def found(**args: str) -> list[str]:
        data = json.loads(public.get("/records", query_string={**args, "format": "json"})
                          .get_data(as_text=True))
        return [r["record_number"] for r in data["records"]]

    assert len(found(q="pothole")) == 25
    assert found(q="report 7") != []
    assert found(q="pothole", channel="email") == []
    assert found(agency="parks") == []
    assert len(found(agency="dot")) == 25
    assert found(**{"from": "2026-03-02", "to": "2026-03-02"}) == expected[:13]  # 00:00-12:00
    assert found(**{"to": "2026-03-01"}) == expected[13:]
    # The exports page too: ?limit= rows at a time, the next page in "next" and Link.
    exported: list[str] = []
    url: str | None = "/records?format=json&limit=10&q=pothole"
    while url is not None:
        response = public.get(url)
        data = json.loads(response.get_data(as_text=True))
        exported += [r["record_number"] for r in data["records"]]
        url = data["next"]
        assert (response.headers.get("Link") is None) == (url is None)
    assert exported == expected
    csv_page = public.get("/records?format=csv&limit=20")
    assert len(list(csv.reader(io.StringIO(csv_page.get_data(as_text=True))))) == 21
    assert 'rel="next"' in csv_page.headers["Link"]

    # Hostile parameters are ignored or explained, never an error.
    for args in ({"from": "9999-12-31", "to": "9999-12-31"}, {"from": "0001-01-01"},
                 {"cursor": "garbage"}, {"cursor": "MjAyNi0wMy0wMXx4"}, {"limit": "-1"},
                 {"agency": "x" * 5000}, {"channel": "fax"}, {"to": "2026-02-30"}):
        assert public.get("/records", query_string=args).status_code == 200, args
        assert public.get("/records", query_string={**args, "format": "json"}
                          ).status_code == 200, args
    assert "Enter dates as year-month-day" in public.get(
        "/records?to=2026-02-30").get_data(as_text=True)
    assert public.get("/records?format=xml").status_code == 400
    # Hostile search syntax is words, never an error.
    for hostile in ('"', 'NEAR(', "a AND OR NOT", "pothole*", "-", "'; DROP TABLE x; --",
                    "\x00", "é" * 300):
        assert public.get("/records", query_string={"q": hostile}).status_code == 200


def test_the_pages_speak_spanish(app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot", body=PLANTED_BODY)
    publish_directly(runtime, entry_id, officer)
    number = record_number_of(runtime, entry_id)
    public = app.test_client()

    listing = public.get("/records", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="es">' in listing
    assert "Registros públicos" in listing and "Buscar" in listing
    page = public.get(f"/records/{number}?lang=es").get_data(as_text=True)
    assert '<html lang="es">' in page and "Registro público" in page
    assert "Lo que ocurrió" in page
    english = public.get(f"/records/{number}").get_data(as_text=True)
    assert '<html lang="en">' in english and "Public record" in english


def test_the_csv_export_cannot_carry_a_formula(app: Flask, runtime: Runtime,
                                               officer: Account) -> None:
    entry_id = make_entry(runtime, "dot", subject='=HYPERLINK("http://evil.example","x")',
                          body="A pothole on the highway.")
    publish_directly(runtime, entry_id, officer)
    rows = list(csv.reader(io.StringIO(app.test_client().get("/records?format=csv")
                                       .get_data(as_text=True))))
    assert rows[0][:2] == ["record_number", "received_at"]
    assert rows[1][4].startswith("'=")
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row)


def test_the_status_page_says_whether_the_entry_is_published(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    from intake.services.links import create_access_link

    entry_id = make_entry(runtime, "dot")
    with runtime.db.session() as s:
        token = create_access_link(s, entry_id)
    citizen = app.test_client()
    assert "Not published" in citizen.get(f"/status/{token}").get_data(as_text=True)
    publish_directly(runtime, entry_id, officer)
    page = citizen.get(f"/status/{token}").get_data(as_text=True)
    assert f'href="/records/{record_number_of(runtime, entry_id)}"' in page
