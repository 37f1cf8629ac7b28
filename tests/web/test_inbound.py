"""POST /inbound/<source>: mail pushed over HTTP by a provider, stored exactly once.

Each format (raw with a shared secret, Amazon SES through SNS, SendGrid Inbound Parse,
Mailgun routes) is posted as its provider sends it, signed with keys made here
(cryptography: an RSA key and a self-signed certificate stand for Amazon's, an ECDSA
P-256 key for SendGrid's); the SNS certificate is "fetched" from this test through the
app's one fetcher. Over HTTP (the Flask test client, and a real server for chunked
bodies), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from intake import create_app
from intake.core.inbound import sign_raw
from intake.db.mail_models import QuarantinedMessage
from intake.db.models import Entry
from intake.outbound.memory import MemoryMailSender
from intake.runtime import Runtime, StartupError
from intake.services import mail_intake
from intake.services.inbound import SnsFetcher
from intake.web.inbound import KEY
from tests.conftest import CITIZEN, DOT, make_runtime, memory_senders, wait_for

DATA = Path(__file__).resolve().parents[1] / "data" / "mail"
RAW_SECRET = "raw-secret-" + "r" * 30
MAILGUN_KEY = "key-" + "m" * 32
TOPIC = "arn:aws:sns:us-east-1:123456789012:intake-inbound"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"
SUBSCRIBE_URL = ("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                 f"&TopicArn={TOPIC}&Token=abc123")
RAW_LIMIT = 20_000


def message(subject: str = "Pothole on Route 9", body: str = "It is huge.",
            sender: str = CITIZEN) -> bytes:
    return (f"From: Ana Ortiz <{sender}>\r\nTo: contact@examplia.gov\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4()}@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


# -- keys made in the test ---------------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.sendgrid = ec.generate_private_key(ec.SECP256R1())
        self.sendgrid_public = base64.b64encode(self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        self.sns = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.sns_pem = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(self.sns.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - timedelta(days=1))
                        .not_valid_after(now + timedelta(days=30))
                        .sign(self.sns, hashes.SHA256())
                        .public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def inbound_file(tmp_path: Path) -> Path:
    path = tmp_path / "inbound.yaml"
    path.write_text(yaml.safe_dump({"sources": [
        {"name": "raw", "format": "raw", "max_bytes": RAW_LIMIT},
        {"name": "ses", "format": "ses-sns", "topic_arns": [TOPIC]},
        {"name": "sendgrid", "format": "sendgrid"},
        {"name": "mailgun", "format": "mailgun", "secret_file": str(tmp_path / "mailgun.key")},
        {"name": "limited", "format": "raw", "rate_limit": "2/minute"},
    ]}))
    (tmp_path / "mailgun.key").write_text(MAILGUN_KEY + "\n")
    return path


class Fetches:
    """The SNS fetcher's transport: the test's certificate, and confirmations recorded."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []
        self.confirmed: list[str] = []

    def __call__(self, url: str, *, certificate: bool) -> bytes:
        if certificate:
            self.urls.append(url)
            return self.pem
        self.confirmed.append(url)
        return b"<ConfirmSubscriptionResponse/>"


@pytest.fixture
def outbox() -> MemoryMailSender:
    return MemoryMailSender()


@pytest.fixture
def rt(tmp_path: Path, db_url: str, keys: Keys, outbox: MemoryMailSender) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, db_url, senders=memory_senders(outbox),
                           INTAKE_INBOUND_FILE=str(inbound_file(tmp_path)),
                           INTAKE_INBOUND_SECRET_RAW=RAW_SECRET,
                           INTAKE_INBOUND_SECRET_LIMITED=RAW_SECRET,
                           INTAKE_INBOUND_SECRET_SENDGRID=keys.sendgrid_public,
                           INTAKE_FORM_RATE_LIMIT="1000/minute")
    yield runtime
    runtime.close()


@pytest.fixture
def fetches(keys: Keys) -> Fetches:
    return Fetches(keys.sns_pem)


