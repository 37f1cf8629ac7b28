"""Sending mail over SMTP (plain, STARTTLS or implicit TLS, optional AUTH)."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from intake.core.failures import PermanentError, TransientError
from intake.core.mail.wire import NotWireSafe, wire_bytes
from intake.core.oauth2 import OAuth2Config, xoauth2
from intake.outbound.oauth2 import OAuth2Error, with_token


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server (from ``INTAKE_SMTP_URL``)."""

    host: str
    port: int
    security: str  # "plain" | "starttls" | "tls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    #: XOAUTH2 instead of a password (``INTAKE_SMTP_OAUTH2_FILE``); ``username`` is the user.
    oauth2: OAuth2Config | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpConfig:
        """``smtp://``, ``smtp+starttls://`` or ``smtps://`` [user:pass@]host[:port]."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}[scheme]
        default_port = {"plain": 25, "starttls": 587, "tls": 465}[security]
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SmtpMailSender:
    """The real :class:`~intake.outbound.interfaces.MailSender`: one SMTP session for many
    messages.

    A session that delivered a message is kept (up to ``pool_size`` idle ones,
    per process: the sender is the process's) and the next :meth:`send` of any
    thread reuses it, as Postfix's connection cache does: the transaction starts
    at once instead of after connect, greeting, EHLO (STARTTLS, AUTH) and QUIT.
    A kept session that the server closed meanwhile fails at ``MAIL FROM`` (the
    line is dead, or the server answers 421): it is closed and the whole
    transaction runs once more on a new session; nothing of the message was
    accepted on the old one. A failure at or after DATA is never retried here.
    Only a session whose last transaction ended in a "250" is kept: after any
    failure (a refusal, a timeout, a dropped line) it is closed, so its state
    never carries over to another message. Sessions idle longer than
    ``max_idle_seconds``, or older than ``max_age_seconds``, are closed instead
    of reused.
    """

    def __init__(self, config: SmtpConfig, *, pool_size: int = 8,
                 max_idle_seconds: float = 10.0, max_age_seconds: float = 300.0) -> None:
        self.config = config
        #: What the circuit breaker pauses when this server is down (never the password).
        self.destination = f"smtp://{config.host}:{config.port}"
        self.pool_size = pool_size
        self.max_idle_seconds = max_idle_seconds
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        # (session, opened at, idle since), the most recently used last.
        self._idle: list[tuple[smtplib.SMTP, float, float]] = []
        #: Sessions opened so far (connect + EHLO): what the pool saves shows here.
        self.sessions_opened = 0

    def send(self, message: EmailMessage, *, envelope_from: str,
             recipients: Sequence[str]) -> None:
        """Send one message; classify failures as transient (retry) or permanent (dead letter).

        The bytes are :func:`intake.core.mail.wire.wire_bytes` (CRLF, no line over 998
        octets: refused otherwise); 8-bit content is declared with ``BODY=8BITMIME``.
        """
        config = self.config
        where = f"{config.host}:{config.port}"
        # As smtplib's send_message: addresses beyond ASCII need SMTPUTF8 (RFC 6531).
        international = any(not a.isascii() for a in (envelope_from, *recipients))
        raw = checked_wire_bytes(message, utf8=international)
        eight_bit = not raw.isascii()
        # Until MAIL FROM, a refusal is about the server or its configuration (greeting,
        # STARTTLS, AUTH), not this message: the destination waits, the message is kept.
        session_ready = False
        try:
            kept = self._checkout()
            while True:  # twice at most: a kept session found closed, then a new one
                if kept is None:
                    client, opened = _connect(config), time.monotonic()
                else:
                    client, opened = kept
                delivered = False
                try:
                    if kept is None:
                        _open_session(client, config)
                        with self._lock:
                            self.sessions_opened += 1
                    options = _mail_options(client, where, international=international,
                                            eight_bit=eight_bit)
                    session_ready = True
                    refused = _transaction(client, envelope_from, list(recipients), raw,
                                           options, kept=kept is not None)
                    delivered = True
                    break
                except _ClosedSession:
                    kept, session_ready = None, False
                finally:
                    if not (delivered and self._checkin(client, opened)):
                        _quit(client)
        except OAuth2Error as exc:  # no token: the server cannot be used yet
            raise TransientError("SMTP OAuth2 token unavailable", unreachable=True,
                                 reason=f"no access token for the mail server {where}: "
                                        f"{exc} (check INTAKE_SMTP_OAUTH2_FILE)") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = min((code, _text(reply)) for code, reply in exc.recipients.values())
            raise classify_reply(code, text, server=where) from None
        except smtplib.SMTPResponseException as exc:
            text = " ".join(_text(exc.smtp_error).split())[:200]
            if not session_ready:  # the greeting, STARTTLS or AUTH refused
                raise TransientError(
                    f"SMTP {exc.smtp_code}: {text}", unreachable=True,
                    reason=f"the mail server {where} refused the session: {exc.smtp_code} "
                           f"{text} (check INTAKE_SMTP_URL)") from None
            raise classify_reply(exc.smtp_code, text, server=where) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError, OSError) as exc:
            raise TransientError(f"SMTP unavailable: {type(exc).__name__}",
                                 reason=f"could not reach the mail server {where} "
                                        f"({_plain_network_error(exc)})",
                                 unreachable=True) from None
        except smtplib.SMTPException as exc:  # STARTTLS or AUTH not offered
            raise TransientError(f"SMTP session failed: {type(exc).__name__}",
                                 reason=f"the mail server {where} could not be used: "
                                        f"{' '.join(str(exc).split())[:200]} "
                                        f"(check INTAKE_SMTP_URL)",
                                 unreachable=True) from None
        if refused:
            code, text = min((code, _text(reply)) for code, reply in refused.values())
            raise classify_reply(code, f"{len(refused)} recipient(s) refused: {text}",
                                 server=where)

    def _checkout(self) -> tuple[smtplib.SMTP, float] | None:
        """A kept session (and when it was opened), or None. Sessions too old or idle too
        long are closed on the way; whether the server still has it shows at MAIL FROM."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                client, opened, since = self._idle.pop()
            now = time.monotonic()
            if now - since <= self.max_idle_seconds and now - opened <= self.max_age_seconds:
                return client, opened
            _quit(client)

    def _checkin(self, client: smtplib.SMTP, opened: float) -> bool:
        """Keep a session whose last transaction succeeded; False if there is no room."""
        now = time.monotonic()
        if now - opened > self.max_age_seconds:
            return False
        with self._lock:
            if len(self._idle) >= self.pool_size:
                return False
            self._idle.append((client, opened, now))
            return True

    def close(self) -> None:
        """QUIT the kept sessions (at shutdown)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for client, _, _ in idle:
            _quit(client)

    def check(self) -> str:
        """Connect and log in, send nothing: "login ok", or raise as :meth:`send` would."""
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            client = _connect(config)
            try:
                _open_session(client, config)
            finally:
                _quit(client)
        except OAuth2Error as exc:
            raise TransientError("SMTP OAuth2 token unavailable", unreachable=True,
                                 reason=str(exc)) from None
        except smtplib.SMTPResponseException as exc:
            text = " ".join(_text(exc.smtp_error).split())[:200]
            raise TransientError(f"SMTP {exc.smtp_code}", unreachable=True,
                                 reason=f"the mail server {where} refused the session: "
                                        f"{exc.smtp_code} {text}") from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError, OSError) as exc:
            raise TransientError("SMTP unavailable", unreachable=True,
                                 reason=f"could not reach the mail server {where} "
                                        f"({_plain_network_error(exc)})") from None
        except smtplib.SMTPException as exc:
            raise TransientError("SMTP session failed", unreachable=True,
                                 reason=f"the mail server {where} could not be used: "
                                        f"{' '.join(str(exc).split())[:200]}") from None
        if config.oauth2 is not None:
            return "login ok (XOAUTH2)"
        return "login ok" if config.username else "connected (no login configured)"


class _ClosedSession(Exception):
    """A kept session was found closed at MAIL FROM: nothing of the message was sent."""


def _transaction(client: smtplib.SMTP, envelope_from: str, recipients: list[str],
                 raw: bytes, options: list[str], *, kept: bool
                 ) -> dict[str, tuple[int, bytes]]:
    """:meth:`smtplib.SMTP.sendmail`, step by step, with the same replies, exceptions and
    result; except that on a ``kept`` session a dead line or a 421 at MAIL FROM raises
    :class:`_ClosedSession`: a server that has not accepted MAIL has nothing of the
    message, so it may go again on a new session. Anything later is reported as sendmail
    reports it: the line was alive at MAIL, and from DATA on the server may have accepted
    the message before its reply was lost."""
    client.ehlo_or_helo_if_needed()
    esmtp_options = []
    if client.does_esmtp:
        if client.has_extn("size"):
            esmtp_options.append(f"size={len(raw)}")
        esmtp_options.extend(options)
    try:
        code, resp = client.mail(envelope_from, esmtp_options)
    except smtplib.SMTPServerDisconnected:  # smtplib's name for any socket error or timeout
        if kept:
            raise _ClosedSession from None
        raise
    if code != 250:
        if code == 421:
            client.close()
            if kept:  # e.g. Postfix's "421 4.4.2 timeout exceeded", sent as it hung up
                raise _ClosedSession
        else:
            _rset(client)
        raise smtplib.SMTPSenderRefused(code, resp, envelope_from)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in recipients:
        code, resp = client.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, resp)
        if code == 421:
            client.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _rset(client)
        raise smtplib.SMTPRecipientsRefused(refused)
    code, resp = client.data(raw)
    if code != 250:
        if code == 421:
            client.close()
        else:
            _rset(client)
        raise smtplib.SMTPDataError(code, resp)
    return refused


def _rset(client: smtplib.SMTP) -> None:
    """RSET after a refusal, as sendmail does; a line already gone needs none."""
    try:
        client.rset()
    except smtplib.SMTPServerDisconnected:
        pass


def _quit(client: smtplib.SMTP) -> None:
    """End a session politely if the line still works, else just close it."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    """A connection to the configured server (implicit TLS or plain, before EHLO)."""
    if config.security == "tls":
        return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                context=ssl.create_default_context())
    return smtplib.SMTP(config.host, config.port, timeout=config.timeout)


def _open_session(client: smtplib.SMTP, config: SmtpConfig) -> None:
    """EHLO, STARTTLS when configured, then the login (password or XOAUTH2)."""
    client.ehlo()
    if config.security == "starttls":
        client.starttls(context=ssl.create_default_context())
        client.ehlo()
    _log_in(client, config)


def _log_in(client: smtplib.SMTP, config: SmtpConfig) -> None:
    """AUTH: XOAUTH2 with a cached token (a 535 for it: a new token, one more try), or
    the password of INTAKE_SMTP_URL, or nothing."""
    if config.oauth2 is not None:
        user = config.username or ""

        def login(token: str) -> None:
            # smtplib calls this again with the server's challenge when it refuses the
            # token with a 334 (Google's JSON error): answer it empty, as RFC 7628 says.
            def answer(challenge: bytes | None = None) -> str:
                return xoauth2(user, token) if challenge is None else ""
            client.auth("XOAUTH2", answer, initial_response_ok=True)

        with_token(config.oauth2, login, (smtplib.SMTPAuthenticationError,))
    elif config.username:
        client.login(config.username, config.password or "")


def _mail_options(client: smtplib.SMTP, where: str, *, international: bool,
                  eight_bit: bool) -> list[str]:
    """MAIL FROM parameters: SMTPUTF8 for international addresses (refused for good by a
    server without it), BODY=8BITMIME for 8-bit content where the server offers it."""
    if international:
        if not client.has_extn("smtputf8"):
            raise PermanentError("SMTPUTF8 not offered",
                                 reason=f"the mail server {where} does not accept "
                                        f"international (non-ASCII) addresses (no SMTPUTF8)")
        return ["SMTPUTF8", "BODY=8BITMIME"]
    return ["BODY=8BITMIME"] if eight_bit and client.has_extn("8bitmime") else []


def checked_wire_bytes(message: EmailMessage, *, utf8: bool = False) -> bytes:
    """:func:`wire_bytes`, or a permanent failure: a message that breaks SMTP is never sent."""
    try:
        return wire_bytes(message, utf8=utf8)
    except NotWireSafe as exc:
        raise PermanentError(str(exc), reason=f"intake built a message no mail server may "
                                              f"accept ({exc}); this is a fault in intake, "
                                              f"please report it") from None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _plain_network_error(exc: BaseException) -> str:
    """A network failure in a few plain words (no addresses or payload)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | smtplib.SMTPServerDisconnected):
        return "connection closed by the server"
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve"
    return type(exc).__name__


def classify_reply(code: int, text: str, *, server: str = ""
                   ) -> PermanentError | TransientError:
    """An SMTP error reply as the failure it is (RFC 5321 section 4.2.1): 5xx permanent,
    anything else transient; 421 ("service not available") says the server itself is
    unavailable, other 4xx concern this message only."""
    text = " ".join(text.split())[:200]
    summary = f"SMTP {code}: {text}"
    server = f"the mail server {server}" if server else "the mail server"
    if 500 <= code < 600:
        return PermanentError(summary, reason=f"{server} refused the message: {code} {text}")
    return TransientError(summary, reason=f"{server} deferred the message: {code} {text}",
                          unreachable=code == 421)
