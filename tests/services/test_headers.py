"""Header injection through encoded words, end to end: form or e-mail in, mail out.

Names and subjects below hide CR/LF, U+2028 and U+0085 in RFC 2047 encoded words (once
and twice encoded) and as literal characters; every message sent must have exactly the
headers intake wrote (read from the bytes a server would receive), go only to the
intended recipient, and every work item must end done, never dead. The in-memory sender
keeps those bytes; one test sends through a real SMTP server (aiosmtpd) on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import base64mime, quoprimime
from pathlib import Path
from typing import Protocol

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.db.models import Entry, WorkItem
from intake.outbound.memory import MemoryMailSender, SentMail
from intake.runtime import Runtime
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from tests.conftest import (
    CITIZEN,
    DOT,
    Received,
    SmtpSink,
    contact_fields,
    make_runtime,
    memory_senders,
    wait_for,
    write_forms_file,
)

AUTOMATIC = sorted(["From", "To", "Reply-To", "Subject", "Message-ID", "Date", "Auto-Submitted",
                    "X-Auto-Response-Suppress", "X-Intake-Record", "MIME-Version",
                    "Content-Type", "Content-Transfer-Encoding"])


def q(text: str) -> str:
    return str(quoprimime.header_encode(text.encode(), "utf-8"))


def b(text: str) -> str:
    return str(base64mime.header_encode(text.encode(), "utf-8"))


HOSTILE_SUBJECT = (q("Pothole\r\nX-Injected: pwned") + " " + b("\r\nBcc: bcc@evil.example")
                   + " " + q(b("\u2028X-Injected: twice")) + " and\u2028X-Injected: literal")
HOSTILE_NAME = (q("Eve\r\nBcc: name@evil.example") + " " + b(q("\x85X-Injected: 1"))
                + " Ortiz\x85X-Injected: 2")


class Mail(Protocol):
    """What was sent: an in-memory sender's or a real server's record."""

    def to(self, address: str) -> list[SentMail] | list[Received]: ...

    def all(self) -> list[SentMail] | list[Received]: ...


def _runtime(tmp_path: Path, db_url: str, smtp_port: int | None = None,
             outbox: MemoryMailSender | None = None) -> Runtime:
    runtime = make_runtime(tmp_path, db_url, smtp_port,
                           senders=memory_senders(outbox) if outbox else None,
                           INTAKE_FORMS=str(write_forms_file(tmp_path)),
                           INTAKE_FORM_RATE_LIMIT="1000/minute")
    runtime.jobs.start()
    return runtime


@pytest.fixture
def outbox() -> MemoryMailSender:
    return MemoryMailSender()


@pytest.fixture
def rt(tmp_path: Path, db_url: str, outbox: MemoryMailSender) -> Iterator[Runtime]:
    runtime = _runtime(tmp_path, db_url, outbox=outbox)
    yield runtime
    runtime.close()


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(runtime=rt).test_client()


def assert_clean(received: SentMail | Received, recipient: str) -> None:
    """Exactly intake's headers, each on one line, and only the intended envelope recipient."""
    msg = received.message
    # What the citizen receives is multipart/alternative (text and HTML): its parts carry
    # their own Content-Transfer-Encoding, the message none.
    expected = [h for h in AUTOMATIC
                if not (msg.is_multipart() and h == "Content-Transfer-Encoding")]
    assert sorted(msg.keys()) == expected
    for part in msg.walk():
        if part is not msg:
            assert set(part.keys()) <= {"Content-Type", "Content-Transfer-Encoding",
                                        "MIME-Version"}, part.keys()
    assert received.rcpt_tos == (recipient,)
    assert [a.addr_spec for a in msg["To"].addresses] == [recipient]
    assert len(msg["From"].addresses) == len(msg["Reply-To"].addresses) == 1
    for name in ("Subject", "From", "To", "Reply-To"):
        value = str(msg[name])
        assert "\r" not in value and "\n" not in value and "\u2028" not in value
        assert "\x85" not in value and "=?" not in value
    head = received.raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\nx-injected:" not in head and b"\nbcc:" not in head


def assert_all_work_done(rt: Runtime) -> None:
    def states() -> set[str]:
        with rt.db.session() as s:
            return set(s.scalars(select(WorkItem.state)))

    wait_for(lambda: states() == {"done"}, message="every work item done")


def record_number(rt: Runtime) -> str:
    with rt.db.session() as s:
        return s.scalars(select(Entry.record_number)).one()


@pytest.mark.parametrize("consent", [None, "share-identity-2026-01-en"])
def test_hostile_form_subject_and_name_are_delivered_as_one_clean_line(
        rt: Runtime, client: FlaskClient, outbox: MemoryMailSender, consent: str | None) -> None:
    _send_hostile_form(rt, client, outbox, consent)