@pytest.fixture
def app(rt: Runtime, fetches: Fetches) -> Flask:
    application = create_app(runtime=rt)
    application.extensions[KEY].sns = SnsFetcher(get=fetches)
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def entries(rt: Runtime) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Entry)) or 0)


def quarantined(rt: Runtime) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(QuarantinedMessage)) or 0)


def idempotency_keys(rt: Runtime) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(Entry.idempotency_key)))


# -- the providers' requests -------------------------------------------------------------


def raw_post(client: FlaskClient, raw: bytes, **headers: str) -> Any:
    return client.post("/inbound/raw", data=raw, content_type="message/rfc822",
                       headers=headers)


def signed(raw: bytes, secret: str = RAW_SECRET, at: float | None = None) -> dict[str, str]:
    return {"X-Intake-Signature": sign_raw(secret.encode(), raw, int(at or time.time()))}


def multipart(fields: dict[str, bytes], boundary: str = "xYzZY") -> tuple[bytes, str]:
    body = b""
    for name, value in fields.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 ).encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def sendgrid_post(client: FlaskClient, keys: Keys, raw: bytes, *, sign: bool = True,
                  at: float | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Any:
    body, content_type = multipart({"to": b"contact@examplia.gov", "email": raw,
                                    "charsets": b'{"to":"UTF-8"}'})
    timestamp = str(int(at or time.time()))
    headers = {}
    if sign:
        signature = (key or keys.sendgrid).sign(timestamp.encode() + body,
                                                ec.ECDSA(hashes.SHA256()))
        headers = {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                   "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
    return client.post("/inbound/sendgrid", data=body, content_type=content_type,
                       headers=headers)


def mailgun_post(client: FlaskClient, raw: bytes, *, key: str = MAILGUN_KEY,
                 token: str | None = None, at: float | None = None, field: str = "body-mime",
                 sign: bool = True) -> Any:
    timestamp = str(int(at or time.time()))
    token = token or uuid.uuid4().hex * 2
    fields = {"recipient": b"contact@examplia.gov", field: raw}
    if sign:
        fields.update(timestamp=timestamp.encode(), token=token.encode(),
                      signature=hmac.new(key.encode(), (timestamp + token).encode(),
                                         hashlib.sha256).hexdigest().encode())
    body, content_type = multipart(fields)
    return client.post("/inbound/mailgun", data=body, content_type=content_type)


def sns_body(keys: Keys, *, raw: bytes | None = None, kind: str = "Notification",
             version: str = "2", topic: str = TOPIC, cert_url: str = CERT_URL,
             at: datetime | None = None, key: rsa.RSAPrivateKey | None = None,
             ses: dict[str, Any] | None = None) -> bytes:
    if ses is None and raw is not None:
        ses = {"notificationType": "Received",
               "mail": {"source": CITIZEN, "destination": ["contact@examplia.gov"]},
               "receipt": {"action": {"type": "SNS", "topicArn": topic, "encoding": "BASE64"}},
               "content": base64.b64encode(raw).decode()}
    msg: dict[str, str] = {
        "Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": topic,
        "Message": json.dumps(ses) if ses is not None else "You have chosen to subscribe.",
        "Timestamp": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": version, "SigningCertURL": cert_url,
    }
    if kind == "Notification":
        msg["Subject"] = "Amazon SES Email Receipt Notification"
        order = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        msg.update(SubscribeURL=SUBSCRIBE_URL, Token="abc123")
        order = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    canonical = "".join(f"{k}\n{msg[k]}\n" for k in order).encode()
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1
    msg["Signature"] = base64.b64encode(
        (key or keys.sns).sign(canonical, padding.PKCS1v15(), digest)).decode()
    return json.dumps(msg).encode()


def sns_post(client: FlaskClient, body: bytes, kind: str = "Notification") -> Any:
    return client.post("/inbound/ses", data=body, content_type="text/plain; charset=UTF-8",
                       headers={"x-amz-sns-message-type": kind})


# -- stored exactly once ------------------------------------------------------------------


def test_raw_with_bearer_or_hmac_is_stored_exactly_once(client: FlaskClient,
                                                       rt: Runtime) -> None:
    raw = message()
    first = raw_post(client, raw, Authorization=f"Bearer {RAW_SECRET}")
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"outcome": "stored"}
    again = raw_post(client, raw, **signed(raw))
    assert again.status_code == 200 and again.get_json() == {"outcome": "duplicate"}
    assert entries(rt) == 1
    assert idempotency_keys(rt) == [f"sha256:{hashlib.sha256(raw).hexdigest()}"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_notification_is_stored_exactly_once_and_the_certificate_cached(
        client: FlaskClient, rt: Runtime, keys: Keys, fetches: Fetches, version: str) -> None:
    raw = message("Queja: señal rota en el parque", "La señal del parque está rota.")
    body = sns_body(keys, raw=raw, version=version)
    assert sns_post(client, body).get_json() == {"outcome": "stored"}
    # SNS retries with the same notification; a second notification carries the same mail.
    assert sns_post(client, body).get_json() == {"outcome": "duplicate"}
    assert sns_post(client, sns_body(keys, raw=raw, version=version)).status_code == 200
    assert entries(rt) == 1
    assert idempotency_keys(rt) == [f"sha256:{hashlib.sha256(raw).hexdigest()}"]
    assert fetches.urls == [CERT_URL]  # fetched once, then cached


def test_ses_utf8_encoded_content_is_stored(client: FlaskClient, rt: Runtime,
                                            keys: Keys) -> None:
    raw = message()
    ses = {"notificationType": "Received", "receipt": {"action": {"encoding": "UTF8"}},
           "content": raw.decode()}
    assert sns_post(client, sns_body(keys, ses=ses)).get_json() == {"outcome": "stored"}
    assert entries(rt) == 1


def test_sendgrid_is_stored_exactly_once_with_the_exact_bytes(
        client: FlaskClient, rt: Runtime, keys: Keys) -> None:
    raw = message("Ayuda", "Hola").replace(b"charset=utf-8", b"charset=iso-8859-1") \
        .replace(b"Hola", "Señal dañada".encode("latin-1"))
    first = sendgrid_post(client, keys, raw)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"outcome": "stored"}
    assert sendgrid_post(client, keys, raw).get_json() == {"outcome": "duplicate"}
    assert entries(rt) == 1
    assert idempotency_keys(rt) == [f"sha256:{hashlib.sha256(raw).hexdigest()}"]
    with rt.db.session() as s:
        assert "Señal dañada" in s.scalars(select(Entry.body)).one()


@pytest.mark.parametrize("field", ["body-mime", "message-mime"])
def test_mailgun_is_stored_exactly_once(client: FlaskClient, rt: Runtime, field: str) -> None:
    raw = message()
    token = uuid.uuid4().hex * 2
    first = mailgun_post(client, raw, token=token, field=field)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"outcome": "stored"}
    # Mailgun's retry: the same token, timestamp and message.
    assert mailgun_post(client, raw, token=token, field=field).get_json() == {
        "outcome": "duplicate"}
    assert entries(rt) == 1
    assert idempotency_keys(rt) == [f"sha256:{hashlib.sha256(raw).hexdigest()}"]


