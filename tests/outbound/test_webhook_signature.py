"""Webhook signatures checked as an agency's receiver would: from the README's scheme alone.

Nothing here calls intake's own ``verify`` or ``sign``: the receiver below is written
from the README ("Webhook signatures") with ``hmac``, and one test recomputes the MAC
with the ``openssl`` command line. The scheme, as documented:

- header ``X-Intake-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``;
- the MAC's key is INTAKE_WEBHOOK_SECRET (its UTF-8 bytes); the signed string is the
  decimal timestamp, a full stop, then the request body byte for byte;
- receivers refuse a timestamp more than 300 seconds from their clock (replays) and
  treat a repeated ``Idempotency-Key`` as the same delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from intake.outbound import webhook
from intake.outbound.webhook import HttpWebhookSender
from tests.conftest import service_missing

SECRET = "agency-shared-secret-0123456789-abcdefghij"
TOLERANCE = 300


class _Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def parse_signature(header: str) -> tuple[int, str]:
    """``t=<seconds>,v1=<hex>`` -> (t, hex), as the README describes the header."""
    fields = dict(part.strip().split("=", 1) for part in header.split(","))
    return int(fields["t"]), fields["v1"]


def receiver_accepts(secret: bytes, headers: dict[str, str], body: bytes,
                     now: float | None = None) -> bool:
    """An agency's check, written from the README: HMAC-SHA256 over "<t>." + body."""
    try:
        timestamp, mac = parse_signature(headers["x-intake-signature"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE:
        return False
    expected = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)


PAYLOAD = {"record_number": "EX-2026-000042", "subject": "Señal caída en la Ruta 9",
           "body": "Línea 1\nLínea 2 — «citado»", "fields": {"b": 1, "a": [1, 2]}}


def _post(url: str, payload: dict[str, Any] | None = None) -> tuple[dict[str, str], bytes]:
    HttpWebhookSender(SECRET.encode(), timeout=5).post(url, payload or PAYLOAD,
                                                       idempotency_key="forward.7.ex@relay")
    return _Receiver.calls[-1]


def test_a_receiver_verifies_the_signature_from_the_documented_scheme(receiver: str) -> None:
    headers, body = _post(receiver)
    assert receiver_accepts(SECRET.encode(), headers, body)
    assert json.loads(body) == PAYLOAD
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["idempotency-key"] == "forward.7.ex@relay"
    timestamp, mac = parse_signature(headers["x-intake-signature"])
    assert abs(time.time() - timestamp) < 60 and len(mac) == 64
    assert not receiver_accepts(b"another agency's secret", headers, body)


@pytest.mark.parametrize(("what", "signed"), [
    ("the body alone", lambda t, body: body),
    ("no full stop", lambda t, body: str(t).encode() + body),
    ("another timestamp", lambda t, body: str(t + 1).encode() + b"." + body),
    ("the body re-serialised", lambda t, body: str(t).encode() + b"." + json.dumps(
        json.loads(body)).encode()),
    ("a trailing newline", lambda t, body: str(t).encode() + b"." + body + b"\n"),
])
def test_a_signature_over_another_string_is_refused(
        receiver: str, monkeypatch: pytest.MonkeyPatch, what: str,
        signed: Callable[[int, bytes], bytes]) -> None:
    """Should intake ever sign another string than the documented one, the receiver's
    check fails (this is the test that fails when the scheme changes)."""
    def other_sign(secret: bytes, body: bytes, timestamp: int) -> str:
        mac = hmac.new(secret, signed(timestamp, body), hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={mac}"

    monkeypatch.setattr(webhook, "sign", other_sign)
    headers, body = _post(receiver)
    assert not receiver_accepts(SECRET.encode(), headers, body), what


def test_a_changed_body_or_an_old_timestamp_is_refused(receiver: str) -> None:
    headers, body = _post(receiver)
    timestamp, _ = parse_signature(headers["x-intake-signature"])
    assert not receiver_accepts(SECRET.encode(), headers, body.replace(b"42", b"43"))
    assert receiver_accepts(SECRET.encode(), headers, body, now=timestamp + TOLERANCE)
    assert not receiver_accepts(SECRET.encode(), headers, body,
                                now=timestamp + TOLERANCE + 1)  # a replay, too late


def test_openssl_computes_the_same_signature(receiver: str) -> None:
    """A second implementation: ``openssl dgst -sha256 -hmac <secret>`` over the string."""
    openssl = shutil.which("openssl")
    if openssl is None:
        service_missing("openssl", "the openssl command line is not installed")
    headers, body = _post(receiver)
    timestamp, mac = parse_signature(headers["x-intake-signature"])
    done = subprocess.run([openssl, "dgst", "-sha256", "-hmac", SECRET],
                          input=f"{timestamp}.".encode() + body, capture_output=True,
                          check=True, timeout=30)
    # "HMAC-SHA2-256(stdin)= <hex>" (the label varies between OpenSSL versions)
    assert done.stdout.decode().strip().rsplit("= ", 1)[1] == mac
