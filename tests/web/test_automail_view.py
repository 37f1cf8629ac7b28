"""The staff's view of automatic mail at /staff/automatic, over HTTP: automatic mail is listed
there by kind and left out of the inbox list; an agency sees only its own; the entry page
opens; the records review refuses to publish it."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from intake import create_app
from intake.db.models import WorkItem
from intake.runtime import Runtime
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from tests.conftest import login, make_account

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail" / "auto"
PEOPLE = "Food truck license renewal"  # human/person-at-info-address.eml
# The rules route all of these to the default agency, the governor's office.
GOVERNOR = "governor"


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def _store_and_route(runtime: Runtime, raws: list[bytes]) -> list[int]:
    context = MailContext.from_settings(runtime.settings, "contact", pii_key=runtime.pii_key)
    outcomes = store_messages(runtime.db, [ReceivedMail(r) for r in raws], context)
    with runtime.db.session() as s:
        routes = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
    for item_id in routes:
        assert runtime.jobs.perform(item_id, "test") == "done"
    return [o.entry_id for o in outcomes if o.entry_id is not None]


def _corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_automatic_mail_has_its_own_view_and_stays_out_of_the_inbox(
        app: Flask, runtime: Runtime) -> None:
    raws = [_corpus("auto-reply--lotus-notes-oof-subject.eml"),
            _corpus("bounce--postfix-dsn.eml"), _corpus("spam--spamassassin-flag.eml"),
            _corpus("human/person-at-info-address.eml")]
    oof, bounce, spam, person = _store_and_route(runtime, raws)
    with runtime.db.session() as s:
        planned = {(w.entry_id, w.kind) for w in s.scalars(
            select(WorkItem).where(WorkItem.kind != "route"))}
    assert planned == {(person, "deliver"), (person, "acknowledge")}

    agent = make_account(runtime, "agent@governor.examplia.gov", GOVERNOR)
    client = app.test_client()
    login(client, agent)

    inbox = client.get("/staff/inbox")
    assert inbox.status_code == 200
    page = html.unescape(inbox.get_data(as_text=True))
    assert PEOPLE in page
    assert "Out of Office AutoReply" not in page and "Undelivered Mail" not in page
    assert "You have won" not in page
    assert 'href="/staff/automatic"' in page, "the staff navigation links the view"

    view = client.get("/staff/automatic")
    assert view.status_code == 200
    text = html.unescape(view.get_data(as_text=True))
    for subject in ("Out of Office AutoReply: Pothole on Route 9",
                    "Undelivered Mail Returned to Sender", "You have won $1,000,000"):
        assert subject in text
    assert PEOPLE not in text
    assert "Bounces <span class=\"count\">1</span>" in text
    assert f'href="/staff/entries/{bounce}"' in text

    only_bounces = html.unescape(client.get("/staff/automatic?category=bounce")
                                 .get_data(as_text=True))
    assert "Undelivered Mail Returned to Sender" in only_bounces
    assert "Out of Office AutoReply" not in only_bounces and "You have won" not in only_bounces
    assert "report: delivery-status" in only_bounces, "why it counts as a bounce"
    # An unknown kind shows all of them (nothing breaks).
    assert "You have won" in client.get("/staff/automatic?category=nonsense").get_data(
        as_text=True)

    entry_page = client.get(f"/staff/entries/{spam}")
    assert entry_page.status_code == 200
    assert "You have won" in html.unescape(entry_page.get_data(as_text=True))

    # Another agency sees none of it.
    outsider = make_account(runtime, "agent@parks.examplia.gov", "parks")
    other = app.test_client()
    login(other, outsider)
    theirs = html.unescape(other.get("/staff/automatic").get_data(as_text=True))
    assert "Undelivered Mail" not in theirs and "No automatic mail" in theirs
    assert other.get(f"/staff/entries/{oof}").status_code == 404


def test_the_records_review_refuses_to_publish_automatic_mail(
        app: Flask, runtime: Runtime) -> None:
    [bulk] = _store_and_route(runtime, [_corpus("bulk--mailman-list.eml")])
    officer = make_account(runtime, "records@governor.examplia.gov", GOVERNOR,
                           role="records_officer")
    client = app.test_client()
    login(client, officer)
    review = html.unescape(client.get(f"/staff/review/{bulk}").get_data(as_text=True))
    assert "it is kept as a record but never published" in review