# -- refused: nothing stored --------------------------------------------------------------


def test_raw_without_or_with_a_wrong_secret_is_refused(client: FlaskClient, rt: Runtime) -> None:
    raw = message()
    assert raw_post(client, raw).status_code == 401
    assert raw_post(client, raw, Authorization="Bearer " + "x" * 40).status_code == 403
    assert raw_post(client, raw, **signed(raw, secret="w" * 40)).status_code == 403
    assert raw_post(client, raw, **signed(raw, at=time.time() - 3600)).status_code == 403
    # A signature of another body.
    assert raw_post(client, raw, **signed(message())).status_code == 403
    assert raw_post(client, raw, **{"X-Intake-Signature": "garbage"}).status_code == 403
    assert entries(rt) == 0 and quarantined(rt) == 0


def test_sendgrid_bad_or_missing_signature_is_refused(client: FlaskClient, rt: Runtime,
                                                      keys: Keys) -> None:
    raw = message()
    assert sendgrid_post(client, keys, raw, sign=False).status_code == 401
    other = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(client, keys, raw, key=other).status_code == 403
    assert sendgrid_post(client, keys, raw, at=time.time() - 7200).status_code == 403
    assert entries(rt) == 0 and quarantined(rt) == 0


def test_mailgun_bad_signature_stale_timestamp_or_reused_token_is_refused(
        client: FlaskClient, rt: Runtime) -> None:
    raw = message()
    assert mailgun_post(client, raw, sign=False).status_code == 401
    assert mailgun_post(client, raw, key="key-" + "x" * 32).status_code == 403
    assert mailgun_post(client, raw, at=time.time() - 3600).status_code == 403
    assert entries(rt) == 0
    token = uuid.uuid4().hex * 2
    assert mailgun_post(client, raw, token=token).status_code == 200
    # The signature covers the timestamp and token only: a captured one with another message.
    assert mailgun_post(client, message("Forged"), token=token).status_code == 403
    assert entries(rt) == 1 and quarantined(rt) == 0


