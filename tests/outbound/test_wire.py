"""Every message intake sends is valid on the wire: CRLF, no line over 998 octets.

Against a strict SMTP server: aiosmtpd enforces the line-length limit ("500 Line too
long", RFC 5321 4.5.3.1.6) and this sink also refuses bare CR or LF, as Postfix does
with ``smtpd_forbid_bare_newline``. The messages are the hard cases: forwards that
re-attach a message/rfc822 (a citizen's forwarded mail, a bounce), long lines, 8-bit
bodies; once through the sender directly, once end to end through the forward of an
entry that has such attachments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.mail.headers import new_message
from intake.core.mail.wire import MAX_LINE_OCTETS, attach, wire_bytes, wire_problems
from intake.db.models import Attachment, WorkItem
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from intake.services.records import seal_for_entry
from tests.conftest import DOT, ORIGINALS_KEY, SmtpSink, make_entry, make_runtime, wait_for

AGENCY = "intake@dot.examplia.gov"


class StrictSink(SmtpSink):
    """An SMTP sink that, beyond aiosmtpd's line limit, refuses a bare CR or LF in DATA."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or b"")
        if re.search(rb"\r(?!\n)|(?<!\r)\n", raw):
            return "550 5.5.2 bare CR or LF in message data"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def strict() -> Iterator[StrictSink]:
    sink = StrictSink()
    sink.start()
    yield sink
    sink.stop()


# An attached e-mail as they come: bare LF line ends, a line far over 998 octets,
# 8-bit UTF-8 text, a header that needs folding.
LONG_LINE_MAIL = (b"From: Ana <ana@example.org>\nTo: intake@examplia.gov\n"
                  b"Subject: " + "Señal rota en la calle ".encode() * 8 + b"\n"
                  b"Content-Type: text/plain; charset=utf-8\n"
                  b"Content-Transfer-Encoding: 8bit\n\n"
                  + "Ñandú ".encode() * 600 + b"\nSecond line\n")
# A tidy attached e-mail: fits SMTP as it is, so it travels as message/rfc822.
TIDY_MAIL = (b"From: Ana <ana@example.org>\r\nTo: intake@examplia.gov\r\n"
             b"Subject: Bache\r\nMessage-ID: <tidy-1@example.org>\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n"
             + "El bache sigue ahí, ¿cuándo lo arreglan?\r\n".encode())
BOUNCE = (b"From: MAILER-DAEMON@mx.example.org\nTo: intake@examplia.gov\n"
          b"Subject: Undelivered Mail Returned to Sender\n"
          b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\n\n"
          b"--b1\nContent-Type: text/plain\n\nThe mail could not be delivered.\n"
          b"--b1\nContent-Type: message/delivery-status\n\n"
          b"Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; x@example.org\n"
          b"Action: failed\nStatus: 5.1.1\n\n"
          b"--b1\nContent-Type: message/rfc822\n\n"
          b"From: intake@examplia.gov\nTo: x@example.org\nSubject: hi\n\n"
          + b"y" * 1500 + b"\n--b1--\n")


def _forward(*attachments: tuple[bytes, str, str], body: str = "See attached.\n"
             ) -> EmailMessage:
    msg = new_message()
    msg["From"], msg["To"], msg["Subject"] = "intake@examplia.gov", AGENCY, "Fwd [#EX-1]"
    msg["Message-ID"] = "<forward.1.ex-1@relay.examplia.gov>"
    msg.set_content(body)
    for content, content_type, name in attachments:
        attach(msg, content, content_type, name)
    return msg


def _send(sink: SmtpSink, msg: EmailMessage) -> None:
    SmtpMailSender(SmtpConfig.from_url(f"smtp://127.0.0.1:{sink.port}", timeout=5)).send(
        msg, envelope_from="intake@examplia.gov", recipients=[AGENCY])


