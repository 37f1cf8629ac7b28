"""What the citizen receives by e-mail: in their language, a text and an HTML part, with the
record number and the private status link; read from a real SMTP server (aiosmtpd).

Also: the language of an e-mail submission (Spanish when it clearly is), and the forward
of an anonymous feedback, which says nobody can be answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from intake import create_app
from intake.core.language import written_language
from intake.db.models import Entry
from intake.runtime import Runtime
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from tests.conftest import (
    SmtpSink,
    aged_token,
    make_runtime,
    record_number_in,
    wait_for,
    write_forms_file,
)

PUBLIC = "https://intake.examplia.gov"


@pytest.fixture
def rt(tmp_path: Path, sqlite_url: str, sink: SmtpSink) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, sqlite_url, sink.port,
                           INTAKE_FORMS=str(write_forms_file(tmp_path)),
                           INTAKE_FORM_RATE_LIMIT="1000/minute")
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)
    application.testing = True
    return application


def _post_contact(app: Flask, lang: str, email: str, name: str) -> str:
    response = app.test_client().post("/forms/contact", data={
        "_token": aged_token(app, "contact"), "lang": lang, "name": name, "email": email,
        "topic": "transportation", "subject": "<b>Bache</b> en Route 9",
        "message": "There is a pothole on Route 9 <script>alert(1)</script>."})
    assert response.status_code == 200
    number = record_number_in(response.get_data(as_text=True))
    assert number
    return number


def _received_by(sink: SmtpSink, address: str) -> list[EmailMessage]:
    return [r.message for r in sink.all() if address in r.rcpt_tos]


@pytest.mark.parametrize(("lang", "subject", "words", "state"), [
    ("en", "We received your message", "stored as public record", "State of Examplia"),
    ("es", "Hemos recibido su mensaje", "lo hemos guardado como registro público",
     "Estado de Examplia"),
])
def test_the_acknowledgement_is_in_the_persons_language_in_text_and_html(
        app: Flask, rt: Runtime, sink: SmtpSink, lang: str, subject: str, words: str,
        state: str) -> None:
    address = f"ana.{lang}@example.org"
    number = _post_contact(app, lang, address, "Ana <Ortiz>")
    rt.jobs.start()
    wait_for(lambda: _received_by(sink, address), message="acknowledgement")
    [ack] = _received_by(sink, address)
    assert ack.get_content_type() == "multipart/alternative"
    assert str(ack["Subject"]) == f"[#{number}] {subject}"
    assert ack["From"].addresses[0].display_name == state
    plain = ack.get_body(("plain",))
    rich = ack.get_body(("html",))
    assert plain is not None and rich is not None
    text, html = plain.get_content(), rich.get_content()
    for part in (text, html):
        assert number in part and words in part
    link = re.search(re.escape(PUBLIC) + r"(/status/[A-Za-z0-9_-]{20,})", text)
    assert link and f'href="{PUBLIC}{link.group(1)}"' in html
    assert f'<html lang="{lang}">' in html
    # Nothing the person typed becomes markup (nor is it needed in the receipt).
    assert "<script" not in html and "<b>" not in html
    # The private link opens the status page, in the same language.
    page = app.test_client().get(link.group(1)).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page and number in page


def test_an_anonymous_feedback_is_forwarded_as_anonymous_and_cannot_be_answered(
        app: Flask, rt: Runtime, sink: SmtpSink) -> None:
    response = app.test_client().post("/forms/feedback", data={
        "_token": aged_token(app, "feedback"), "lang": "en", "rating": "2",
        "about": "Route 9 pothole page", "comment": "The pothole page is out of date."})
    assert response.status_code == 200
    number = record_number_in(response.get_data(as_text=True))
    rt.jobs.start()
    wait_for(lambda: [r for r in sink.all() if number and number in str(r.message["Subject"])],
             message="forward")
    [forward] = [r.message for r in sink.all() if number in str(r.message["Subject"])]
    text = forward.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "From:      anonymous: no reply possible" in text
    assert "no reply is possible" in text
    assert "replies go to the sender" not in text.lower()
    assert "your reply goes to the sender" not in text.lower()


def test_the_language_of_an_e_mail_is_spanish_only_when_it_clearly_is() -> None:
    assert written_language("Bache en la calle", "Hola, quiero informar que hay un bache en "
                            "la calle principal desde hace dos semanas. Gracias.") == "es"
    assert written_language("Pothole", "Hello, there is a pothole on Main Street. Thanks, "
                            "Ana de la Cruz") == "en"
    assert written_language("Hola", "Gracias") == "en"  # too little to tell
    assert written_language("", "The report from the Secretaría de Salud says the water "
                            "is not safe and the pipes are old and we need help.") == "en"


def test_a_spanish_e_mail_is_stored_and_acknowledged_in_spanish(rt: Runtime,
                                                               sink: SmtpSink) -> None:
    msg = EmailMessage()
    msg["From"] = "Lucía Gómez <lucia@example.org>"
    msg["To"] = "info@examplia.gov"
    msg["Subject"] = "Bache en la carretera"
    msg["Message-ID"] = "<es-1@example.org>"
    msg.set_content("Buenos días: hay un pothole muy grande en la carretera 9 desde hace "
                    "una semana y es peligroso para los coches. Gracias por su ayuda.\n")
    context = MailContext.from_settings(rt.settings, "info", pii_key=rt.pii_key,
                                        agency_addresses=[])
    [outcome] = store_messages(rt.db, [ReceivedMail(msg.as_bytes())], context)
    with rt.db.session() as s:
        assert s.scalar(select(Entry.language).where(Entry.id == outcome.entry_id)) == "es"
    rt.jobs.start()
    wait_for(lambda: _received_by(sink, "lucia@example.org"), message="acknowledgement")
    [ack] = _received_by(sink, "lucia@example.org")
    assert "Hemos recibido su mensaje" in str(ack["Subject"])
    assert "Gracias por escribir" in ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
