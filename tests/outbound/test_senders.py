"""The senders themselves: the real ones against real servers on loopback (an aiosmtpd
sink, an http.server receiver), and the in-memory ones against the same expectations."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from intake.core.failures import PermanentError, TransientError
from intake.outbound import webhook
from intake.outbound.memory import MemoryMailSender, MemoryWebhookSender
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from intake.outbound.webhook import HttpWebhookSender
from tests.conftest import SmtpSink, free_port

AGENCY = "intake@dot.examplia.gov"
SECRET = b"w" * 40


def _message(bcc: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "intake@examplia.gov", AGENCY, "Forward [#EX-1]"
    msg["Message-ID"] = "<forward.1.ex-1@relay.examplia.gov>"
    if bcc:
        msg["Bcc"] = bcc
    msg.set_content("A pothole on Route 9.\n")
    return msg


def _smtp(port: int) -> SmtpMailSender:
    return SmtpMailSender(SmtpConfig.from_url(f"smtp://127.0.0.1:{port}", timeout=5))


class TestSmtpMailSender:
    def test_the_server_receives_the_envelope_and_the_message(self, sink: SmtpSink) -> None:
        _smtp(sink.port).send(_message(), envelope_from="intake@examplia.gov",
                              recipients=[AGENCY])
        (received,) = sink.all()
        assert (received.mail_from, received.rcpt_tos) == ("intake@examplia.gov", (AGENCY,))
        assert received.message_id == "<forward.1.ex-1@relay.examplia.gov>"
        assert received.message.get_content().rstrip() == "A pothole on Route 9."

    def test_a_refused_recipient_is_a_permanent_failure(self, sink: SmtpSink) -> None:
        sink.reject[AGENCY] = "550 5.1.1 mailbox unavailable"
        with pytest.raises(PermanentError, match="SMTP 550"):
            _smtp(sink.port).send(_message(), envelope_from="intake@examplia.gov",
                                  recipients=[AGENCY])
        assert sink.all() == []

    def test_a_busy_recipient_is_a_transient_failure(self, sink: SmtpSink) -> None:
        sink.reject[AGENCY] = "451 4.3.0 try again later"
        with pytest.raises(TransientError, match="SMTP 451"):
            _smtp(sink.port).send(_message(), envelope_from="intake@examplia.gov",
                                  recipients=[AGENCY])

    def test_a_server_that_is_down_is_a_transient_failure(self) -> None:
        with pytest.raises(TransientError, match="SMTP unavailable"):
            _smtp(free_port()).send(_message(), envelope_from="intake@examplia.gov",
                                    recipients=[AGENCY])

    def test_the_memory_sender_keeps_the_bytes_the_server_receives(self,
                                                                   sink: SmtpSink) -> None:
        outbox = MemoryMailSender()
        for sender in (_smtp(sink.port), outbox):
            sender.send(_message(bcc="hidden@examplia.gov"),
                        envelope_from="intake@examplia.gov", recipients=[AGENCY])
        (received,), (kept,) = sink.all(), outbox.all()
        assert kept.raw == received.raw
        assert b"hidden@examplia.gov" not in kept.raw  # Bcc never goes on the wire


class TestMemoryMailSender:
    def test_it_fails_like_a_server_when_told_to(self) -> None:
        outbox = MemoryMailSender()
        outbox.reject[AGENCY] = "550 5.1.1 mailbox unavailable"
        with pytest.raises(PermanentError, match="SMTP 550"):
            outbox.send(_message(), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        del outbox.reject[AGENCY]
        outbox.fail_next(2)
        outbox.fail_next(permanent=True, reason="SMTP 554: no")
        for error in (TransientError, TransientError, PermanentError):
            with pytest.raises(error):
                outbox.send(_message(), envelope_from="intake@examplia.gov",
                            recipients=[AGENCY])
        outbox.go_down()
        with pytest.raises(TransientError, match="SMTP unavailable"):
            outbox.send(_message(), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        assert outbox.all() == []
        outbox.come_back()
        outbox.send(_message(), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        assert [m.rcpt_tos for m in outbox.to(AGENCY)] == [(AGENCY,)]


class _Receiver(BaseHTTPRequestHandler):
    """Answers each POST with ``status`` (and ``location``, for redirects); keeps the calls."""

    status: ClassVar[int] = 202
    location: ClassVar[str] = ""
    calls: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.calls.append((self.path, dict(self.headers.items()), body))
        self.send_response(self.status)
        if self.location:
            self.send_header("Location", self.location)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet (http.server logs every request to stderr)."""


