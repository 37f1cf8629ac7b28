"""The citizen's side of the forms over HTTP: the sensitive-data warning step (its timing,
what each choice does), error pages in the person's language, anonymous entries on the
staff side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.core.pii.redact import marker_for
from intake.db.models import Entry, ThreadMessage, WorkItem
from intake.runtime import Runtime
from intake.services.records import open_original
from tests.conftest import (
    SMALL_RULES,
    csrf,
    login,
    make_account,
    make_settings,
    record_number_in,
    write_forms_file,
)
from tests.web.conftest import Clock

SSN = "536-22-8815"
TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def _runtime(tmp_path: Path, url: str, **env: str) -> Runtime:
    values = {"INTAKE_FORMS": str(write_forms_file(tmp_path, min_fill_seconds=5)),
              "INTAKE_FORM_RATE_LIMIT": "1000/minute", "INTAKE_RULES": str(SMALL_RULES)}
    values.update(env)
    runtime = Runtime(make_settings(tmp_path, url, **values))
    runtime.rules.load()
    return runtime


@pytest.fixture
def rt(tmp_path: Path, sqlite_url: str) -> Iterator[Runtime]:
    runtime = _runtime(tmp_path, sqlite_url)
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app(runtime=rt)


def _answers(token: str, lang: str = "en", **more: str) -> dict[str, str]:
    return {"_token": token, "lang": lang, "name": "Ana Ortiz", "email": "ana@example.com",
            "topic": "taxes", "subject": "Refund",
            "message": f"My refund is late. My SSN is {SSN}, please check.", **more}


def _warned(client: FlaskClient, clock: Clock, lang: str = "en") -> tuple[str, str]:
    """Open the form, fill it in for 10 s, send: the warning page and its token."""
    page = client.get(f"/forms/contact?lang={lang}").get_data(as_text=True)
    first = TOKEN.search(page)
    assert first
    clock.advance(10)
    warned = client.post("/forms/contact", data=_answers(first.group(1), lang))
    assert warned.status_code == 200
    html = warned.get_data(as_text=True)
    assert 'id="sensitive-warning"' in html and record_number_in(html) is None
    token = TOKEN.search(html)
    assert token
    return html, token.group(1)


def _stored(rt: Runtime, number: str) -> tuple[Entry, bytes]:
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.record_number == number)).one()
        s.expunge(entry)
        return entry, open_original(s, entry.id, rt.originals_key)


@pytest.mark.parametrize("choice", ["seal", "remove"])
def test_confirming_within_three_seconds_of_the_warning_keeps_answers_and_choice(
        app: Flask, rt: Runtime, clock: Clock, choice: str) -> None:
    client = app.test_client()
    html, token = _warned(client, clock)
    assert f'value="{SSN}' not in html or "My refund is late." in html  # answers kept
    assert "My refund is late." in html
    clock.advance(2)  # well under the 5-second minimum fill time
    confirmed = client.post("/forms/contact",
                            data=_answers(token, _confirm_sensitive=choice))
    page = confirmed.get_data(as_text=True)
    assert confirmed.status_code == 200, page[:3000]
    number = record_number_in(page)
    assert number, "the confirmation was refused as too fast"
    entry, original = _stored(rt, number)
    if choice == "seal":
        # "Hidden from everyone except the sealed record": a mark in the text, the number
        # only in the sealed original.
        assert entry.body == f"My refund is late. My SSN is {marker_for('ssn')}, please check."
        assert SSN.encode() in original
    else:
        # "Remove the numbers": gone from the text and from the sealed original.
        assert entry.body == "My refund is late. My SSN is [removed], please check."
        assert SSN.encode() not in original and SSN.replace("-", "").encode() not in original


def test_the_first_page_still_has_its_minimum_fill_time(app: Flask, clock: Clock) -> None:
    client = app.test_client()
    page = client.get("/forms/contact").get_data(as_text=True)
    token = TOKEN.search(page)
    assert token
    clock.advance(1)
    response = client.post("/forms/contact",
                           data=_answers(token.group(1), _confirm_sensitive="seal"))
    assert response.status_code == 400
    assert "Please check your answers and send the form again" in response.get_data(
        as_text=True)


def test_the_warning_in_spanish_says_what_each_choice_does(app: Flask, rt: Runtime,
                                                          clock: Clock) -> None:
    client = app.test_client()
    html, token = _warned(client, clock, "es")
    assert '<html lang="es">' in html
    assert "Quitar los números y enviar" in html
    assert "los números quedan ocultos para todos salvo en el registro sellado" in html
    # Not one of the choices: asked again, in Spanish, answers kept.
    clock.advance(1)
    again = client.post("/forms/contact", data=_answers(token, "es", _confirm_sensitive="x"))
    text = again.get_data(as_text=True)
    assert "Elija una de las dos formas de enviarlo." in text and "My refund is late." in text
    clock.advance(1)
    sent = client.post("/forms/contact", data=_answers(token, "es", _confirm_sensitive="remove"))
    number = record_number_in(sent.get_data(as_text=True))
    assert number
    entry, _ = _stored(rt, number)
    assert entry.body == "My refund is late. My SSN is [eliminado], please check."
    assert entry.language == "es"


# -- error pages, in the request's language ---------------------------------------------


@pytest.fixture
def failing_app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)

    def boom() -> str:
        raise RuntimeError("a bug")

    def refuse() -> str:
        abort(422)

    application.add_url_rule("/test-boom", "test_boom", boom)
    application.add_url_rule("/test-refuse", "test_refuse", refuse)
    return application


@pytest.mark.parametrize(("lang", "texts"), [
    ("en", {404: "Page not found", 500: "Something went wrong on our side",
            422: "Please check what you sent", 405: "Not possible here",
            413: "What you sent is too large.", 400: "Bad request"}),
    ("es", {404: "Página no encontrada", 500: "Algo falló de nuestro lado",
            422: "Revise lo que envió", 405: "No es posible aquí",
            413: "Lo que envió es demasiado grande.", 400: "Solicitud incorrecta"}),
])
def test_error_pages_speak_the_requests_language(failing_app: Flask, lang: str,
                                                 texts: dict[int, str]) -> None:
    client = failing_app.test_client()
    headers = {"Accept-Language": f"{lang},en;q=0.1"}
    answers = {
        404: client.get("/status/no-such-link", headers=headers),
        500: client.get("/test-boom", headers=headers),
        422: client.get("/test-refuse", headers=headers),
        405: client.delete("/forms/contact", headers=headers),
        # A form's page posts to ?lang=<its language>: even a body too large to read is
        # answered in it, whatever the browser prefers.
        413: client.post(f"/forms/feedback?lang={lang}", data={"comment": "x" * 300_000},
                         headers={"Accept-Language": "en" if lang == "es" else "es"}),
        400: client.post("/forms/contact", data=b"lang=" + lang.encode() + b"&m=\xff",
                         content_type="application/x-www-form-urlencoded", headers=headers),
    }
    for code, response in answers.items():
        html = response.get_data(as_text=True)
        assert response.status_code == code, (code, html[:300])
        assert f'<html lang="{lang}">' in html, code
        assert texts[code] in html, (code, html[:1500])
        assert "Traceback" not in html and "RuntimeError" not in html


def test_too_many_requests_is_said_in_spanish(tmp_path: Path, sqlite_url: str) -> None:
    runtime = _runtime(tmp_path, sqlite_url, INTAKE_FORM_RATE_LIMIT="1/minute")
    try:
        client = create_app(runtime=runtime).test_client()
        data = {"lang": "es", "message": "hola"}
        client.post("/forms/contact", data=data)
        response = client.post("/forms/contact", data=data)
        assert response.status_code == 429
        html = response.get_data(as_text=True)
        assert '<html lang="es">' in html and "Demasiadas solicitudes" in html
    finally:
        runtime.close()


# -- anonymous feedback: staff see it cannot be answered, and cannot answer it -----------


def test_staff_cannot_reply_to_an_anonymous_feedback(app: Flask, rt: Runtime,
                                                    clock: Clock) -> None:
    client = app.test_client()
    page = client.get("/forms/feedback").get_data(as_text=True)
    token = TOKEN.search(page)
    assert token
    clock.advance(10)
    sent = client.post("/forms/feedback", data={
        "_token": token.group(1), "rating": "4", "comment": "A pothole page that helped."})
    number = record_number_in(sent.get_data(as_text=True))
    assert number
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.record_number == number)).one()
        entry.agency_id = "dot"  # as the rules would route it
        entry_id = entry.id
    agent = make_account(rt, "agent@dot.examplia.gov", "dot")
    staff = app.test_client()
    login(staff, agent)
    html = staff.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert "Sent anonymously, without contact details: no reply is possible." in html
    assert f'action="/staff/entries/{entry_id}/reply"' not in html
    token_ = csrf(staff, f"/staff/entries/{entry_id}")
    staff.post(f"/staff/entries/{entry_id}/reply", data={"csrf_token": token_,
                                                         "body": "Thank you!"})
    with rt.db.session() as s:
        assert s.scalars(select(ThreadMessage).where(ThreadMessage.entry_id == entry_id)
                         ).all() == []
        assert s.scalars(select(WorkItem).where(WorkItem.kind == "reply")).all() == []


def test_removing_the_numbers_removes_them_from_the_answers_too(app: Flask, rt: Runtime,
                                                               clock: Clock) -> None:
    client = app.test_client()
    page = client.get("/forms/feedback").get_data(as_text=True)
    token = TOKEN.search(page)
    assert token
    clock.advance(10)
    answers = {"_token": token.group(1), "rating": "3", "about": f"refund for {SSN}",
               "comment": f"My SSN {SSN} is on the page."}
    warned = client.post("/forms/feedback", data=answers).get_data(as_text=True)
    assert 'id="sensitive-warning"' in warned
    again = TOKEN.search(warned)
    assert again
    clock.advance(1)
    sent = client.post("/forms/feedback", data={**answers, "_token": again.group(1),
                                                "_confirm_sensitive": "remove"})
    number = record_number_in(sent.get_data(as_text=True))
    assert number
    entry, original = _stored(rt, number)
    assert entry.fields["about"] == "refund for [removed]"
    assert entry.subject == "Feedback: 3/5 about refund for [removed]"
    assert entry.body == "My SSN [removed] is on the page."
    assert SSN.encode() not in original


def test_without_a_lang_field_the_browser_language_is_stored(app: Flask, rt: Runtime,
                                                            clock: Clock) -> None:
    client = app.test_client()
    page = client.get("/forms/contact", headers={"Accept-Language": "es-MX,es;q=0.9"})
    token = TOKEN.search(page.get_data(as_text=True))
    assert token
    clock.advance(10)
    answers = {k: v for k, v in _answers(token.group(1)).items() if k != "lang"}
    answers["message"] = "The trail at Lake Park is closed."
    sent = client.post("/forms/contact", json=answers,
                       headers={"Accept-Language": "es-MX,es;q=0.9", "Accept":
                                "application/json"})
    assert sent.status_code == 201
    body = sent.get_json()
    entry, _ = _stored(rt, body["record_number"])
    assert entry.language == "es"
    status = client.get(re.sub(r"^https?://[^/]+", "", body["status_url"]),
                        headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="es">' in status and "Lo que ha pasado hasta ahora" in status
