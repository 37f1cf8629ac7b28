"""Inbound mail pushed over HTTP: which sources exist and whether a request is really theirs.

Pure decisions for ``POST /inbound/<source>`` (:mod:`intake.web.inbound`):

* :func:`load_inbound_config` checks the parsed ``INTAKE_INBOUND_FILE`` (the caller
  reads the YAML and each source's secret: from ``secret_file`` or the variable
  ``INTAKE_INBOUND_SECRET_<NAME>``, never from the YAML itself);
* one verifier per format, each answering :class:`Refused` (401: nothing to check
  against, 403: checked and wrong) or the raw RFC 822 bytes to store:

  - ``raw``: the body is the message; ``Authorization: Bearer <secret>`` or
    ``X-Intake-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
    (the scheme of intake's own outgoing webhooks), compared in constant time;
  - ``ses-sns``: an Amazon SNS message (signature versions 1 and 2 checked against the
    certificate at ``SigningCertURL``, which must be an ``https://sns.<region>.amazonaws.com/``
    ``….pem`` URL; ``Timestamp`` fresh; ``TopicArn`` one of the source's topics) whose
    ``Message`` is an SES "Received" notification carrying the message (``content``);
  - ``sendgrid``: Inbound Parse multipart with the raw ``email`` field, signed by
    SendGrid's ECDSA P-256 key over ``timestamp + body``;
  - ``mailgun``: a route's ``body-mime``/``message-mime`` with HMAC-SHA256 of
    ``timestamp + token`` under the signing key, and a replay window.

Standard library and ``cryptography`` only: no I/O, no framework.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

FORMATS = ("raw", "ses-sns", "sendgrid", "mailgun")
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_RATE_LIMIT = "600/minute"
# How old a signed timestamp may be: SNS retries for up to an hour by default policy
# (and longer under a custom one); SendGrid and Mailgun retry within minutes.
DEFAULT_MAX_AGE = {"raw": 300, "ses-sns": 3600, "sendgrid": 600, "mailgun": 900}

RAW_SIGNATURE_HEADER = "X-Intake-Signature"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# https://sns.<region>.amazonaws.com/<name>.pem (and the China partition's .com.cn).
_SNS_HOST = re.compile(r"^sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?$")
_SNS_CERT_PATH = re.compile(r"^/[A-Za-z0-9_-]+\.pem$")
_SNS_CONFIRM_PATH = re.compile(r"^/?$")
_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class InboundConfigError(ValueError):
    """The inbound sources file is wrong; the message names the source and the problem."""


@dataclass(frozen=True)
class Refused:
    """The request is not the source's: ``status`` 401 (missing credentials) or 403 (wrong)."""

    status: int
    reason: str


@dataclass(frozen=True)
class InboundSource:
    name: str
    format: str
    secret: bytes = field(repr=False, default=b"")
    mailbox: str = ""
    form: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_age_seconds: int = 300
    rate_limit: str = DEFAULT_RATE_LIMIT
    topic_arns: tuple[str, ...] = ()  # ses-sns: the topics whose messages are accepted


def secret_variable(name: str) -> str:
    """The environment variable that holds source ``name``'s secret."""
    return "INTAKE_INBOUND_SECRET_" + name.upper().replace("-", "_")


