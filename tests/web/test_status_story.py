"""The submitter's status page tells the story, in the language they wrote in.

A person writes through the Spanish form; the message is routed by the real
workers, read and answered by an agency over the staff pages, passed on to
another agency, closed and published. The status page (over HTTP, with the
private link from the receipt page) shows each step in Spanish, with agency
names, the answer's words and the state's local time, and none of the
internal words (rule ids, state names, the staff's reroute reason).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from intake import create_app
from intake.db.models import Entry, RoutingDecision
from intake.db.staff_models import StaffAccount
from intake.runtime import Runtime
from intake.services import publication
from tests.conftest import (
    SmtpSink,
    aged_token,
    csrf,
    login,
    make_account,
    make_runtime,
    record_number_in,
    status_path_in,
    wait_for,
    write_forms_file,
)

SPANISH_MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
                  "septiembre", "octubre", "noviembre", "diciembre")
ENGLISH_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December")
REASON = "INTERNAL-REASON-7731 parks owns the trail"
ANSWER = "Repararemos el bache el lunes. <b>Gracias</b> por avisarnos."


@pytest.fixture
def rt(tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, db_url, sink.port,
                           INTAKE_FORMS=str(write_forms_file(tmp_path)),
                           INTAKE_FORM_RATE_LIMIT="1000/minute")
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)
    application.testing = True
    return application


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _submit(app: Flask, lang: str, message: str) -> tuple[str, str, str]:
    """Post the contact form over HTTP: the receipt page, its record number, the link."""
    response = app.test_client().post("/forms/contact", data={
        "_token": aged_token(app, "contact"), "lang": lang, "name": "Ana Ortiz",
        "email": "ana@example.com", "topic": "transportation", "subject": "Bache",
        "message": message})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    number, path = record_number_in(page), status_path_in(page)
    assert number and path
    return page, number, path


def test_the_status_page_tells_the_story_in_spanish(app: Flask, rt: Runtime,
                                                    sink: SmtpSink) -> None:
    receipt, number, path = _submit(
        app, "es", "Hay un pothole enorme en la calle principal desde hace dos semanas.")
    assert '<html lang="es">' in receipt and "Gracias" in receipt
    citizen = app.test_client()
    first = citizen.get(path, headers={"Accept-Language": "en"})  # the entry's language wins
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert '<html lang="es">' in page and "Hemos recibido su mensaje" in page

    rt.jobs.start()
    with rt.db.session() as s:
        entry_id = s.scalar(select(Entry.id).where(Entry.record_number == number))
        assert s.get(Entry, entry_id).language == "es"  # type: ignore[union-attr]
    wait_for(lambda: _routed(rt, entry_id), message="routed by the rules")

    dot = make_account(rt, "agent@dot.examplia.gov", "dot")
    staff = app.test_client()
    login(staff, dot)
    assert staff.get(f"/staff/entries/{entry_id}").status_code == 200  # read: access log
    token = csrf(staff, f"/staff/entries/{entry_id}")
    assert staff.post(f"/staff/entries/{entry_id}/reply",
                      data={"csrf_token": token, "body": ANSWER}).status_code == 303
    token = csrf(staff, f"/staff/entries/{entry_id}")
    assert staff.post(f"/staff/entries/{entry_id}/reroute", data={
        "csrf_token": token, "agency": "parks", "reason": REASON}).status_code == 303

    parks = make_account(rt, "agent@parks.examplia.gov", "parks")
    other = app.test_client()
    login(other, parks)
    assert other.get(f"/staff/entries/{entry_id}").status_code == 200
    token = csrf(other, f"/staff/entries/{entry_id}")
    assert other.post(f"/staff/entries/{entry_id}/status",
                      data={"csrf_token": token, "status": "closed"}).status_code == 303
    officer = make_account(rt, "records@parks.examplia.gov", "parks", role="records_officer")
    with rt.db.session() as s:
        user, entry = s.get(StaffAccount, officer.id), s.get(Entry, entry_id)
        assert user is not None and entry is not None
        assert publication.approve(s, user, entry, rt.records,
                                   rt.settings.relay_domain).allowed

    html = citizen.get(path).get_data(as_text=True)
    story = html.split('class="timeline"')[1].split("</ol>")[0]
    steps = [_text(step) for step in re.findall(r"<li[^>]*>(.*?)</li>", story, re.S)]
    heads = [step.split(" ")[0] for step in steps]
    assert heads == ["Hemos", "Enviado", "Leído", "Respondido", "Remitido", "Leído",
                     "Cerrado", "Publicado"], steps
    assert "Enviado a: Department of Transportation" in steps[1]
    assert "Leído por: Department of Transportation" in steps[2]
    # The agency's own words, escaped: no markup from anyone reaches the page.
    assert "Respondido por: Department of Transportation" in steps[3]
    assert "Repararemos el bache el lunes. &lt;b&gt;Gracias&lt;/b&gt;" in story
    assert "Remitido a: Department of Parks" in steps[4]
    assert "le corresponde a: Department of Parks" in steps[4]
    assert "Leído por: Department of Parks" in steps[5]
    assert f'href="/records/{number}?lang=es"' in story
    # No internal words: rule ids, state names, the staff's reason, UTC.
    visible = _text(html)
    for word in ("roads", "closed", "new", "open", "forward", "redirect", "respond",
                 "INTERNAL-REASON", "UTC", "dot", "parks"):
        assert not re.search(rf"\b{word}\b", visible), word
    # Times in the state's zone, written the Spanish way.
    with rt.db.session() as s:
        received = s.scalar(select(Entry.received_at).where(Entry.id == entry_id))
    assert received is not None
    local = received.astimezone(ZoneInfo("America/New_York"))
    assert (f"{local.day} de {SPANISH_MONTHS[local.month - 1]} de {local.year}, "
            f"{local:%H:%M}") in steps[0]
    # The answer reached the person by e-mail, in Spanish, both parts, with a status link.
    wait_for(lambda: _mail_with(sink, ANSWER.split(".")[0]), message="reply sent")
    reply = _mail_with(sink, ANSWER.split(".")[0])
    assert reply is not None
    plain = reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    rich = reply.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Enviado por Department of Transportation" in plain and number in plain
    assert "&lt;b&gt;Gracias&lt;/b&gt;" in rich and "<b>" not in rich
    assert '<html lang="es">' in rich and number in rich
    link = re.search(r"https://intake\.examplia\.gov(/status/[A-Za-z0-9_-]+)", plain)
    assert link and citizen.get(link.group(1)).status_code == 200


def test_the_status_page_in_english_with_local_time(app: Flask, rt: Runtime) -> None:
    _, number, path = _submit(app, "en", "There is a pothole on Route 9.")
    page = app.test_client().get(path, headers={"Accept-Language": "es"})
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "What has happened so far" in html and "We received your message" in html
    assert "Received, waiting to be read" in html and "Not published" in html
    found = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', html)
    assert found
    at = datetime.fromisoformat(found.group(1)).astimezone(ZoneInfo("America/New_York"))
    assert found.group(2).startswith(f"{ENGLISH_MONTHS[at.month - 1]} {at.day}, {at.year}")
    assert at.strftime("%Z") in found.group(2)  # EST or EDT, never UTC


def _routed(rt: Runtime, entry_id: int) -> bool:
    with rt.db.session() as s:
        return s.scalar(select(RoutingDecision.id)
                        .where(RoutingDecision.entry_id == entry_id)) is not None


def _mail_with(sink: SmtpSink, words: str) -> object | None:
    for received in sink.all():
        message = received.message
        body = message.get_body(("plain",))
        if body is not None and words in body.get_content():
            return message
    return None


def test_a_reply_sent_after_a_reroute_is_signed_by_the_agency_that_wrote_it(
        app: Flask, rt: Runtime, sink: SmtpSink) -> None:
    """The reply goes out after the entry has moved on: the e-mail still names the agency
    whose staff wrote it, not the one the entry is with when the worker sends it."""
    import threading

    _, number, _ = _submit(app, "en", "A pothole the size of a bathtub on Main Street.")
    finish = threading.Event()
    finish.set()
    rt.jobs.drain(["route"], finish=finish)  # routed to Transportation; nothing sent yet
    with rt.db.session() as s:
        entry_id = s.scalar(select(Entry.id).where(Entry.record_number == number))
    dot = make_account(rt, "agent@dot.examplia.gov", "dot")
    staff = app.test_client()
    login(staff, dot)
    token = csrf(staff, f"/staff/entries/{entry_id}")
    assert staff.post(f"/staff/entries/{entry_id}/reply",
                      data={"csrf_token": token, "body": "We fix it on Monday."}
                      ).status_code == 303
    token = csrf(staff, f"/staff/entries/{entry_id}")
    assert staff.post(f"/staff/entries/{entry_id}/reroute", data={
        "csrf_token": token, "agency": "parks", "reason": REASON}).status_code == 303
    rt.jobs.drain(["reply"], finish=finish)  # only now does the reply go out
    reply = _mail_with(sink, "We fix it on Monday")
    assert reply is not None
    plain = reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Department of Transportation" in plain and "Parks" not in plain
    assert "Department of Transportation" in str(reply["From"])
