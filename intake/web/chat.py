"""Live Help for the public: ``GET /help``, ``GET /embed/help`` and the conversation.

Server to browser: one Server-Sent Events stream per chat (:func:`stream`), which
replays from ``Last-Event-ID`` and ends after ``INTAKE_HELP_STREAM_SECONDS`` (the
browser reconnects; no worker thread is held for long). Browser to server: plain
POSTs. Without JavaScript and cookies the same pages work: the message form posts
and redirects back, the conversation is an inline frame that refreshes itself, and
the session is the signed token in the address. A cookie, where the browser keeps
it, only offers the visitor the way back to the chat.

Every message is committed before it is acknowledged or announced
(:mod:`intake.services.chat`). No address of the visitor, IP or e-mail, is shown to
an operator; no IP or User-Agent string is stored or logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import refresh
from itsdangerous import BadSignature, URLSafeSerializer

from intake.core.forms import LANGUAGES, FormConfig, origin_allowed, origin_of, pick
from intake.runtime import Runtime, StartupError
from intake.services import chat
from intake.services.chatbus import ChatBus, bus_for
from intake.web.language import TRANSLATIONS_KEY
from intake.web.ratelimit import FormRateLimit, counter_storage
from intake.web.security import DEFAULT_CSP
from intake.web.visits import mark

log = logging.getLogger("intake.web.chat")

bp = Blueprint("help", __name__)

CONFIG_KEY = "intake.help"
BUS_KEY = "intake.help.bus"
RATE_KEY = "intake.help.rate"
COOKIE = "intake_help"
SENSITIVE_CHOICES = ("remove", "seal")
POLL_SECONDS = 5.0  # a stream reads the database at least this often (a lost wake-up)


class ChatRateLimit(FormRateLimit):
    """Messages per chat (``INTAKE_HELP_MESSAGE_RATE``), on the forms' shared counters."""

    PREFIX = "intake-chat"
    SCOPE = "chat-post"


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def help_config() -> chat.HelpConfig:
    config: chat.HelpConfig = current_app.extensions[CONFIG_KEY]
    return config


def bus() -> ChatBus:
    chat_bus: ChatBus = current_app.extensions[BUS_KEY]
    return chat_bus


def bus_url(runtime: Runtime) -> str | None:
    """Redis pub/sub where the broker or the rate-limit counters are Redis."""
    settings = runtime.settings
    for url in (settings.broker_url, settings.rate_limit_url):
        if url and url.startswith(("redis://", "rediss://")):
            return url
    return None


def init_app(app: Flask) -> None:
    runtime: Runtime = app.extensions["intake"]
    try:
        app.extensions[CONFIG_KEY] = chat.load_help(runtime.settings)
    except chat.HelpConfigError as exc:
        raise StartupError(f"INTAKE_HELP: {exc}") from None
    try:
        app.extensions[RATE_KEY] = ChatRateLimit(
            __import__("limits").strategies.FixedWindowRateLimiter(counter_storage(runtime)),
            runtime.settings.help_message_rate)
    except ValueError:
        raise StartupError("INTAKE_HELP_MESSAGE_RATE: not a rate limit (e.g. 20/minute)"
                           ) from None
    chat_bus = app.extensions[BUS_KEY] = bus_for(bus_url(runtime))
    runtime.on_close(chat_bus.close)
    app.register_blueprint(bp)


# -- helpers ----------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(_runtime().settings.derived_key("live help"), salt="chat")


def token_for(public_id: str) -> str:
    return str(_serializer().dumps(public_id))


@contextmanager
def _chat_or_404(token: str) -> Iterator[tuple[Any, Any]]:
    """The session and the chat the signed token names; 404 for a forged one."""
    try:
        public_id = _serializer().loads(token)
    except BadSignature:
        abort(404)
    with _runtime().db.session() as s:
        found = chat.by_public_id(s, str(public_id))
        if found is None:
            abort(404)
        yield s, found


def _form() -> FormConfig | None:
    forms = current_app.extensions.get("intake.forms")
    if forms is None:
        return None
    form: FormConfig | None = forms.forms.get(help_config().form)
    return form


def set_lang(lang: str | None) -> str:
    chosen = lang if lang in LANGUAGES else None
    if chosen is None:
        chosen = request.accept_languages.best_match(LANGUAGES, default="en") or "en"
    g.page_lang = chosen
    refresh()
    g.pop(TRANSLATIONS_KEY, None)
    return chosen


def _embed_args(embed: bool) -> dict[str, Any]:
    return {"embed": "1"} if embed else {}