@pytest.fixture
def receiver() -> Iterator[str]:
    """A real HTTP server on a free loopback port; its /hook URL."""
    _Receiver.status, _Receiver.location, _Receiver.calls = 202, "", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


class TestHttpWebhookSender:
    def test_the_receiver_gets_signed_json_and_the_idempotency_key(self, receiver: str) -> None:
        payload = {"record_number": "EX-1", "subject": "Schlagloch in der Straße"}
        assert HttpWebhookSender(SECRET, timeout=5).post(receiver, payload,
                                                         idempotency_key="k1") == 202
        ((path, headers, body),) = _Receiver.calls
        assert path == "/hook" and json.loads(body) == payload
        assert headers["Idempotency-Key"] == "k1"
        assert webhook.verify(SECRET, body, headers[webhook.SIGNATURE_HEADER])
        assert not webhook.verify(b"x" * 40, body, headers[webhook.SIGNATURE_HEADER])
        # The in-memory sender keeps exactly the body the receiver got.
        hooks = MemoryWebhookSender()
        hooks.post(receiver, payload, idempotency_key="k1")
        assert hooks.all()[0].body == body and hooks.all()[0].payload == payload

    @pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (410, PermanentError),
                                                   (429, TransientError), (503, TransientError)])
    def test_answers_are_classified(self, receiver: str, status: int,
                                    error: type[Exception]) -> None:
        _Receiver.status = status
        with pytest.raises(error, match=f"webhook answered {status}"):
            HttpWebhookSender(SECRET, timeout=5).post(receiver, {}, idempotency_key="k")

    def test_a_redirect_is_never_followed(self, receiver: str) -> None:
        _Receiver.status, _Receiver.location = 307, receiver.replace("/hook", "/elsewhere")
        with pytest.raises(PermanentError, match="webhook answered 307"):
            HttpWebhookSender(SECRET, timeout=5).post(receiver, {"n": 1}, idempotency_key="k")
        assert [path for path, _, _ in _Receiver.calls] == ["/hook"]

    def test_an_unreachable_receiver_is_a_transient_failure(self) -> None:
        with pytest.raises(TransientError, match="webhook unreachable"):
            HttpWebhookSender(SECRET, timeout=5).post(f"http://127.0.0.1:{free_port()}/hook",
                                                      {}, idempotency_key="k")

    def test_only_http_urls_are_posted_to(self) -> None:
        with pytest.raises(PermanentError):
            HttpWebhookSender(SECRET).post("file:///etc/passwd", {}, idempotency_key="k")