def test_sns_bad_signature_certificate_url_topic_or_age_is_refused(
        client: FlaskClient, rt: Runtime, keys: Keys, fetches: Fetches) -> None:
    raw = message()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert sns_post(client, sns_body(keys, raw=raw, key=other)).status_code == 403
    hostile_urls = [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123abcd.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://sns.us-east-1.amazonaws.com/../x.pem",
        "https://s3.amazonaws.com/sns/x.pem",
    ]
    for url in hostile_urls:
        response = sns_post(client, sns_body(keys, raw=raw, cert_url=url))
        assert response.status_code == 403, url
    assert fetches.urls == [CERT_URL]  # only the good URL was ever fetched
    other_topic = "arn:aws:sns:us-east-1:999999999999:someone-else"
    assert sns_post(client, sns_body(keys, raw=raw, topic=other_topic)).status_code == 403
    stale = datetime.now(UTC) - timedelta(hours=2)
    assert sns_post(client, sns_body(keys, raw=raw, at=stale)).status_code == 403
    tampered = json.loads(sns_body(keys, raw=raw))
    tampered["Message"] = json.dumps({"notificationType": "Received",
                                      "content": base64.b64encode(message("x")).decode(),
                                      "receipt": {"action": {"encoding": "BASE64"}}})
    assert sns_post(client, json.dumps(tampered).encode()).status_code == 403
    assert sns_post(client, b"not json").status_code == 401
    assert sns_post(client, b'{"Type": "Notification"}').status_code == 401
    assert entries(rt) == 0 and quarantined(rt) == 0


def test_sns_subscription_is_confirmed_only_for_an_allowed_topic(
        client: FlaskClient, keys: Keys, fetches: Fetches, rt: Runtime) -> None:
    other_topic = "arn:aws:sns:us-east-1:999999999999:someone-else"
    refused = sns_post(client, sns_body(keys, kind="SubscriptionConfirmation", topic=other_topic),
                       "SubscriptionConfirmation")
    assert refused.status_code == 403 and fetches.confirmed == []
    ok = sns_post(client, sns_body(keys, kind="SubscriptionConfirmation"),
                  "SubscriptionConfirmation")
    assert ok.status_code == 200 and ok.get_json() == {"outcome": "subscribed"}
    assert fetches.confirmed == [SUBSCRIBE_URL]
    assert entries(rt) == 0


def test_ses_notification_without_content_is_refused_clearly(client: FlaskClient, rt: Runtime,
                                                            keys: Keys) -> None:
    ses = {"notificationType": "Received", "receipt": {"action": {"type": "S3"}}}
    response = sns_post(client, sns_body(keys, ses=ses))
    assert response.status_code == 422
    assert "no content" in response.get_json()["reason"]
    assert entries(rt) == 0


