"""Copies over HTTP: a cc or kept-copy agency sees the entry in its inbox, marked, read only
but for notes (the endpoints refuse), under its own rendition; the owner sees who has copies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from intake import create_app
from intake.db.copy_models import EntryCopy
from intake.db.models import Entry, ThreadMessage
from intake.db.staff_models import EntryAssignment, StaffAccount
from intake.runtime import Runtime
from intake.services import inbox
from tests.conftest import csrf, login, make_account, make_entry
from tests.web.test_staff_search import consent, found, record_number

ROW = re.compile(r'<tr class="[^"]*">(.*?)</tr>', re.S)


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def row_of(client: FlaskClient, number: str) -> str:
    page = client.get("/staff/inbox").get_data(as_text=True)
    [row] = [r for r in ROW.findall(page) if number in r]
    return row


def test_a_copy_shows_in_the_copy_agencys_inbox_read_only_but_for_notes(
        app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot", cc=("parks",), subject="Trail and road",
                          name="Maria Lopez", email="maria.lopez@example.org")
    consent(runtime, entry_id, "agency:dot")
    own = make_entry(runtime, "parks", subject="Campground", key="own")
    number = record_number(runtime, entry_id)
    reader = make_account(runtime, "reader@parks.examplia.gov", "parks")
    parks_colleague = make_account(runtime, "colleague@parks.examplia.gov", "parks")
    client = app.test_client()
    login(client, reader)

    # In parks' inbox, marked as a copy; its own entry is not.
    assert 'class="badge copy">Copy' in row_of(client, number)
    assert "badge copy" not in row_of(client, record_number(runtime, own))
    assert found(client, scope="copies") == [number]
    assert found(client, scope="own") == [record_number(runtime, own)]

    # parks' rendition: the consent names dot only, so no name or address for parks.
    page = client.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert "Trail and road" in page and 'id="copy-notice"' in page
    assert "Maria Lopez" not in page and "maria.lopez@example.org" not in page
    for action in ("staff.assign", "staff.set_status", "staff.reply", "staff.reroute"):
        assert f'action="/staff/entries/{entry_id}/{action.split(".")[1]}' not in page

    # Every action but a note is refused by the endpoint itself, not only hidden.
    token = csrf(client)
    refused = {
        "status": {"status": "closed"},
        "assign": {"staff_id": str(parks_colleague.id)},
        "tags": {"tags": "mine"},
        "reply": {"body": "We will look at it."},
        "reroute": {"agency": "parks", "reason": "ours", "keep_copy": "1"},
    }
    for action, form in refused.items():
        response = client.post(f"/staff/entries/{entry_id}/{action}",
                               data={"csrf_token": token, **form})
        assert response.status_code == 403, action
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None
        assert (entry.status, entry.agency_id, entry.tags) == ("new", "dot", [])
        assert s.get(EntryAssignment, entry_id) is None
        assert s.scalar(select(func.count()).select_from(ThreadMessage)
                        .where(ThreadMessage.entry_id == entry_id)) == 0
    response = client.post(f"/staff/entries/{entry_id}/note",
                           data={"csrf_token": token, "body": "Parks crew saw it too."})
    assert response.status_code == 303
    with runtime.db.session() as s:
        note = s.scalar(select(ThreadMessage).where(ThreadMessage.entry_id == entry_id))
        assert note is not None and note.direction == "note" and note.author_id == str(reader.id)

    # The owner agency sees the entry with its citizen (consent) and who holds copies.
    owner = app.test_client()
    login(owner, make_account(runtime, "owner@dot.examplia.gov", "dot"))
    page = owner.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    holders = re.search(r'<dd id="copy-holders">(.*?)</dd>', page, re.S)
    assert holders is not None and "Department of Parks" in holders.group(1)
    assert "Maria Lopez" in page and 'id="copy-notice"' not in page
    assert "badge copy" not in row_of(owner, number)


def test_a_kept_copy_follows_the_reroute(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot", cc=("parks",), subject="Fallen tree")
    number = record_number(runtime, entry_id)
    dot = app.test_client()
    login(dot, make_account(runtime, "agent@dot.examplia.gov", "dot"))
    parks = app.test_client()
    login(parks, make_account(runtime, "agent@parks.examplia.gov", "parks"))
    assert found(parks, q=number) == [number]

    response = dot.post(f"/staff/entries/{entry_id}/reroute",
                        data={"csrf_token": csrf(dot), "agency": "governor",
                              "reason": "Not ours", "keep_copy": "1"})
    assert response.status_code == 303
    # dot keeps a copy: marked in its inbox, readable, and refused any action but notes.
    assert 'class="badge copy">Copy' in row_of(dot, number)
    assert dot.get(f"/staff/entries/{entry_id}").status_code == 200
    assert dot.post(f"/staff/entries/{entry_id}/status",
                    data={"csrf_token": csrf(dot), "status": "closed"}).status_code == 403
    # The copies follow the latest decision: the reroute names dot only.
    assert found(parks, q=number) == []
    assert parks.get(f"/staff/entries/{entry_id}").status_code == 404
    with runtime.db.session() as s:
        assert list(s.scalars(select(EntryCopy.agency_id)
                              .where(EntryCopy.entry_id == entry_id))) == ["dot"]


def test_pages_merge_own_entries_and_copies_newest_first(app: Flask, runtime: Runtime) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    ids = [make_entry(runtime, "parks" if i % 3 else "dot", cc=("parks",) if i % 3 == 0 else (),
                      received_at=start + timedelta(hours=i), key=f"m{i}") for i in range(8)]
    reader = make_account(runtime, "pages@parks.examplia.gov", "parks")
    with runtime.db.session() as s:
        user = s.get(StaffAccount, reader.id)
        assert user is not None
        for scope, expected in ((None, ids), ("copies", ids[::3]),
                                ("own", [i for n, i in enumerate(ids) if n % 3])):
            seen: list[int] = []
            cursor = None
            while True:
                page = inbox.inbox_page(s, user, inbox.InboxFilter(scope=scope), cursor=cursor,
                                        limit=2, relay_domain=runtime.settings.relay_domain)
                seen.extend(r.id for r in page.rows)
                assert all(r.copy == (r.id in ids[::3]) for r in page.rows)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            assert seen == list(reversed(expected)), scope
