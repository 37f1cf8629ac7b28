"""What the gate needs from a way out: one interface per kind of destination."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Protocol


class MailSender(Protocol):
    """Hands one message to a mail server (or keeps it, in memory).

    Raises :class:`~intake.core.failures.TransientError` when a retry may
    succeed (server down, 4xx) and :class:`~intake.core.failures.PermanentError`
    when it cannot (5xx, every recipient refused). ``destination`` names the server
    (``smtp://host:port``): what the gate's circuit breaker pauses when it is down.
    """

    destination: str

    def send(self, message: EmailMessage, *, envelope_from: str,
             recipients: Sequence[str]) -> None: ...


class WebhookSender(Protocol):
    """POSTs one JSON payload, signed, to an agency's webhook URL; the HTTP status.

    Same failure classes as :class:`MailSender`: 4xx (but 408/429) permanent,
    5xx and network errors transient.
    """

    def post(self, url: str, payload: dict[str, Any], *, idempotency_key: str) -> int: ...