def load_inbound_config(data: Any, secrets: Mapping[str, bytes],
                        source: str = "INTAKE_INBOUND_FILE") -> dict[str, InboundSource]:
    """The sources of the parsed YAML ``data``; ``secrets`` maps a source name to its
    secret (read by the caller from its ``secret_file`` or :func:`secret_variable`)."""
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise InboundConfigError(f"{source}: expected a mapping with a list 'sources'")
    out: dict[str, InboundSource] = {}
    for index, item in enumerate(data["sources"], start=1):
        where = f"{source}: source {index}"
        if not isinstance(item, dict):
            raise InboundConfigError(f"{where}: expected a mapping")
        unknown = set(item) - {"name", "format", "mailbox", "form", "max_bytes",
                               "max_age_seconds", "rate_limit", "topic_arns", "secret_file"}
        if "secret" in item:
            raise InboundConfigError(f"{where}: secrets never go in this file; use "
                                     "secret_file or the INTAKE_INBOUND_SECRET_<NAME> variable")
        if unknown:
            raise InboundConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = item.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InboundConfigError(f"{where}: name must be lowercase letters, digits and "
                                     "dashes (at most 40)")
        where = f"{source}: source {name!r}"
        if name in out:
            raise InboundConfigError(f"{where}: named twice")
        fmt = item.get("format")
        if fmt not in FORMATS:
            raise InboundConfigError(f"{where}: format must be one of {', '.join(FORMATS)}")
        secret = secrets.get(name, b"")
        if fmt != "ses-sns" and not secret:
            raise InboundConfigError(f"{where}: no secret; set {secret_variable(name)} or "
                                     "secret_file")
        if fmt in ("raw", "mailgun") and len(secret) < 16:
            raise InboundConfigError(f"{where}: the secret must be at least 16 bytes")
        if fmt == "sendgrid":
            try:
                sendgrid_public_key(secret)
            except ValueError:
                raise InboundConfigError(f"{where}: the secret must be SendGrid's "
                                         "verification key (base64 or PEM, ECDSA P-256)"
                                         ) from None
        topics = item.get("topic_arns", [])
        if not isinstance(topics, list) or not all(
                isinstance(t, str) and t.startswith("arn:") for t in topics):
            raise InboundConfigError(f"{where}: topic_arns must be a list of SNS topic ARNs")
        if fmt == "ses-sns" and not topics:
            raise InboundConfigError(f"{where}: an ses-sns source needs topic_arns")
        max_bytes = item.get("max_bytes", DEFAULT_MAX_BYTES)
        max_age = item.get("max_age_seconds", DEFAULT_MAX_AGE[fmt])
        for key, value in (("max_bytes", max_bytes), ("max_age_seconds", max_age)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InboundConfigError(f"{where}: {key} must be a positive whole number")
        rate = item.get("rate_limit", DEFAULT_RATE_LIMIT)
        if not isinstance(rate, str) or not rate.strip():
            raise InboundConfigError(f"{where}: rate_limit must be like 600/minute")
        mailbox = item.get("mailbox", f"http:{name}")
        form = item.get("form")
        if not isinstance(mailbox, str) or (form is not None and not isinstance(form, str)):
            raise InboundConfigError(f"{where}: mailbox and form must be text")
        out[name] = InboundSource(name=name, format=fmt, secret=secret, mailbox=mailbox[:100],
                                  form=form, max_bytes=max_bytes, max_age_seconds=max_age,
                                  rate_limit=rate, topic_arns=tuple(topics))
    return out


def _fresh(timestamp: float, now: float, max_age: int) -> bool:
    # A little slack into the future for clock skew.
    return now - max_age <= timestamp <= now + 300


# -- raw ---------------------------------------------------------------------------------


def verify_raw(source: InboundSource, body: bytes, headers: Mapping[str, str],
               now: float) -> Refused | None:
    """Bearer secret or the timestamped HMAC header; None when the request is the source's."""
    auth = headers.get("Authorization", "")
    signature = headers.get(RAW_SIGNATURE_HEADER, "")
    if auth.startswith("Bearer "):
        given = auth[len("Bearer "):].strip().encode("utf-8", "replace")
        if hmac.compare_digest(hashlib.sha256(given).digest(),
                               hashlib.sha256(source.secret).digest()):
            return None
        return Refused(403, "wrong bearer secret")
    if not signature:
        return Refused(401, "no Authorization bearer or X-Intake-Signature")
    try:
        parts = dict(p.strip().split("=", 1) for p in signature.split(","))
        timestamp = int(parts["t"])
        given_mac = parts["v1"]
    except (ValueError, KeyError):
        return Refused(403, "unreadable X-Intake-Signature")
    expected = hmac.new(source.secret, f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given_mac):
        return Refused(403, "wrong signature")
    if not _fresh(timestamp, now, source.max_age_seconds):
        return Refused(403, "signature timestamp outside the allowed window")
    return None


def sign_raw(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Intake-Signature`` value a sender of the raw format computes."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# -- Mailgun -----------------------------------------------------------------------------


def verify_mailgun(source: InboundSource, timestamp: str, token: str, signature: str,
                   now: float) -> Refused | None:
    """HMAC-SHA256(signing key, timestamp + token) == signature, timestamp in the window.

    The signature does not cover the message: the caller also refuses a token seen
    before with a different body (:mod:`intake.web.inbound`)."""
    if not (timestamp and token and signature):
        return Refused(401, "no timestamp, token or signature")
    expected = hmac.new(source.secret, (timestamp + token).encode("utf-8", "replace"),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Refused(403, "wrong signature")
    try:
        at = float(timestamp)
    except ValueError:
        return Refused(403, "unreadable timestamp")
    if not _fresh(at, now, source.max_age_seconds):
        return Refused(403, "timestamp outside the replay window")
    return None


# -- SendGrid ----------------------------------------------------------------------------


def sendgrid_public_key(key: bytes) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER (as its settings page shows it) or PEM."""
    text = key.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_public_key(text)
        else:
            loaded = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError("not a public key") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA key")
    return loaded


def verify_sendgrid(source: InboundSource, body: bytes, headers: Mapping[str, str],
                    now: float) -> Refused | None:
    """ECDSA (SHA-256) signature of ``timestamp + body`` by SendGrid's key; fresh timestamp."""
    signature = headers.get(SENDGRID_SIGNATURE_HEADER, "")
    timestamp = headers.get(SENDGRID_TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        return Refused(401, "no SendGrid signature or timestamp header")
    try:
        der = base64.b64decode(signature, validate=True)
        sendgrid_public_key(source.secret).verify(
            der, timestamp.encode("utf-8", "replace") + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, binascii.Error, InvalidSignature):
        return Refused(403, "wrong signature")
    try:
        at = float(timestamp)
    except ValueError:
        return Refused(403, "unreadable timestamp")
    if not _fresh(at, now, source.max_age_seconds):
        return Refused(403, "timestamp outside the allowed window")
    return None


# -- Amazon SNS (SES) --------------------------------------------------------------------


def sns_url_allowed(url: str, *, certificate: bool) -> bool:
    """An https URL on ``sns.<region>.amazonaws.com`` (no port, user or fragment); a
    certificate's path is one ``….pem`` file."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme != "https" or parts.username or parts.password or parts.port \
            or parts.fragment or not _SNS_HOST.match(parts.netloc):
        return False
    if certificate:
        return not parts.query and bool(_SNS_CERT_PATH.match(parts.path))
    return bool(_SNS_CONFIRM_PATH.match(parts.path)) and "Action=ConfirmSubscription" in parts.query


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs: ``Key\\nValue\\n`` for each key of the type, in order."""
    if message.get("Type") == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if "Subject" not in message:
            keys.remove("Subject")
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys).encode("utf-8")


@dataclass(frozen=True)
class SnsMessage:
    type: str
    topic_arn: str
    message: str
    subscribe_url: str | None


def parse_sns(body: bytes) -> SnsMessage | Refused:
    """The JSON of an SNS request; 403 when it is not one (nothing trusted yet)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Refused(401, "not an SNS message (not JSON)")
    if not isinstance(data, dict) or data.get("Type") not in _SNS_TYPES:
        return Refused(401, "not an SNS message")
    needed = ["Message", "MessageId", "Timestamp", "TopicArn", "Type", "Signature",
              "SignatureVersion", "SigningCertURL"]
    if data["Type"] != "Notification":
        needed += ["SubscribeURL", "Token"]
    if not all(isinstance(data.get(k), str) for k in needed):
        return Refused(401, "an SNS field is missing")
    return SnsMessage(type=data["Type"], topic_arn=data["TopicArn"], message=data["Message"],
                      subscribe_url=data.get("SubscribeURL"))


def verify_sns(source: InboundSource, body: bytes, certificate: Callable[[str], bytes],
               now: float) -> SnsMessage | Refused:
    """The SNS message of ``body`` if its signature, certificate URL, topic and timestamp are
    right; ``certificate(url)`` returns the PEM (the caller fetches and caches it)."""
    parsed = parse_sns(body)
    if isinstance(parsed, Refused):
        return parsed
    data = json.loads(body.decode("utf-8"))
    cert_url = data["SigningCertURL"]
    if not sns_url_allowed(cert_url, certificate=True):
        return Refused(403, "SigningCertURL is not an Amazon SNS certificate URL")
    version = data["SignatureVersion"]
    if version not in ("1", "2"):
        return Refused(403, "unknown SignatureVersion")
    try:
        pem = certificate(cert_url)
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return Refused(403, "the signing certificate cannot be read")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return Refused(403, "the signing certificate has no RSA key")
    when = datetime.fromtimestamp(now, UTC)
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        return Refused(403, "the signing certificate is not valid now")
    try:
        signature = base64.b64decode(data["Signature"], validate=True)
        key.verify(signature, sns_string_to_sign(data), padding.PKCS1v15(),
                   hashes.SHA1() if version == "1" else hashes.SHA256())  # noqa: S303 - SNS v1
    except (ValueError, binascii.Error, InvalidSignature, KeyError):
        return Refused(403, "wrong signature")
    if parsed.topic_arn not in source.topic_arns:
        return Refused(403, "topic not allowed for this source")
    try:
        at = datetime.fromisoformat(data["Timestamp"].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return Refused(403, "unreadable Timestamp")
    if not _fresh(at, now, source.max_age_seconds):
        return Refused(403, "Timestamp outside the allowed window")
    return parsed


class NotAMessage(ValueError):
    """A verified notification without a message to store (the reason says why)."""


def ses_content(message: str) -> bytes:
    """The raw message of an SES "Received" notification (an SNS action's ``content``)."""
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        raise NotAMessage("the SNS Message is not an SES notification") from None
    if not isinstance(data, dict) or data.get("notificationType") != "Received":
        raise NotAMessage("not an SES 'Received' notification")
    content = data.get("content")
    if not isinstance(content, str):
        raise NotAMessage("the SES notification has no content (use an SNS action; an S3 "
                          "action's messages are not fetched)")
    receipt = data.get("receipt")
    action = receipt.get("action") if isinstance(receipt, dict) else None
    encoding = action.get("encoding") if isinstance(action, dict) else None
    if isinstance(encoding, str) and encoding.upper() == "BASE64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error:
            raise NotAMessage("the SES content is not base64") from None
    return content.encode("utf-8", "replace")