def test_unknown_source_is_404_and_csrf_does_not_apply_but_the_rate_limit_does(
        client: FlaskClient, rt: Runtime) -> None:
    assert client.post("/inbound/nope", data=b"x").status_code == 404
    assert client.get("/inbound/raw").status_code == 405
    # The app checks CSRF tokens (a staff POST without one is refused) ...
    assert client.post("/staff/login", data={"email": "a@b.example"}).status_code == 400
    # ... but not here; the source's limit (2/minute) applies, before anything is read.
    auth = {"Authorization": f"Bearer {RAW_SECRET}"}
    for _ in range(2):
        response = client.post("/inbound/limited", data=message(),
                               content_type="message/rfc822", headers=auth)
        assert response.status_code == 200
    response = client.post("/inbound/limited", data=message(), content_type="message/rfc822",
                           headers=auth)
    assert response.status_code == 429
    assert entries(rt) == 2


# -- size limit ---------------------------------------------------------------------------


def test_over_the_limit_with_content_length_is_413(client: FlaskClient, rt: Runtime) -> None:
    raw = message(body="x" * (RAW_LIMIT + 10))
    response = raw_post(client, raw, Authorization=f"Bearer {RAW_SECRET}")
    assert response.status_code == 413
    assert entries(rt) == 0 and quarantined(rt) == 0
    exactly = message(body="")
    exactly = message(body="y" * (RAW_LIMIT - len(exactly)))
    assert len(exactly) == RAW_LIMIT
    assert raw_post(client, exactly, Authorization=f"Bearer {RAW_SECRET}").status_code == 200


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    """The app on a real HTTP server (werkzeug's; it de-chunks bodies) on a free port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()


def post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        pieces = (body[i:i + 4096] for i in range(0, len(body), 4096))
        connection.request("POST", path, body=pieces, encode_chunked=True,
                           headers={"Transfer-Encoding": "chunked", **headers})
        return connection.getresponse().status
    finally:
        connection.close()


def test_over_the_limit_chunked_is_413_and_under_it_is_stored(app: Flask, rt: Runtime) -> None:
    auth = {"Authorization": f"Bearer {RAW_SECRET}", "Content-Type": "message/rfc822"}
    with serving(app) as port:
        assert post_chunked(port, "/inbound/raw", message(body="x" * (RAW_LIMIT * 2)),
                            auth) == 413
        assert entries(rt) == 0 and quarantined(rt) == 0
        assert post_chunked(port, "/inbound/raw", message(body="small"), auth) == 200
    assert entries(rt) == 1


# -- the provider's retry after a failed store ---------------------------------------------


def failing_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = mail_intake.store_message

    def store_message(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is down"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mail_intake, "store_message", store_message)
    return calls


@pytest.mark.parametrize("provider", ["raw", "ses", "sendgrid", "mailgun"])
def test_a_retry_after_a_5xx_stores_one_entry(client: FlaskClient, rt: Runtime, keys: Keys,
                                              monkeypatch: pytest.MonkeyPatch,
                                              provider: str) -> None:
    calls = failing_once(monkeypatch)
    raw = message()
    token = uuid.uuid4().hex * 2
    at = time.time()
    sns = sns_body(keys, raw=raw)
    send: dict[str, Callable[[], Any]] = {
        "raw": lambda: raw_post(client, raw, **signed(raw, at=at)),
        "ses": lambda: sns_post(client, sns),
        "sendgrid": lambda: sendgrid_post(client, keys, raw, at=at),
        "mailgun": lambda: mailgun_post(client, raw, token=token, at=at),
    }
    failed = send[provider]()
    assert failed.status_code == 503
    assert entries(rt) == 0 and quarantined(rt) == 0
    retried = send[provider]()
    assert retried.status_code == 200 and retried.get_json() == {"outcome": "stored"}
    assert send[provider]().get_json() == {"outcome": "duplicate"}
    assert entries(rt) == 1 and len(calls) >= 2


# -- hostile mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "outcome"), [
    ("crlf_injection.eml", "stored"), ("bogus_charset.eml", "stored"),
    ("unknown_charset.eml", "stored"), ("truncated_multipart.eml", "stored"),
    ("garbage.eml", None), ("bad_headers.eml", None),
])
def test_hostile_mime_is_stored_or_quarantined_without_a_crash(
        client: FlaskClient, rt: Runtime, name: str, outcome: str | None) -> None:
    raw = (DATA / name).read_bytes()
    response = raw_post(client, raw, Authorization=f"Bearer {RAW_SECRET}")
    assert response.status_code in (200, 202), response.get_data(as_text=True)
    got = response.get_json()["outcome"]
    assert got in ("stored", "quarantined")
    if outcome is not None:
        assert got == outcome
    assert entries(rt) + quarantined(rt) == 1
    with rt.db.session() as s:
        for subject in s.scalars(select(Entry.subject)):
            assert "\r" not in subject and "\n" not in subject


def test_crlf_in_an_encoded_subject_never_becomes_a_header_of_the_forward(
        client: FlaskClient, rt: Runtime, keys: Keys, outbox: MemoryMailSender) -> None:
    from tests.services.test_headers import HOSTILE_SUBJECT, assert_all_work_done, assert_clean

    rt.jobs.start()
    raw = (f"From: =?utf-8?q?Eve=0D=0ABcc:_evil@x.example?= <{CITIZEN}>\r\n"
           "To: contact@examplia.gov\r\n"
           f"Subject: {HOSTILE_SUBJECT.replace(chr(0x2028), ' ')}\r\n"
           "Message-ID: <hostile-http@example.org>\r\n\r\nA pothole on Route 9 is huge.\r\n"
           ).encode()
    response = sendgrid_post(client, keys, raw)
    assert response.get_json() == {"outcome": "stored"}
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="forward and receipt")
    assert_all_work_done(rt)
    (forward,) = outbox.to(DOT)
    assert_clean(forward, DOT)
    assert "Pothole X-Injected: pwned" in str(forward.message["Subject"])


# -- configuration ---------------------------------------------------------------------------


def test_a_secret_in_the_yaml_or_a_missing_secret_stops_the_start(tmp_path: Path,
                                                                  sqlite_url: str) -> None:
    path = tmp_path / "inbound.yaml"
    path.write_text(yaml.safe_dump({"sources": [
        {"name": "raw", "format": "raw", "secret": "in-the-file-" + "x" * 20}]}))
    runtime = make_runtime(tmp_path, sqlite_url, senders=memory_senders(MemoryMailSender()),
                           INTAKE_INBOUND_FILE=str(path))
    try:
        with pytest.raises(StartupError, match="secrets never go in this file"):
            create_app(runtime=runtime)
        path.write_text(yaml.safe_dump({"sources": [{"name": "raw", "format": "raw"}]}))
        with pytest.raises(StartupError, match="INTAKE_INBOUND_SECRET_RAW"):
            create_app(runtime=runtime)
    finally:
        runtime.close()


def test_no_secret_or_signature_reaches_the_log(client: FlaskClient, rt: Runtime, keys: Keys,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    raw = message()
    wrong = "wrong-bearer-" + "z" * 30
    assert raw_post(client, raw, Authorization=f"Bearer {wrong}").status_code == 403
    assert raw_post(client, raw, Authorization=f"Bearer {RAW_SECRET}").status_code == 200
    token = uuid.uuid4().hex * 2
    assert mailgun_post(client, message(), key="key-" + "x" * 32, token=token).status_code == 403
    assert mailgun_post(client, message(), token=token).status_code == 200
    response = sendgrid_post(client, keys, message())
    assert response.status_code == 200
    assert sns_post(client, sns_body(keys, raw=message())).status_code == 200
    assert "inbound raw: refused (403)" in caplog.text
    for secret in (RAW_SECRET, wrong, MAILGUN_KEY, keys.sendgrid_public, token, CITIZEN):
        assert secret not in caplog.text