class TestFailureClasses:
    """What each failure says: transient or permanent, the destination's fault or this
    message's, and the reason in plain words for a dead letter."""

    @pytest.mark.parametrize(("status", "error", "unreachable"), [
        (301, PermanentError, False), (400, PermanentError, False),
        (404, PermanentError, False), (408, TransientError, True),
        (429, TransientError, True), (500, TransientError, True),
        (502, TransientError, True), (503, TransientError, True)])
    def test_webhook_answers(self, receiver: str, status: int, error: type[Exception],
                             unreachable: bool) -> None:
        _Receiver.status = status
        with pytest.raises(error) as raised:
            HttpWebhookSender(SECRET, timeout=5).post(receiver, {}, idempotency_key="k")
        failure = raised.value
        assert isinstance(failure, PermanentError | TransientError)
        assert failure.unreachable is unreachable
        origin = receiver.rsplit("/", 1)[0]
        assert failure.reason == (
            f"the webhook at {origin} refused the delivery: it answered {status}"
            if error is PermanentError else
            f"the webhook at {origin} answered {status} (unavailable)")

    def test_an_unreachable_webhook_says_so(self) -> None:
        port = free_port()
        with pytest.raises(TransientError) as raised:
            HttpWebhookSender(SECRET, timeout=5).post(f"http://127.0.0.1:{port}/hook", {},
                                                      idempotency_key="k")
        assert raised.value.unreachable
        assert raised.value.reason == (f"could not reach the webhook at "
                                       f"http://127.0.0.1:{port} (connection refused)")

    @pytest.mark.parametrize(("reply", "error", "unreachable", "reason"), [
        ("550 5.1.1 mailbox unavailable", PermanentError, False,
         "refused the message: 550 5.1.1 mailbox unavailable"),
        ("451 4.7.1 greylisted, try later", TransientError, False,
         "deferred the message: 451 4.7.1 greylisted, try later"),
        ("421 4.3.2 service not available", TransientError, True,
         "deferred the message: 421 4.3.2 service not available"),
    ])
    def test_smtp_replies(self, sink: SmtpSink, reply: str, error: type[Exception],
                          unreachable: bool, reason: str) -> None:
        sink.reject[AGENCY] = reply
        with pytest.raises(error) as raised:
            _smtp(sink.port).send(_message(), envelope_from="intake@examplia.gov",
                                  recipients=[AGENCY])
        failure = raised.value
        assert isinstance(failure, PermanentError | TransientError)
        assert failure.unreachable is unreachable
        assert failure.reason == f"the mail server 127.0.0.1:{sink.port} {reason}"

    def test_a_server_that_is_down_says_so(self) -> None:
        port = free_port()
        with pytest.raises(TransientError) as raised:
            _smtp(port).send(_message(), envelope_from="intake@examplia.gov",
                             recipients=[AGENCY])
        assert raised.value.unreachable
        assert raised.value.reason == (f"could not reach the mail server 127.0.0.1:{port} "
                                       "(connection refused)")


class _OptionSink(SmtpSink):
    """Keeps the MAIL FROM parameters of each message it accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.mail_options: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail_options.append(list(envelope.mail_options))
        return await super().handle_DATA(server, session, envelope)


def test_8bit_mail_is_declared_8bitmime() -> None:
    sink = _OptionSink().start()
    try:
        plain, eight_bit = _message(), _message()
        eight_bit.set_content("Señal caída en la Ruta 9\n", cte="8bit")
        for msg in (plain, eight_bit):
            _smtp(sink.port).send(msg, envelope_from="intake@examplia.gov",
                                  recipients=[AGENCY])
    finally:
        sink.stop()
    assert ["BODY=8BITMIME" in options for options in sink.mail_options] == [False, True]
    assert sink.all()[1].message.get_content().rstrip() == "Señal caída en la Ruta 9"


@pytest.fixture
def refusing_server() -> Iterator[int]:
    """A server that greets with "554 no service" and hangs up (a policy block, a
    misconfigured relay): its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"554 5.3.2 no SMTP service here\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    done.set()
    thread.join(5)
    listener.close()


def test_a_refused_session_pauses_the_server_instead_of_killing_the_message(
        refusing_server: int) -> None:
    """A 5xx before MAIL FROM (greeting, STARTTLS, AUTH) is about the server or its
    configuration, not this message: transient, the destination's circuit counts it."""
    with pytest.raises(TransientError) as raised:
        _smtp(refusing_server).send(_message(), envelope_from="intake@examplia.gov",
                                    recipients=[AGENCY])
    assert raised.value.unreachable
    assert raised.value.reason == (f"the mail server 127.0.0.1:{refusing_server} refused the "
                                   "session: 554 5.3.2 no SMTP service here (check "
                                   "INTAKE_SMTP_URL)")


