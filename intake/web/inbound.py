"""``POST /inbound/<source>``: mail pushed over HTTP by a provider (issue 31).

Each source of ``INTAKE_INBOUND_FILE`` has a format (``raw``, ``ses-sns``,
``sendgrid``, ``mailgun``; the checks are :mod:`intake.core.inbound`'s). A
request is answered

- 401 without credentials, 403 with wrong ones (a bad signature, a certificate
  URL outside Amazon SNS, a stale timestamp, a topic not allowed, a Mailgun token
  replayed with another message): nothing is stored;
- 413 over the source's ``max_bytes`` (the body is read in bounded chunks,
  :func:`intake.web.bodies.read_body`, for a declared length and a chunked body alike);
- 429 over the source's ``rate_limit`` (per client address, on the shared counters);
- 200 (202 for quarantine) only once the message is committed, through the same
  store as a polled message (:func:`intake.services.inbound.store_pushed`): posting the
  same message twice stores one entry;
- 503 when the store fails, so the provider retries.

CSRF does not apply (``intake.web.csrf`` exempts this blueprint): the provider
has no session; its signature is the authentication.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import NotFound

from intake.core.failures import TransientError
from intake.core.inbound import (
    RAW_SIGNATURE_HEADER,
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    InboundConfigError,
    InboundSource,
    NotAMessage,
    Refused,
    ses_content,
    sns_url_allowed,
    verify_mailgun,
    verify_raw,
    verify_sendgrid,
    verify_sns,
)
from intake.runtime import Runtime, StartupError
from intake.services.inbound import SnsFetcher, context_for, load_sources, store_pushed
from intake.web.bodies import read_body
from intake.web.forms import client_key
from intake.web.ratelimit import FormRateLimit, counter_storage

log = logging.getLogger("intake.web.inbound")

bp = Blueprint("inbound", __name__)
KEY = "intake.inbound"
MAILGUN_FIELDS = ("body-mime", "message-mime")


class InboundRateLimit(FormRateLimit):
    PREFIX = "intake-inbound"
    SCOPE = "inbound-post"


@dataclass
class InboundState:
    sources: dict[str, InboundSource]
    limits: dict[str, InboundRateLimit]
    storage: Storage
    sns: SnsFetcher


def init_app(app: Flask) -> None:
    runtime: Runtime = app.extensions["intake"]
    try:
        sources = load_sources(runtime.settings)
    except InboundConfigError as exc:
        raise StartupError(str(exc)) from None
    storage = counter_storage(runtime)
    limits: dict[str, InboundRateLimit] = {}
    for source in sources.values():
        try:
            limits[source.name] = InboundRateLimit(FixedWindowRateLimiter(storage),
                                                   source.rate_limit)
        except ValueError:
            raise StartupError(f"INTAKE_INBOUND_FILE: source {source.name!r}: rate_limit is "
                               f"not a rate limit ({source.rate_limit!r}; e.g. 600/minute)"
                               ) from None
    app.extensions[KEY] = InboundState(sources=sources, limits=limits, storage=storage,
                                       sns=SnsFetcher())
    app.register_blueprint(bp)


def _refused(source: InboundSource, refusal: Refused) -> ResponseReturnValue:
    log.warning("inbound %s: refused (%s): %s", source.name, refusal.status, refusal.reason)
    response = jsonify({"error": "unauthorized" if refusal.status == 401 else "forbidden",
                        "reason": refusal.reason})
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="intake-inbound"'
    return response, refusal.status


def _bad(source: InboundSource, status: int, reason: str) -> ResponseReturnValue:
    log.warning("inbound %s: %s (%s)", source.name, reason, status)
    return jsonify({"error": "unprocessable" if status == 422 else "bad request",
                    "reason": reason}), status


def _form_parts(body: bytes) -> dict[str, bytes] | None:
    """The parts of a multipart/form-data ``body`` by field name, as bytes exactly as sent
    (a raw message may be in any charset: werkzeug's form parser would decode it)."""
    content_type = request.headers.get("Content-Type", "")
    if request.mimetype != "multipart/form-data":
        return None
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + body)
    if not message.is_multipart():
        return None
    out: dict[str, bytes] = {}
    for part in message.get_payload():
        if not isinstance(part, email.message.Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name in out:
            continue
        payload = part.get_payload(decode=True)
        out[name] = payload if isinstance(payload, bytes) else b""
    return out


def _text(parts: dict[str, bytes], name: str) -> str:
    return parts.get(name, b"").decode("utf-8", "replace").strip()


def _mailgun_token_fresh(state: InboundState, source: InboundSource, token: str,
                         digest: str) -> bool:
    """A Mailgun token is good for one message: the same message again (a retry) passes,
    another message with a token already used does not. Counted on the shared counters."""
    window = source.max_age_seconds + 300
    token_key = f"intake-inbound/mailgun/{source.name}/" + hashlib.sha256(
        token.encode("utf-8", "replace")).hexdigest()[:40]
    pair_key = f"{token_key}/{digest[:40]}"
    try:
        if state.storage.incr(token_key, window) == 1:
            state.storage.incr(pair_key, window)
            return True
        return state.storage.get(pair_key) > 0
    except Exception as exc:  # noqa: BLE001 - counters down: the signature window still holds
        log.warning("inbound %s: replay counters unavailable (%s)", source.name,
                    type(exc).__name__)
        return True


def _message(state: InboundState, source: InboundSource, body: bytes,
             now: float) -> bytes | ResponseReturnValue:
    """The raw message the request carries, or the answer that refuses it."""
    # The headers the checks read (werkzeug's Headers are case-insensitive; this is not).
    headers = {name: request.headers.get(name, "") for name in (
        "Authorization", RAW_SIGNATURE_HEADER, SENDGRID_SIGNATURE_HEADER,
        SENDGRID_TIMESTAMP_HEADER)}
    if source.format == "raw":
        refusal = verify_raw(source, body, headers, now)
        return _refused(source, refusal) if refusal else body
    if source.format == "sendgrid":
        refusal = verify_sendgrid(source, body, headers, now)
        if refusal:
            return _refused(source, refusal)
        parts = _form_parts(body)
        if parts is None or not parts.get("email"):
            return _bad(source, 400, "no raw 'email' field (turn on 'POST the raw, full MIME "
                                     "message')")
        return parts["email"]
    if source.format == "mailgun":
        parts = _form_parts(body)
        if parts is None:
            return _refused(source, Refused(401, "no timestamp, token or signature"))
        refusal = verify_mailgun(source, _text(parts, "timestamp"), _text(parts, "token"),
                                 _text(parts, "signature"), now)
        if refusal:
            return _refused(source, refusal)
        raw = next((parts[f] for f in MAILGUN_FIELDS if parts.get(f)), None)
        if raw is None:
            return _bad(source, 400, "no body-mime or message-mime field (forward to a URL "
                                     "ending in 'mime')")
        if not _mailgun_token_fresh(state, source, _text(parts, "token"),
                                    hashlib.sha256(raw).hexdigest()):
            return _refused(source, Refused(403, "token already used for another message"))
        return raw
    # ses-sns
    verified = verify_sns(source, body, state.sns.certificate, now)
    if isinstance(verified, Refused):
        return _refused(source, verified)
    if verified.type == "SubscriptionConfirmation":
        url = verified.subscribe_url or ""
        if not sns_url_allowed(url, certificate=False):
            return _refused(source, Refused(403, "SubscribeURL is not an Amazon SNS URL"))
        state.sns.confirm(url)
        log.info("inbound %s: subscription to %s confirmed", source.name, verified.topic_arn)
        return jsonify({"outcome": "subscribed"}), 200
    if verified.type == "UnsubscribeConfirmation":
        log.warning("inbound %s: unsubscribed from %s", source.name, verified.topic_arn)
        return jsonify({"outcome": "ignored"}), 200
    try:
        return ses_content(verified.message)
    except NotAMessage as exc:
        return _bad(source, 422, str(exc))


@bp.post("/inbound/<source>", provide_automatic_options=False)
def receive(source: str) -> ResponseReturnValue:
    state: InboundState = current_app.extensions[KEY]
    src = state.sources.get(source)
    if src is None:
        raise NotFound()
    if not state.limits[src.name].hit(f"{src.name}:{client_key()}"):
        return jsonify({"error": "too many requests"}), 429
    body = read_body(src.max_bytes)
    try:
        found = _message(state, src, body, time.time())
    except TransientError as exc:  # Amazon SNS unreachable (certificate, confirmation)
        log.warning("inbound %s: %s", src.name, exc)
        return jsonify({"error": "unavailable", "reason": "try again later"}), 503
    if not isinstance(found, bytes):
        return found
    if not found.strip():
        return _bad(src, 400, "empty message")
    runtime: Runtime = current_app.extensions["intake"]
    context = context_for(runtime.settings, src, pii_key=runtime.pii_key,
                          agency_addresses=_agency_addresses(runtime))
    try:
        outcome = store_pushed(runtime.db, found, context)
    except Exception as exc:  # noqa: BLE001 - not committed: the provider must retry
        log.error("inbound %s: store failed (%s); answered 503", src.name, type(exc).__name__)
        return jsonify({"error": "unavailable", "reason": "not stored; try again"}), 503
    log.info("inbound %s: %s", src.name, outcome.outcome)
    body_out: dict[str, Any] = {"outcome": outcome.outcome}
    return jsonify(body_out), 202 if outcome.outcome == "quarantined" else 200


def _agency_addresses(runtime: Runtime) -> list[str]:
    try:
        return [a.email for a in runtime.rules.current().agencies.values() if a.email]
    except Exception:  # noqa: BLE001 - no rules loaded: nobody counts as an agency
        return []
