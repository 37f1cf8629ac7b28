"""Live Help for operators: ``/staff/help`` (the queue), ``/staff/help/<id>`` (a chat).

Operators (role ``operator``, or the agency's administrators) see the chats routed to
their agency; they accept one, chat, transfer it to another agency with a reason, and
end it. They see the visitor's name as entered, the topic, the browser family and
version and the language; no address. Every view of a chat is logged (P8) and joins
the transcript entry's access log.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import refresh

from intake.core.roles import CHAT_ROLES
from intake.runtime import Runtime
from intake.services import chat
from intake.services.staff import StaffAccount
from intake.web import chat as visitor
from intake.web.language import TRANSLATIONS_KEY
from intake.web.staff.views import _runtime, _user, bp, login_required

LANGUAGES = ("en", "es")


def _operator() -> StaffAccount:
    user = _user()
    if user.role not in CHAT_ROLES:
        abort(403)
    return user


def _lang() -> dict[str, Any]:
    asked = request.args.get("lang") or request.form.get("lang") or ""
    lang = asked if asked in LANGUAGES else (
        request.accept_languages.best_match(LANGUAGES, default="en") or "en")
    g.page_lang = lang
    refresh()
    g.pop(TRANSLATIONS_KEY, None)
    return {"lang": asked} if asked in LANGUAGES else {}


def _chat_for(s: Any, user: StaffAccount, chat_id: int) -> Any:
    found = s.get(chat.ChatSession, chat_id)
    # Another agency's chat is "not found", as another agency's entry is.
    if found is None or (found.agency_id != user.agency_id and found.operator_id != user.id):
        abort(404)
    return found


def _publish(*keys: str) -> None:
    for key in keys:
        visitor.bus().publish(key)


@bp.get("/help")
@login_required
def help_queue() -> ResponseReturnValue:
    user = _operator()
    lang_args = _lang()
    config = visitor.help_config()
    with _runtime().db.session() as s:
        rows = [(c, chat.summary(c), chat.waited_too_long(config, c))
                for c in chat.queue(s, user.agency_id)]
        name = chat.operator_name(s, user)
    return render_template("staff/help_queue.html", rows=rows, display_name=name,
                           open_now=config.open_now(user.agency_id), lang_args=lang_args)


@bp.get("/help/queue/events")
@login_required
def help_queue_events() -> ResponseReturnValue:
    """Server-Sent Events: "changed" whenever a chat of the agency starts, moves or ends."""
    user = _operator()
    return visitor.queue_response(user.agency_id)


@bp.post("/help/name")
@login_required
def help_name() -> ResponseReturnValue:
    user = _operator()
    lang_args = _lang()
    with _runtime().db.session() as s:
        try:
            chat.set_operator_name(s, user, request.form.get("display_name", ""))
        except chat.ChatError as exc:
            flash(_(str(exc)), "error")
            return redirect(url_for("staff.help_queue", **lang_args), code=303)
        s.commit()
    flash(_("Saved."), "status")
    return redirect(url_for("staff.help_queue", **lang_args), code=303)


def _chat_page(chat_id: int, lang_args: dict[str, Any], status: int = 200,
               sensitive: tuple[str, ...] = (), draft: str = "") -> Response:
    user = _operator()
    runtime: Runtime = _runtime()
    with runtime.db.session() as s:
        found = _chat_for(s, user, chat_id)
        chat.log_view(s, user, found)
        events = chat.events_after(s, found.id, 0, limit=chat.MAX_MESSAGES + 10)
        agencies = sorted((a.id, a.name) for a in runtime.rules.current().agencies.values()
                          if a.id != found.agency_id)
        record = chat.record_number(s, found.entry_id) if found.entry_id else None
        html = render_template("staff/help_chat.html", chat=found, info=chat.summary(found),
                               events=events, agencies=agencies, record=record,
                               sensitive=visitor.sensitive_labels(sensitive), draft=draft,
                               mine=found.operator_id == user.id, lang_args=lang_args,
                               viewer="operator")
        s.commit()
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/help/<int:chat_id>")
@login_required
def help_chat(chat_id: int) -> ResponseReturnValue:
    return _chat_page(chat_id, _lang())


@bp.get("/help/<int:chat_id>/log")
@login_required
def help_log(chat_id: int) -> ResponseReturnValue:
    user = _operator()
    _lang()
    with _runtime().db.session() as s:
        found = _chat_for(s, user, chat_id)
        events = chat.events_after(s, found.id, 0, limit=chat.MAX_MESSAGES + 10)
        html = render_template("help/log.html", events=events, info=chat.summary(found),
                               refresh=found.state in ("waiting", "active"),
                               viewer="operator", lang=g.page_lang)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = visitor._csp(False, frame_self=True)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/help/<int:chat_id>/events")
@login_required
def help_events(chat_id: int) -> ResponseReturnValue:
    user = _operator()
    with _runtime().db.session() as s:
        found = _chat_for(s, user, chat_id)
        chat_id = found.id
    after = visitor._last_event_id()
    return visitor.sse_response(chat_id, after, "operator")


def _act(chat_id: int, action: str) -> ResponseReturnValue:
    user = _operator()
    lang_args = _lang()
    runtime = _runtime()
    keys = [str(chat_id)]
    with runtime.db.session() as s:
        found = _chat_for(s, user, chat_id)
        keys.append(f"agency:{found.agency_id}")
        try:
            if action == "accept":
                chat.accept(s, found, user, runtime.originals_key)
            elif action == "transfer":
                chat.transfer(s, found, user, runtime.rules, runtime.originals_key,
                              request.form.get("agency", ""), request.form.get("reason", ""))
                keys.append(f"agency:{found.agency_id}")
            elif action == "end":
                if found.state not in ("waiting", "active"):
                    raise chat.ChatError("This chat has ended.")
                chat.end(s, found, chat.Ending(by="operator"),
                         originals_key=runtime.originals_key, pii_key=runtime.pii_key,
                         record_prefix=runtime.settings.record_prefix,
                         timezone=runtime.settings.timezone)
            elif action == "message":
                text = (request.form.get("message") or "").strip()
                if not text or len(text) > chat.MAX_MESSAGE:
                    raise chat.ChatError("Write a message of at most 4000 characters.")
                if found.operator_id != user.id:
                    raise chat.ChatError("Accept the chat first.")
                choice = request.form.get("_confirm_sensitive")
                checked = chat.check_message(
                    text, runtime.pii_key, choice if choice in ("remove", "seal") else None,
                    found.language)
                if checked.warn:
                    if visitor._wants_json():
                        return {"error": "sensitive-data", "kinds": list(checked.warn)}, 422
                    return _chat_page(chat_id, lang_args, sensitive=checked.warn, draft=text)
                event_id = chat.post(s, found, runtime.originals_key, author="operator",
                                     name=found.operator_name or "", message=checked)
                s.commit()
                _publish(*keys)
                if visitor._wants_json():
                    return {"status": "stored", "id": event_id}, 201
                return redirect(url_for("staff.help_chat", chat_id=chat_id, **lang_args),
                                code=303)
        except chat.ChatError as exc:
            if visitor._wants_json():
                return {"error": "refused", "message": str(exc)}, 409
            flash(_(str(exc)), "error")
            return redirect(url_for("staff.help_chat", chat_id=chat_id, **lang_args),
                            code=303)
        s.commit()
    _publish(*keys)
    if action == "transfer":
        flash(_("The chat was transferred."), "status")
        return redirect(url_for("staff.help_queue", **lang_args), code=303)
    return redirect(url_for("staff.help_chat", chat_id=chat_id, **lang_args), code=303)


@bp.post("/help/<int:chat_id>/accept")
@login_required
def help_accept(chat_id: int) -> ResponseReturnValue:
    return _act(chat_id, "accept")


@bp.post("/help/<int:chat_id>/messages")
@login_required
def help_send(chat_id: int) -> ResponseReturnValue:
    return _act(chat_id, "message")


@bp.post("/help/<int:chat_id>/transfer")
@login_required
def help_transfer(chat_id: int) -> ResponseReturnValue:
    return _act(chat_id, "transfer")


@bp.post("/help/<int:chat_id>/end")
@login_required
def help_end(chat_id: int) -> ResponseReturnValue:
    return _act(chat_id, "end")