class _SessionSink(SmtpSink):
    """Counts the SMTP sessions it was greeted in (EHLO) and keeps the commands of each; can
    hang up on all of them, answer the next MAIL FROM or DATA with a reply of its choosing
    (a "421" hangs up after it, as RFC 5321 says), or drop the line in the next DATA."""

    def __init__(self) -> None:
        super().__init__()
        self.transports: list[Any] = []
        #: (session number, command), in the order received.
        self.commands: list[tuple[int, str]] = []
        #: Replies for the next MAIL FROMs and DATAs, in turn; then the usual answers.
        self.replies: dict[str, list[str]] = {"MAIL": [], "DATA": []}
        #: Drop the line in the next DATA, once its content arrived: "unaccepted" before
        #: the message counts, "accepted" after (an MTA that queued it, its 250 lost).
        self.drop_in_data: str | None = None

    def _log(self, server: Any, command: str) -> None:
        self.commands.append((self.transports.index(server.transport), command))

    def session(self, n: int) -> list[str]:
        """The commands of the ``n``th session, in order."""
        return [command for number, command in self.commands if number == n]

    def _reply(self, server: Any, command: str) -> str | None:
        if not self.replies[command]:
            return None
        reply = self.replies[command].pop(0)
        if reply.startswith("421"):
            # After the reply is written: push() writes before it next yields to the loop.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.transports.append(server.transport)
        self._log(server, "EHLO")
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        return responses

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        self._log(server, "NOOP")
        return "250 OK"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        self._log(server, "MAIL")
        reply = self._reply(server, "MAIL")
        if reply is not None:
            return reply
        # What aiosmtpd does itself without this hook.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self._log(server, "RCPT")
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._log(server, "DATA")
        drop, self.drop_in_data = self.drop_in_data, None
        if drop is not None:
            if drop == "accepted":
                await super().handle_DATA(server, session, envelope)
            server.transport.close()  # the reply below is never written
            return "451 never sent"
        reply = self._reply(server, "DATA")
        if reply is not None:
            return reply
        return await super().handle_DATA(server, session, envelope)

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self._log(server, "RSET")
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self._log(server, "QUIT")
        return "221 Bye"

    def hang_up(self) -> None:
        """Close every session from the server's side (as an idle timeout or a restart
        would), and return once the event loop has done it."""
        async def close_all() -> None:
            for transport in self.transports:
                transport.close()

        assert self._controller is not None
        asyncio.run_coroutine_threadsafe(close_all(), self._controller.loop).result(5)


@pytest.fixture
def session_sink() -> Iterator[_SessionSink]:
    s = _SessionSink().start()
    yield s
    s.stop()


def _numbered(n: int) -> EmailMessage:
    msg = _message()
    msg.replace_header("Message-ID", f"<forward.{n}.ex-{n}@relay.examplia.gov>")
    return msg


