"""In-memory senders: they keep what the gate hands them instead of sending it.

Tests of the services use them to read exactly what an agency or a submitter
would have received (the bytes an SMTP server would have got, the JSON body a
webhook would have got) without a server, and to make the way out fail on
purpose: :meth:`MemoryMailSender.fail_next`, :attr:`MemoryMailSender.reject`.
"""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from intake.core.failures import PermanentError, TransientError
from intake.core.mail.policies import DEFAULT
from intake.outbound.smtp import checked_wire_bytes, classify_reply
from intake.outbound.webhook import encode_payload


@dataclass(frozen=True)
class SentMail:
    """One message as a mail server would have received it: envelope and bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The bytes parsed again, as the receiving side would read them."""
        msg = email.message_from_bytes(self.raw, policy=DEFAULT)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class MemoryMailSender:
    """A :class:`~intake.outbound.interfaces.MailSender` that keeps each message it accepts.

    ``reject`` maps a recipient to the SMTP reply a server would give it
    ("550 5.1.1 unknown"): such a send fails as that reply would (5xx
    permanent, else transient) and keeps nothing. :meth:`fail_next` makes the
    next sends fail whatever their recipients. Thread-safe: in-process workers
    send from several threads.
    """

    destination = "memory://mail"

    def __init__(self) -> None:
        self.reject: dict[str, str] = {}
        self._sent: list[SentMail] = []
        self._failures: list[Exception] = []
        self._failing: Exception | None = None
        self._lock = threading.Lock()

    def send(self, message: EmailMessage, *, envelope_from: str,
             recipients: Sequence[str]) -> None:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            if self._failing is not None:
                raise self._failing
            refused = [self.reject[r] for r in recipients if r in self.reject]
            if refused:
                code, _, text = min(refused).partition(" ")
                raise classify_reply(int(code), text)
            raw = checked_wire_bytes(message, utf8=any(
                not a.isascii() for a in (envelope_from, *recipients)))
            self._sent.append(SentMail(envelope_from, tuple(recipients), raw))

    def fail_next(self, count: int = 1, *, permanent: bool = False,
                  reason: str = "SMTP unavailable: ConnectionRefusedError") -> None:
        """Make the next ``count`` sends fail (transiently unless ``permanent``)."""
        error = (PermanentError(reason) if permanent
                 else TransientError(reason, unreachable=True))
        with self._lock:
            self._failures.extend([error] * count)

    def go_down(self, reason: str = "SMTP unavailable: ConnectionRefusedError") -> None:
        """Fail every send transiently, as an unreachable server would, until :meth:`come_back`."""
        with self._lock:
            self._failing = TransientError(reason, unreachable=True)

    def come_back(self) -> None:
        with self._lock:
            self._failing = None

    def all(self) -> list[SentMail]:
        """Every message accepted so far, in order."""
        with self._lock:
            return list(self._sent)

    def to(self, address: str) -> list[SentMail]:
        """The messages accepted for ``address`` (an envelope recipient), in order."""
        return [m for m in self.all() if address in m.rcpt_tos]


@dataclass(frozen=True)
class PostedWebhook:
    """One webhook call as the receiver would have got it (the body is the signed JSON)."""

    url: str
    body: bytes
    idempotency_key: str

    @property
    def payload(self) -> Any:
        """The body parsed again."""
        return json.loads(self.body)


class MemoryWebhookSender:
    """A :class:`~intake.outbound.interfaces.WebhookSender` that keeps each call it accepts.

    ``status`` is the HTTP status every call answers; :meth:`fail_next` makes
    the next calls fail (transiently unless told otherwise).
    """

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self._posted: list[PostedWebhook] = []
        self._failures: list[Exception] = []
        self._lock = threading.Lock()

    def post(self, url: str, payload: dict[str, Any], *, idempotency_key: str) -> int:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            self._posted.append(PostedWebhook(url, encode_payload(payload), idempotency_key))
            return self.status

    def fail_next(self, count: int = 1, *, permanent: bool = False,
                  reason: str = "webhook unreachable: ConnectionRefusedError") -> None:
        error = (PermanentError(reason) if permanent
                 else TransientError(reason, unreachable=True))
        with self._lock:
            self._failures.extend([error] * count)

    def all(self) -> list[PostedWebhook]:
        with self._lock:
            return list(self._posted)