def _embedded() -> bool:
    return request.args.get("embed") == "1" or request.form.get("embed") == "1"


def _csp(embed: bool, *, frame_self: bool = False) -> str:
    form = _form()
    origins = list(form.allowed_origins) if (embed and form is not None) else []
    if frame_self:
        origins.insert(0, "'self'")
    ancestors = " ".join(origins) or "'none'"
    return DEFAULT_CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")


def _page(template: str, status: int = 200, *, embed: bool = False,
          frame_self: bool = False, **context: Any) -> Response:
    html = render_template(template, embed=embed, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _csp(embed, frame_self=frame_self)
    response.headers["Cache-Control"] = "no-store"
    return response


def _topics(lang: str) -> list[tuple[str, str]]:
    form = _form()
    if form is None:
        return []
    return [(c.value, pick(c.label, lang)) for c in form.topics]


def _check_origin() -> None:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return
    if origin_of(origin) == origin_of(request.host_url):
        return
    form = _form()
    if form is not None and origin_allowed(origin, form.allowed_origins):
        return
    abort(403)


def _wants_json() -> bool:
    return request.mimetype == "application/json" or \
        request.accept_mimetypes.best == "application/json"


def sensitive_labels(kinds: tuple[str, ...] | list[str]) -> list[str]:
    labels = {
        "ssn": _("a Social Security number"),
        "card": _("a payment card number"),
        "aba": _("a bank routing number"),
        "bank_account": _("a bank account number"),
        "birth_date": _("a date of birth"),
        "password": _("a password"),
        "maiden_name": _("a mother's maiden name"),
        "medical": _("medical details"),
    }
    return [labels.get(k, k) for k in kinds]


def _rate_ok(key: str) -> bool:
    rate: ChatRateLimit = current_app.extensions[RATE_KEY]
    return rate.hit(key)


def _choice() -> str | None:
    value = request.form.get("_confirm_sensitive", "")
    return value if value in SENSITIVE_CHOICES else None


# -- the start page ---------------------------------------------------------------------


def _start_page(lang: str, embed: bool, *, status: int = 200, errors: dict[str, str] | None
                = None, values: dict[str, str] | None = None,
                sensitive: tuple[str, ...] = ()) -> Response:
    returning = request.cookies.get(COOKIE, "")
    back = None
    if returning:
        try:
            _serializer().loads(returning)
            back = url_for("help.conversation", token=returning, lang=lang,
                           **_embed_args(embed))
        except BadSignature:
            back = None
    other = "es" if lang == "en" else "en"
    switch = {"href": url_for("help.embed" if embed else "help.start", lang=other),
              "lang": other, "label": "Español" if other == "es" else "English"}
    return _page("help/start.html", status, embed=embed, lang=lang, topics=_topics(lang),
                 errors=errors or {}, values=values or {}, back=back, switch=switch,
                 sensitive=sensitive_labels(sensitive))


@bp.get("/help")
def start() -> ResponseReturnValue:
    lang = set_lang(request.args.get("lang"))
    return _start_page(lang, embed=False)


@bp.get("/embed/help")
def embed() -> ResponseReturnValue:
    lang = set_lang(request.args.get("lang"))
    return _start_page(lang, embed=True)


@bp.post("/help")
def begin() -> ResponseReturnValue:
    _check_origin()
    lang = set_lang(request.form.get("lang"))
    embed_flag = _embedded()
    values = {k: request.form.get(k, "") for k in ("name", "topic", "message")}
    errors: dict[str, str] = {}
    message = values["message"].strip()
    if not message:
        errors["message"] = _("Write your question.")
    elif len(message) > chat.MAX_MESSAGE:
        errors["message"] = _("Write at most %(n)d characters.", n=chat.MAX_MESSAGE)
    topics = dict(_topics(lang))
    if values["topic"] and values["topic"] not in topics:
        errors["topic"] = _("Choose one of the topics.")
    if len(values["name"]) > chat.MAX_NAME:
        errors["name"] = _("Write at most %(n)d characters.", n=chat.MAX_NAME)
    if errors:
        mark("invalid")
        return _start_page(lang, embed_flag, status=422, errors=errors, values=values)
    runtime = _runtime()
    # The client's address is hashed for the limit and forgotten (never stored).
    from intake.web.forms import client_key

    if not _rate_ok("start:" + client_key()):
        abort(429)
    checked = chat.check_message(message, runtime.pii_key, _choice(), lang)
    if checked.warn:
        return _start_page(lang, embed_flag, values=values, sensitive=checked.warn)
    with runtime.db.session() as s:
        started = chat.start(s, rules=runtime.rules, originals_key=runtime.originals_key,
                             topic=values["topic"], visitor_name=values["name"] or None,
                             language=lang, browser=chat.browser_of(request.user_agent.string),
                             first=checked)
        s.commit()
    bus().publish(f"agency:{started.agency_id}")
    mark("submission")
    token = token_for(started.public_id)
    response = redirect(url_for("help.conversation", token=token, lang=lang,
                                **_embed_args(embed_flag)), code=303)
    # Only lets the visitor come back; the address carries the session.
    response.set_cookie(COOKIE, token, max_age=12 * 3600, path="/", secure=request.is_secure,
                        httponly=True, samesite="Lax")
    return response


# -- the conversation -------------------------------------------------------------------


def _state_info(found: Any) -> dict[str, Any]:
    config = help_config()
    unavailable = found.state == "waiting" and (
        not config.open_now(found.agency_id) or chat.waited_too_long(config, found))
    # Seconds until a waiting visitor is offered to leave a message (the page's script
    # shows the offer then; without script the conversation frame links to it).
    wait_left = 0
    if found.state == "waiting" and not unavailable:
        waited = (chat.utcnow() - chat.waiting_since(found)).total_seconds()
        wait_left = max(1, int(config.wait_for(found.agency_id) - waited) + 1)
    return {"state": found.state, "unavailable": unavailable, "wait_left": wait_left,
            "operator": found.operator_name or ""}


def conversation_page(s: Any, found: Any, token: str, lang: str, embed_flag: bool, *,
                      status: int = 200, draft: str = "", sensitive: tuple[str, ...] = (),
                      error: str = "") -> Response:
    events = chat.events_after(s, found.id, 0, limit=chat.MAX_MESSAGES + 10)
    last = events[-1].id if events else 0
    record = None
    if found.entry_id is not None:
        status_token = chat.status_token(found, _runtime().originals_key)
        from intake.web.forms import _status_url

        record = {"number": chat.record_number(s, found.entry_id),
                  "status_url": _status_url(status_token) if status_token else None}
    survey = help_config().exit_survey
    return _page("help/conversation.html", status, embed=embed_flag, frame_self=False,
                 lang=lang, token=token, chat=found, events=events, last=last,
                 info=_state_info(found), draft=draft, sensitive=sensitive_labels(sensitive),
                 error=error, record=record, survey=survey, pick=pick)


@bp.get("/help/c/<token>")
def conversation(token: str) -> ResponseReturnValue:
    with _chat_or_404(token) as (s, found):
        lang = set_lang(request.args.get("lang") or found.language)
        return conversation_page(s, found, token, lang, _embedded())


@bp.get("/help/c/<token>/log")
def log_frame(token: str) -> ResponseReturnValue:
    """The conversation alone, refreshing itself: the page without JavaScript frames it."""
    with _chat_or_404(token) as (s, found):
        lang = set_lang(request.args.get("lang") or found.language)
        events = chat.events_after(s, found.id, 0, limit=chat.MAX_MESSAGES + 10)
        live = found.state in ("waiting", "active")
        back_url = url_for("help.conversation", token=token, lang=lang,
                           **_embed_args(_embedded()))
        return _page("help/log.html", embed=_embedded(), frame_self=True, lang=lang,
                     events=events, info=_state_info(found), refresh=live, viewer="visitor",
                     back_url=back_url)


@bp.post("/help/c/<token>/messages")
def send(token: str) -> ResponseReturnValue:
    _check_origin()
    # Counted before the chat is read: the counters may take the database's writer turn.
    if not _rate_ok("chat:" + token[:200]):
        abort(429)
    runtime = _runtime()
    with _chat_or_404(token) as (s, found):
        lang = set_lang(request.form.get("lang") or found.language)
        embed_flag = _embedded()
        text = (request.form.get("message") or "").strip()
        if not text or len(text) > chat.MAX_MESSAGE:
            error = _("Write your message.") if not text else \
                _("Write at most %(n)d characters.", n=chat.MAX_MESSAGE)
            if _wants_json():
                return jsonify({"error": "invalid", "message": error}), 422
            return conversation_page(s, found, token, lang, embed_flag, status=422,
                                     draft=text[:chat.MAX_MESSAGE], error=error)
        checked = chat.check_message(text, runtime.pii_key, _choice(), lang)
        if checked.warn:
            if _wants_json():
                return jsonify({"error": "sensitive-data", "kinds": list(checked.warn),
                                "labels": sensitive_labels(checked.warn),
                                "confirm_field": "_confirm_sensitive",
                                "choices": list(SENSITIVE_CHOICES)}), 422
            return conversation_page(s, found, token, lang, embed_flag, draft=text,
                                     sensitive=checked.warn)
        try:
            event_id = chat.post(s, found, runtime.originals_key, author="visitor",
                                 name=found.visitor_name or "", message=checked)
        except chat.ChatError as exc:
            if _wants_json():
                return jsonify({"error": "ended", "message": str(exc)}), 409
            return conversation_page(s, found, token, lang, embed_flag, status=409,
                                     error=_("This chat has ended."))
        s.commit()  # stored before acknowledged and before announced
        chat_id = found.id
    bus().publish(str(chat_id))
    if _wants_json():
        return jsonify({"status": "stored", "id": event_id}), 201
    return redirect(url_for("help.conversation", token=token, lang=lang,
                            **_embed_args(embed_flag)) + f"#m{event_id}",
                    code=303)


def event_stream(chat_id: int, after: int, *, viewer: str) -> Iterator[str]:
    """The stream: every event after ``after``, once and in order, read from the
    database on each wake-up (the bus says only "something new"), until the stream's
    time is up; the browser then reconnects with Last-Event-ID."""
    runtime = _runtime()
    deadline = time.monotonic() + runtime.settings.help_stream_seconds
    yield "retry: 1000\n\n"
    with bus().subscribe(str(chat_id)) as waiter:
        while True:
            with runtime.db.session() as s:
                events = chat.events_after(s, chat_id, after)
            for event in events:
                after = event.id
                yield (f"id: {event.id}\nevent: message\n"
                       f"data: {json.dumps(event.to_dict(), ensure_ascii=False)}\n\n")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if not waiter.wait(min(POLL_SECONDS, remaining)):
                yield ": keep-alive\n\n"


def queue_stream(agency_id: str) -> Iterator[str]:
    """An agency's queue: one "changed" event per announcement (no data, no names)."""
    deadline = time.monotonic() + _runtime().settings.help_stream_seconds
    yield "retry: 2000\n\n"
    with bus().subscribe(f"agency:{agency_id}") as waiter:
        while (remaining := deadline - time.monotonic()) > 0:
            if waiter.wait(min(POLL_SECONDS, remaining)):
                yield "event: changed\ndata: {}\n\n"
            else:
                yield ": keep-alive\n\n"


def queue_response(agency_id: str) -> Response:
    response = Response(stream_with_context(queue_stream(agency_id)),
                        mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


def sse_response(chat_id: int, after: int, viewer: str) -> Response:
    response = Response(stream_with_context(event_stream(chat_id, after, viewer=viewer)),
                        mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@bp.get("/help/c/<token>/events")
def stream(token: str) -> ResponseReturnValue:
    with _chat_or_404(token) as (s, found):
        chat_id = found.id
    return sse_response(chat_id, _last_event_id(), "visitor")


@bp.post("/help/c/<token>/end")
def finish(token: str) -> ResponseReturnValue:
    """The visitor ends the chat (or leaves it as a message when nobody is available):
    the exit interview's answers and, if asked for, the address for a transcript copy."""
    _check_origin()
    runtime = _runtime()
    with _chat_or_404(token) as (s, found):
        lang = set_lang(request.form.get("lang") or found.language)
        embed_flag = _embedded()
        survey = help_config().exit_survey
        answers = chat.validate_exit(survey, {k: request.form.getlist(k)
                                              for k in request.form})
        copy_to = None
        if request.form.get("copy") == "1":
            address = (request.form.get("email") or "").strip()
            if not chat.valid_email(address):
                return conversation_page(s, found, token, lang, embed_flag, status=422,
                                         error=_("Enter an e-mail address like "
                                                 "name@example.com for the copy."))
            copy_to = address
        by = "message" if request.form.get("leave") == "1" else "visitor"
        if found.entry_id is None:
            chat.end(s, found, chat.Ending(
                by=by, answers=answers, survey_id=survey.id if survey and answers else None,
                copy_to=copy_to), originals_key=runtime.originals_key,
                pii_key=runtime.pii_key, record_prefix=runtime.settings.record_prefix,
                timezone=runtime.settings.timezone)
        elif answers:
            chat.add_exit_answers(s, found, survey.id if survey else "", answers)
        s.commit()
        chat_id, agency_id = found.id, found.agency_id
    bus().publish(str(chat_id))
    bus().publish(f"agency:{agency_id}")
    return redirect(url_for("help.conversation", token=token, lang=lang,
                            **_embed_args(embed_flag)), code=303)