def test_hostile_form_subject_reaches_a_real_smtp_server_as_one_clean_line(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """The same, through the real sender: the bytes an actual SMTP server received."""
    runtime = _runtime(tmp_path, db_url, smtp_port=sink.port)
    try:
        _send_hostile_form(runtime, create_app(runtime=runtime).test_client(), sink, None)
    finally:
        runtime.close()


def _send_hostile_form(rt: Runtime, client: FlaskClient, sink: Mail,
                       consent: str | None) -> None:
    app = client.application
    fields = contact_fields(app, name=HOSTILE_NAME, subject=HOSTILE_SUBJECT, email=CITIZEN,
                            message="A pothole on Route 9 is huge.", consent=consent)
    response = client.post("/forms/contact", data=fields, headers={"Accept": "application/json"})
    assert response.status_code == 201, response.get_data(as_text=True)

    wait_for(lambda: sink.to(DOT) and sink.to(CITIZEN), message="forward and receipt")
    assert_all_work_done(rt)
    assert len(sink.all()) == 2
    (forward,) = sink.to(DOT)
    assert_clean(forward, DOT)
    subject = str(forward.message["Subject"])
    assert subject.startswith(f"[#{record_number(rt)}] Pothole X-Injected: pwned")
    assert subject.endswith("and X-Injected: literal")
    sender = forward.message["From"].addresses[0]
    if consent:
        assert sender.display_name == ("Eve Bcc: name@evil.example X-Injected: 1 Ortiz "
                                       "X-Injected: 2 via intake")
        assert forward.message["Reply-To"].addresses[0].addr_spec == CITIZEN
    else:
        assert "Eve" not in str(forward.message["From"])
        assert CITIZEN not in forward.raw.decode("utf-8", "replace")
    (receipt,) = sink.to(CITIZEN)
    assert_clean(receipt, CITIZEN)


def test_hostile_mail_subject_and_sender_name_are_forwarded_as_one_clean_line(
        rt: Runtime, outbox: MemoryMailSender) -> None:
    raw = (f"From: {HOSTILE_NAME.replace(chr(0x85), ' ')} <{CITIZEN}>\r\n"
           "To: contact@examplia.gov\r\n"
           f"Subject: {HOSTILE_SUBJECT.replace(chr(0x2028), ' ')}\r\n"
           "Message-ID: <hostile-1@example.org>\r\n\r\n"
           "A pothole on Route 9 is huge.\r\n").encode()
    assert store_messages(rt.db, [ReceivedMail(raw)], _mail_context(rt))[0].outcome == "stored"

    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="forward and receipt")
    assert_all_work_done(rt)
    (forward,) = outbox.to(DOT)
    assert_clean(forward, DOT)
    assert "Pothole X-Injected: pwned" in str(forward.message["Subject"])
    (receipt,) = outbox.to(CITIZEN)
    assert_clean(receipt, CITIZEN)


def test_hostile_subjects_in_relayed_replies_stay_one_clean_line(
        rt: Runtime, client: FlaskClient, outbox: MemoryMailSender) -> None:
    fields = contact_fields(client.application, email=CITIZEN, subject="Road problem",
                            message="A pothole on Route 9 is huge.")
    assert client.post("/forms/contact", data=fields,
                       headers={"Accept": "application/json"}).status_code == 201
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="forward and receipt")
    relay = str(outbox.to(DOT)[0].message["Reply-To"])
    context = _mail_context(rt)

    crew, fixed = q("Road Crew\r\nBcc: crew@evil.example"), q(q("Re: fixed\r\nX-Injected: agency"))
    agency_reply = (f"From: {crew} <{DOT}>\r\nTo: {relay}\r\nSubject: {fixed}\r\n"
                    "Message-ID: <crew-1@dot.examplia.gov>\r\n\r\nPatched on Monday.\r\n")
    [joined] = store_messages(rt.db, [ReceivedMail(agency_reply.encode())], context)
    assert joined.outcome == "thread-reply"
    wait_for(lambda: len(outbox.to(CITIZEN)) == 2, message="agency reply relayed")
    to_citizen = outbox.to(CITIZEN)[-1]
    assert_clean(to_citizen, CITIZEN)
    assert "X-Injected: agency" in str(to_citizen.message["Subject"])

    maria, thanks = b("Maria\u2028Bcc: me@evil.example"), b("Re: thanks\r\nX-Injected: citizen")
    citizen_reply = (f"From: {maria} <{CITIZEN}>\r\nTo: {relay}\r\nSubject: {thanks}\r\n"
                     "Message-ID: <maria-2@example.org>\r\n\r\nThanks!\r\n")
    [joined] = store_messages(rt.db, [ReceivedMail(citizen_reply.encode())], context)
    assert joined.outcome == "thread-reply"
    wait_for(lambda: len(outbox.to(DOT)) == 2, message="citizen reply relayed")
    to_agency = outbox.to(DOT)[-1]
    assert_clean(to_agency, DOT)
    assert "X-Injected: citizen" in str(to_agency.message["Subject"])
    assert "Maria" not in str(to_agency.message["From"])
    assert_all_work_done(rt)


def _mail_context(rt: Runtime) -> MailContext:
    agencies = [a.email for a in rt.rules.current().agencies.values() if a.email]
    return MailContext.from_settings(rt.settings, "INBOX", pii_key=rt.pii_key,
                                     agency_addresses=agencies)
