"""How an attempt to send something out failed: worth retrying, or never.

Each failure carries, beside its technical message (``str(error)``, for the
log), the answer in plain words (``reason``: what a dead letter says to the
staff who read it) and, where the way out knows it, the ``destination`` it
concerns (an SMTP server, a webhook's origin): the job machinery pauses a
destination that keeps failing (a circuit breaker) instead of spending every
item's attempts on it.
"""

from __future__ import annotations

from datetime import datetime


class DeliveryFailure(Exception):
    """A failed attempt to hand something to a destination outside intake.

    Args:
        message: the technical summary (exception class, status, server text).
        reason: the same in plain words, for a dead letter; ``message`` if not given.
        destination: the server or origin it concerns, once known (the gate adds it).
        unreachable: the destination itself did not answer properly (connection
            refused or reset, timeout, DNS, "421 service not available", HTTP
            429/5xx): counts toward pausing that destination. False for an
            answer about this one message (e.g. SMTP 451 for one recipient).
    """

    def __init__(self, message: str, *, reason: str | None = None,
                 destination: str | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.destination = destination
        self.unreachable = unreachable


class PermanentError(DeliveryFailure):
    """A failure that retrying cannot fix (e.g. SMTP 5xx): dead-letter at once."""


class TransientError(DeliveryFailure):
    """A failure worth retrying later (e.g. connection refused): it never uses up an
    attempt; only the age limit ends its retries."""


class DestinationPaused(TransientError):
    """Not tried: the destination's circuit is open (it kept failing) until ``retry_at``."""

    def __init__(self, destination: str, retry_at: datetime, reason: str) -> None:
        super().__init__(f"{destination} paused until {retry_at:%Y-%m-%d %H:%M:%S} UTC",
                         reason=reason, destination=destination)
        self.retry_at = retry_at