@pytest.mark.parametrize(("name", "content", "content_type"), [
    ("long-lines.eml", LONG_LINE_MAIL, "message/rfc822"),
    ("tidy.eml", TIDY_MAIL, "message/rfc822"),
    ("bounce.eml", BOUNCE, "message/rfc822"),
    ("report.txt", BOUNCE, "multipart/report"),
    ("status.txt", b"Reporting-MTA: dns; mx\nAction: failed\n", "message/delivery-status"),
    ("page.html", b"<p>" + b"x" * 5000 + b"</p>\n", "text/html"),
    ("scan.pdf", bytes(range(256)) * 40, "application/pdf"),
])
def test_a_strict_server_accepts_forwards_with_any_attachment(
        strict: StrictSink, name: str, content: bytes, content_type: str) -> None:
    _send(strict, _forward((content, content_type, name)))
    (received,) = strict.all()
    assert wire_problems(received.raw) == []
    [part] = list(received.message.iter_attachments())
    assert part.get_filename() == name
    if part.get_content_type() == "message/rfc822":
        # Travels as the e-mail it is, its headers there (only line ends made CRLF).
        assert part.get_content()["Subject"] is not None
    else:
        # Kept whole, byte for byte.
        assert part.get_content_type() in (content_type, "application/octet-stream")
        assert part.get_payload(decode=True) == content


def test_an_attached_email_that_fits_travels_as_message_rfc822(strict: StrictSink) -> None:
    _send(strict, _forward((TIDY_MAIL, "message/rfc822", "tidy.eml")))
    [part] = list(strict.all()[0].message.iter_attachments())
    assert part.get_content_type() == "message/rfc822"
    assert part["Content-Transfer-Encoding"] == "8bit"
    inner = part.get_content()
    assert inner["Message-ID"] == "<tidy-1@example.org>"
    assert inner.get_content().rstrip() == "El bache sigue ahí, ¿cuándo lo arreglan?"


def test_one_that_does_not_fit_is_attached_whole_in_base64(strict: StrictSink) -> None:
    _send(strict, _forward((LONG_LINE_MAIL, "message/rfc822", "long.eml")))
    [part] = list(strict.all()[0].message.iter_attachments())
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_payload(decode=True) == LONG_LINE_MAIL  # nothing changed or lost


def test_long_lines_and_8bit_in_the_body(strict: StrictSink) -> None:
    body = "Línea larga: " + "ñ" * 3000 + "\nand\rbare\u2028separators\n"
    _send(strict, _forward(body=body))
    (received,) = strict.all()
    assert received.message.get_content().replace("\r\n", "\n").startswith("Línea larga: ñ")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=3000), body=st.text(max_size=2000),
       content_type=st.sampled_from(["message/rfc822", "text/plain", "message/global",
                                     "multipart/mixed", "application/octet-stream", ""]))
def test_any_attachment_and_body_flatten_valid_for_smtp(content: bytes, body: str,
                                                        content_type: str) -> None:
    msg = _forward((content, content_type, "a.bin"), body=body)
    raw = wire_bytes(msg)  # raises if not valid
    assert all(len(line) <= MAX_LINE_OCTETS for line in raw.split(b"\r\n"))


def test_a_forward_reattaching_mail_reaches_a_strict_server_end_to_end(
        tmp_path: Path, db_url: str, strict: StrictSink) -> None:
    """Before: the re-attached message went base64 with bare LFs, the server answered
    "500 Line too long" and the forward became a dead letter."""
    rt = make_runtime(tmp_path, db_url, strict.port)
    try:
        entry_id = make_entry(rt, "dot", body="A pothole, see the forwarded mails.")
        with rt.db.session() as s:
            for name, content in (("long.eml", LONG_LINE_MAIL), ("tidy.eml", TIDY_MAIL),
                                  ("bounce.eml", BOUNCE)):
                digest = hashlib.sha256(content).hexdigest()
                s.add(Attachment(entry_id=entry_id, filename=name,
                                 declared_type="message/rfc822", sniffed_type="message/rfc822",
                                 size=len(content), sha256=digest,
                                 content=seal_for_entry(s, entry_id, ORIGINALS_KEY, content,
                                                        digest)))
        rt.jobs.start()

        def delivered() -> bool:
            with rt.db.session() as s:
                states = {i.state for i in s.query(WorkItem).filter_by(kind="deliver")}
            assert "dead" not in states, "the forward became a dead letter"
            return states == {"done"}

        wait_for(delivered, message="the forward delivered")
    finally:
        rt.close()
    received = strict.to(DOT)[0]
    names = [p.get_filename() for p in received.message.iter_attachments()]
    assert names == ["long.eml", "tidy.eml", "bounce.eml"]