class TestSmtpSessionReuse:
    def test_one_session_carries_the_messages_one_after_another(
            self, session_sink: _SessionSink) -> None:
        sender = _smtp(session_sink.port)
        for n in range(3):
            sender.send(_numbered(n), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        sender.close()
        assert [r.message_id for r in session_sink.all()] == [
            f"<forward.{n}.ex-{n}@relay.examplia.gov>" for n in range(3)]
        assert len(session_sink.transports) == 1
        assert sender.sessions_opened == 1

    def test_a_session_the_server_closed_is_replaced_and_nothing_is_lost_or_doubled(
            self, session_sink: _SessionSink) -> None:
        """Fails on a NOOP before each reuse (the code this replaced), and on going
        straight to MAIL FROM without the retry (the fourth send: "SMTP unavailable")."""
        sender = _smtp(session_sink.port)
        for n in range(6):
            if n == 3:
                session_sink.hang_up()
            sender.send(_numbered(n), envelope_from="intake@examplia.gov",
                        recipients=[AGENCY])
        sender.close()
        assert [r.message_id for r in session_sink.all()] == [
            f"<forward.{n}.ex-{n}@relay.examplia.gov>" for n in range(6)]
        assert len(session_sink.transports) == sender.sessions_opened == 2
        # The fourth MAIL FROM went to a closed line: the server never read it.
        assert session_sink.session(0) == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3
        assert session_sink.session(1) == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3 + ["QUIT"]

    def test_a_421_at_mail_from_on_a_kept_session_sends_on_a_new_one_once(
            self, session_sink: _SessionSink) -> None:
        """The server closing a kept session with "421" at MAIL FROM (Postfix's idle
        timeout): the message goes on a new session; a 421 there too is reported, not
        tried a third time. Fails on the NOOP before each reuse (it got its 250, MAIL
        the 421), on a retry only for a dead line, and on a retry without a bound."""
        sender = _smtp(session_sink.port)
        sender.send(_numbered(1), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        session_sink.replies["MAIL"].append("421 4.4.2 timeout exceeded")
        sender.send(_numbered(2), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        assert [r.message_id for r in session_sink.all()] == [
            "<forward.1.ex-1@relay.examplia.gov>", "<forward.2.ex-2@relay.examplia.gov>"]
        assert session_sink.session(0) == ["EHLO", "MAIL", "RCPT", "DATA", "MAIL"]
        assert session_sink.session(1) == ["EHLO", "MAIL", "RCPT", "DATA"]

        session_sink.replies["MAIL"] += ["421 4.4.2 timeout exceeded",
                                         "421 4.3.2 shutting down"]
        with pytest.raises(TransientError) as raised:
            sender.send(_numbered(3), envelope_from="intake@examplia.gov",
                        recipients=[AGENCY])
        sender.close()
        assert raised.value.unreachable
        assert raised.value.reason == (f"the mail server 127.0.0.1:{session_sink.port} "
                                       "deferred the message: 421 4.3.2 shutting down")
        assert session_sink.session(1)[-1] == "MAIL"
        assert session_sink.session(2) == ["EHLO", "MAIL"]
        assert len(session_sink.transports) == sender.sessions_opened == 3
        assert len(session_sink.all()) == 2

    @pytest.mark.parametrize("accepted", [False, True])
    def test_a_line_dropped_in_data_is_reported_and_never_sent_again_here(
            self, session_sink: _SessionSink, accepted: bool) -> None:
        """The server drops the line once DATA's content arrived, before its reply: the
        send fails (transient) and is not repeated on a new session, since the server may
        have accepted the message. Whether it did, the client cannot know: a server that
        had queued it ("accepted") has it once from this call and again from the caller's
        retry (the job system's; the Message-ID dedupe is for that), one that had not
        has it once, from the retry. Fails on a retry after a dead line at any step of a
        kept session: the send succeeds, and an accepting server has it twice already."""
        sender = _smtp(session_sink.port)
        sender.send(_numbered(1), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        session_sink.drop_in_data = "accepted" if accepted else "unaccepted"
        with pytest.raises(TransientError) as raised:
            sender.send(_numbered(2), envelope_from="intake@examplia.gov",
                        recipients=[AGENCY])
        assert raised.value.reason == (f"could not reach the mail server "
                                       f"127.0.0.1:{session_sink.port} "
                                       "(connection closed by the server)")
        second = "<forward.2.ex-2@relay.examplia.gov>"
        assert [r.message_id for r in session_sink.all()].count(second) == int(accepted)
        assert len(session_sink.transports) == 1
        assert session_sink.session(0) == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 2

        sender.send(_numbered(2), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        sender.close()
        assert [r.message_id for r in session_sink.all()].count(second) == 1 + accepted
        assert len(session_sink.transports) == 2

    @pytest.mark.parametrize(("refusal", "error"), [
        ("550 5.1.1 mailbox unavailable", PermanentError),
        ("451 4.3.0 try again later", TransientError)])
    def test_one_refused_recipient_of_two_on_a_kept_session_is_reported_as_before(
            self, session_sink: _SessionSink, refusal: str, error: type[Exception]) -> None:
        """The other recipient has the message, the refusal is classified as before, and
        the session (its DATA got a 250) is kept. Fails on a transaction that stops at
        the first refused RCPT, or that drops sendmail's dict of refused recipients."""
        other = "roads@dot.examplia.gov"
        sender = _smtp(session_sink.port)
        sender.send(_numbered(1), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        session_sink.reject[other] = refusal
        with pytest.raises(error) as raised:
            sender.send(_numbered(2), envelope_from="intake@examplia.gov",
                        recipients=[other, AGENCY])
        sender.send(_numbered(3), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        sender.close()
        code, text = refusal.split(" ", 1)
        verb = "refused" if error is PermanentError else "deferred"
        failure = raised.value
        assert isinstance(failure, PermanentError | TransientError)
        assert str(failure) == f"SMTP {code}: 1 recipient(s) refused: {text}"
        assert failure.reason == (f"the mail server 127.0.0.1:{session_sink.port} {verb} "
                                  f"the message: {code} 1 recipient(s) refused: {text}")
        assert [(r.message_id, r.rcpt_tos) for r in session_sink.all()] == [
            (f"<forward.{n}.ex-{n}@relay.examplia.gov>", (AGENCY,)) for n in (1, 2, 3)]
        assert len(session_sink.transports) == 1

    @pytest.mark.parametrize(("stage", "refusal", "commands"), [
        ("MAIL", "550 5.7.1 sender rejected", ["MAIL", "RSET"]),
        ("DATA", "554 5.6.0 content rejected", ["MAIL", "RCPT", "DATA", "RSET"])])
    def test_a_refused_mail_from_or_data_is_permanent_and_the_session_is_not_kept(
            self, session_sink: _SessionSink, stage: str, refusal: str,
            commands: list[str]) -> None:
        """As sendmail: RSET, then the refusal; as before, the session is closed and the
        next message goes on a new one. Fails on keeping the session after its RSET (one
        session), on retrying a refused MAIL FROM on a new session (three), and on a
        transaction without sendmail's RSET."""
        sender = _smtp(session_sink.port)
        sender.send(_numbered(1), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        session_sink.replies[stage].append(refusal)
        with pytest.raises(PermanentError) as raised:
            sender.send(_numbered(2), envelope_from="intake@examplia.gov",
                        recipients=[AGENCY])
        sender.send(_numbered(3), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        sender.close()
        code, text = refusal.split(" ", 1)
        assert raised.value.reason == (f"the mail server 127.0.0.1:{session_sink.port} "
                                       f"refused the message: {code} {text}")
        assert [r.message_id for r in session_sink.all()] == [
            "<forward.1.ex-1@relay.examplia.gov>", "<forward.3.ex-3@relay.examplia.gov>"]
        assert session_sink.session(0) == (["EHLO", "MAIL", "RCPT", "DATA"] + commands
                                           + ["QUIT"])
        assert session_sink.session(1) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
        assert len(session_sink.transports) == sender.sessions_opened == 2

    def test_a_session_whose_message_failed_is_not_kept(
            self, session_sink: _SessionSink) -> None:
        sender = _smtp(session_sink.port)
        session_sink.reject[AGENCY] = "451 4.3.0 try again later"
        with pytest.raises(TransientError, match="SMTP 451"):
            sender.send(_numbered(1), envelope_from="intake@examplia.gov",
                        recipients=[AGENCY])
        del session_sink.reject[AGENCY]
        sender.send(_numbered(1), envelope_from="intake@examplia.gov", recipients=[AGENCY])
        sender.close()
        assert [r.message_id for r in session_sink.all()] == [
            "<forward.1.ex-1@relay.examplia.gov>"]
        assert len(session_sink.transports) == 2

    def test_threads_share_the_kept_sessions(self, session_sink: _SessionSink) -> None:
        sender = _smtp(session_sink.port)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: sender.send(_numbered(n), envelope_from="intake@examplia.gov",
                                                recipients=[AGENCY]), range(40)))
        sender.close()
        assert sorted(r.message_id for r in session_sink.all()) == sorted(
            f"<forward.{n}.ex-{n}@relay.examplia.gov>" for n in range(40))
        # Never more sessions than threads sending at once.
        assert len(session_sink.transports) <= 4
