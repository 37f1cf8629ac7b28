"""Delivering to an agency's webhook: JSON, HMAC-SHA256 signed, with timeouts.

The URL always comes from the rules file's agency entry, never from input.
Signature header: ``X-Intake-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`` (the Stripe scheme: the timestamp defeats replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from intake.core.failures import PermanentError, TransientError

SIGNATURE_HEADER = "X-Intake-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, *, tolerance: int = 300,
           now: float | None = None) -> bool:
    """For receivers (and tests): check the signature and its age."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The request body: the payload as UTF-8 JSON, keys sorted (what the signature covers)."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


class HttpWebhookSender:
    """The real :class:`~intake.outbound.interfaces.WebhookSender`: signed POSTs, no redirects.

    ``secret`` signs every body (:func:`sign`); ``timeout`` bounds each request.
    """

    def __init__(self, secret: bytes, timeout: float = 15.0) -> None:
        self.secret = secret
        self.timeout = timeout

    def post(self, url: str, payload: dict[str, Any], *, idempotency_key: str) -> int:
        """POST the payload; 2xx is success, 4xx permanent, 5xx and network errors transient."""
        if not url.startswith(("https://", "http://")):
            raise PermanentError("webhook URL must be http(s)")
        body = encode_payload(payload)
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=body, method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
                "Idempotency-Key": idempotency_key,
                "User-Agent": "intake-webhook/1",
            },
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            raise classify_status(exc.code, origin(url)) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise TransientError(f"webhook unreachable: {type(why).__name__}",
                                 reason=f"could not reach the webhook at {origin(url)} "
                                        f"({_plain_network_error(why)})",
                                 unreachable=True) from None


#: Answers worth trying again (as GOV.UK Notify retries its callbacks on 429 and 5xx):
#: the receiver is busy, down or timed out, and says nothing about this payload.
TRANSIENT_STATUSES = frozenset({408, 429})


def classify_status(status: int, where: str) -> PermanentError | TransientError:
    """A non-2xx answer as the failure it is: 408, 429 and 5xx transient (the receiver is
    unavailable), any other (3xx: redirects are never followed; 4xx) permanent."""
    summary = f"webhook answered {status}"
    if status >= 500 or status in TRANSIENT_STATUSES:
        return TransientError(summary, reason=f"the webhook at {where} answered {status} "
                                              f"(unavailable)", unreachable=True)
    return PermanentError(summary, reason=f"the webhook at {where} refused the delivery: "
                                          f"it answered {status}")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what a webhook's circuit breaker pauses."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname or ''}:{port}"


def _plain_network_error(exc: object) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve"
    return type(exc).__name__


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could send personal data somewhere the rules never named."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
