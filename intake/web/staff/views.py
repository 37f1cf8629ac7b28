"""Views of the staff inbox. Thin: parse, call one service, commit, answer."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms.validators import ValidationError

from intake.core.pii.redact import LABELS as PII_LABELS
from intake.runtime import Runtime
from intake.services import inbox, mail_admin, records, renditions
from intake.services import staff as accounts
from intake.services.inbox import Entry, EntryStatus
from intake.services.staff import ADMIN_ROLES, StaffAccount

log = logging.getLogger("intake.staff")

bp = Blueprint("staff", __name__, url_prefix="/staff")

SESSION_KEY = "staff_session"
PENDING = "staff_pending"
PENDING_SECONDS = 300
# Translated where shown (flask_babel.gettext); the same words for every wrong answer.
LOGIN_FAILED = "The e-mail address, password or code is not right, or the account is disabled."
CODE_NEEDED = ("This account has had many failed logins. Enter your password together with "
               "the 6-digit code from your authenticator app.")

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])

STATUS_LABELS = {"new": "New", "open": "Open", "waiting": "Waiting", "closed": "Closed"}


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


# -- every request ---------------------------------------------------------------------


@bp.before_request
def _check_post() -> ResponseReturnValue | None:
    if request.method != "POST":
        return None
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # not a URL at all ("https://[::1"): not this site either
            abort(403)
        if netloc != request.host:
            abort(403)
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except ValidationError:
        log.info("staff POST refused: CSRF token missing or invalid")
        abort(400)
    return None


@bp.before_request
def _load_user() -> None:
    g.staff_user = None
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return
    with _runtime().db.session() as s:
        user = accounts.resume_session(s, token)
    if user is None:
        session.pop(SESSION_KEY, None)
    g.staff_user = user


# The pages translated in full (English and Spanish); the others stay in English.
TRANSLATED = frozenset({"staff.login", "staff.login_code", "staff.accounts_view",
                        "staff.account_view", "staff.account_action", "staff.own_password"})
LANGUAGES = ("en", "es")


@bp.before_request
def _choose_language() -> None:
    if request.endpoint not in TRANSLATED:
        return
    asked = request.args.get("lang", "")
    g.page_lang = asked if asked in LANGUAGES else (
        request.accept_languages.best_match(LANGUAGES, default="en") or "en")


def _lang_args() -> dict[str, Any]:
    """``lang`` for the links of a page whose language was asked for in its address."""
    asked = request.args.get("lang", "")
    return {"lang": asked} if asked in LANGUAGES else {}


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    return {"lang_args": _lang_args(), "csrf_token": generate_csrf, "user": g.get("staff_user"),
            "status_labels": STATUS_LABELS, "role_labels": accounts.ROLE_LABELS,
            "is_admin": _is_admin(g.get("staff_user")), "pii_labels": PII_LABELS}


def _is_admin(user: StaffAccount | None) -> bool:
    return user is not None and user.role in ADMIN_ROLES


def _password_change_due() -> ResponseReturnValue | None:
    # After an administrator's reset, nothing but choosing a new password (or logging out).
    if g.staff_user.password_must_change and request.endpoint != "staff.own_password":
        return redirect(url_for("staff.own_password"), code=303)
    return None


def login_required(view: View) -> View:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if g.get("staff_user") is None:
            if request.method == "GET":
                return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
            abort(403)
        return _password_change_due() or view(*args, **kwargs)

    return cast(View, wrapper)


def admin_required(view: View) -> View:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if g.get("staff_user") is None:
            if request.method == "GET":
                return redirect(url_for("staff.login"))
            abort(403)
        if not _is_admin(g.staff_user):
            abort(403)
        return _password_change_due() or view(*args, **kwargs)

    return cast(View, wrapper)


def _user() -> StaffAccount:
    user: StaffAccount = g.staff_user
    return user


def _safe_next(target: str | None) -> str:
    # Only a path on this site under /staff/: never an open redirect.
    if target and target.startswith("/staff/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return url_for("staff.inbox_view")


# -- login and logout ----------------------------------------------------------------------


def _attempt() -> accounts.Attempt:
    settings = _runtime().settings
    return accounts.Attempt(client=request.remote_addr or "unknown",
                            secret=settings.derived_key(accounts.THROTTLE_KEY_PURPOSE),
                            allow_without_totp=settings.allow_staff_without_totp)


def _refused(template: str, step: accounts.LoginStep, **context: Any) -> ResponseReturnValue:
    """The answer to a refused step: the same words whatever was wrong, except a throttle."""
    log.info("staff login step refused (%s)", step.reason)
    if step.reason == "throttled" and step.retry_at is not None:
        wait = max(1, int((step.retry_at - datetime.now(UTC)).total_seconds()) + 1)
        error = _("Too many failed attempts. Try again after %(time)s UTC.",
                  time=step.retry_at.strftime("%H:%M"))
        html = render_template(template, error=error, **context)
        return html, 429, {"Retry-After": str(wait)}
    if step.reason == "code-needed":
        context["ask_code"] = True
        return render_template(template, error=_(CODE_NEEDED), **context), 401
    return render_template(template, error=_(LOGIN_FAILED), **context), 401


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        if g.get("staff_user") is not None:
            return redirect(url_for("staff.inbox_view"))
        return render_template("staff/login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")[:1024]
    code = request.form.get("code", "")[:20] or None
    next_url = _safe_next(request.form.get("next"))
    with _runtime().db.session() as s:
        step = accounts.check_password(s, email, password, _attempt(), code=code)
    if step.reason == "totp-required" and step.account_id is not None:
        session.clear()
        session[PENDING] = {"id": step.account_id, "at": time.time(), "next": next_url}
        return redirect(url_for("staff.login_code"), code=303)
    if step.ok and step.account_id is not None:
        return _finish_login(step.account_id, next_url)
    return _refused("staff/login.html", step, next=next_url,
                    ask_code=bool(code))


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> ResponseReturnValue:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > \
            PENDING_SECONDS:
        session.pop(PENDING, None)
        return redirect(url_for("staff.login"))
    if request.method == "GET":
        return render_template("staff/login_code.html")
    with _runtime().db.session() as s:
        step = accounts.check_totp(s, int(pending["id"]), request.form.get("code", "")[:20],
                                   _attempt())
    if step.ok and step.account_id is not None:
        return _finish_login(step.account_id, str(pending.get("next") or ""))
    if step.reason in ("throttled", "disabled"):
        session.pop(PENDING, None)
    return _refused("staff/login_code.html", step)


def _finish_login(account_id: int, next_url: str) -> ResponseReturnValue:
    with _runtime().db.session() as s:
        token = accounts.start_session(s, account_id)
    # A fresh session: nothing from before the login (fixation) survives.
    session.clear()
    session[SESSION_KEY] = token
    session.permanent = False
    log.info("staff login: account %s", account_id)
    return redirect(_safe_next(next_url), code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        with _runtime().db.session() as s:
            accounts.end_session(s, token)
    session.clear()
    return redirect(url_for("staff.login", logged_out=1), code=303)


# -- the inbox ---------------------------------------------------------------------------


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    return redirect(url_for("staff.inbox_view"))


@bp.get("/inbox")
@login_required
def inbox_view() -> ResponseReturnValue:
    user = _user()
    args = request.args
    status = args.get("status", "")
    if status not in inbox.STATUSES:
        status = ""
    filters = inbox.InboxFilter(
        status=status or None,
        channel=(args.get("channel") or None) if args.get("channel") in ("web", "email") else None,
        form=(args.get("form", "").strip()[:64] or None),
        tag=(args.get("tag", "").strip().lower()[:40] or None),
        assignee=(args.get("assignee", "").strip()[:20] or None),
        date_from=_date_arg("from"), date_to=_date_arg("to"),
        query=(args.get("q", "").strip()[:200] or None),
        scope=args.get("scope") if args.get("scope") in ("own", "copies") else None,
    )
    with _runtime().db.session() as s:
        page = inbox.inbox_page(s, user, filters, cursor=args.get("after") or None,
                                relay_domain=_runtime().settings.relay_domain)
        counts = inbox.status_counts(s, user.agency_id)
        unread = inbox.unread_count(s, user)
        colleagues = accounts.agency_accounts(s, user.agency_id)
    kept = {k: v for k, v in args.items() if k != "after" and v}
    return render_template("staff/inbox.html", page=page, counts=counts, unread=unread,
                           filters=filters, args=kept, colleagues=colleagues,
                           unread_cap=inbox.UNREAD_CAP,
                           agency_name=_agency_name(user.agency_id))


def _agency_name(agency_id: str | None) -> str:
    if agency_id is None:
        return "(not routed)"
    agency = _runtime().rules.current().agencies.get(agency_id)
    return agency.name if agency is not None else agency_id


# -- one entry -----------------------------------------------------------------------------


@bp.get("/entries/<int:entry_id>")
@login_required
def entry_view(entry_id: int) -> ResponseReturnValue:
    return _entry_page(entry_id)


@bp.post("/entries/<int:entry_id>/reveal")
@login_required
def reveal(entry_id: int) -> ResponseReturnValue:
    """Show the submitter's contact data once, to a records officer who says why."""
    if _user().role not in inbox.REVEAL_ROLES:
        abort(403)
    form = request.form
    ask = inbox.RevealRequest(
        reason=form.get("reason", "")[:2000], citation=form.get("citation", "")[:400],
        requester=form.get("requester", "")[:400] if form.get("legal_demand") == "1" else "",
        requester_address=form.get("requester_address", "")[:600]
        if form.get("legal_demand") == "1" else "")
    # The revealed page is this response only: nothing of it is kept in the session.
    return _entry_page(entry_id, reveal=ask)


def _entry_page(entry_id: int, reveal: inbox.RevealRequest | None = None
                ) -> ResponseReturnValue:
    user = _user()
    runtime = _runtime()
    with runtime.db.session() as s:
        access = inbox.access_for(s, user, entry_id)
        if access is None:
            abort(404)
        entry = access.entry
        revealed, error = _open_entry(s, user, entry, reveal)
        records_view = user.role in inbox.RECORDS_ROLES
        audience = inbox.audience_of(user, access.owner)
        # Everything shown of the citizen comes from the viewer's rendition.
        attachments = inbox.attachments_of(s, entry.id)
        rendition = renditions.render_entry(
            s, entry, audience, agency_id=user.agency_id,
            relay_domain=runtime.settings.relay_domain, reveal=revealed,
            # A file name can carry the citizen's name or address too.
            extra={f"attachment:{a.id}": a.filename for a in attachments})
        submitter = inbox.submitter_of(s, entry.id)
        context = {
            "entry": entry,
            "owner": access.owner,
            "rendition": rendition,
            "revealed": revealed,
            "reveal_error": error,
            "may_reveal": user.role in inbox.REVEAL_ROLES,
            "has_submitter": submitter is not None,
            # Replies go out through the relay: staff need not see the address.
            "can_reply": submitter is not None and bool(submitter.email),
            # Feedback and survey answers without contact details: nobody to answer.
            "anonymous": submitter is None or not submitter.email,
            "subject_segments": rendition.segments.get("subject", ()),
            "body_segments": rendition.segments.get("body", ()),
            "attachments": attachments,
            "decision": inbox.latest_decision(s, entry.id),
            "assignee": inbox.assignment_of(s, entry.id),
            "colleagues": accounts.agency_accounts(s, user.agency_id),
            "access_count": inbox.access_log_count(s, entry.id) if records_view else None,
            "records_view": records_view,
            "agencies": sorted(runtime.rules.current().agencies.values(),
                               key=lambda a: a.name),
            "agency_name": _agency_name(entry.agency_id),
            # Who holds a read-only copy (the owner agency sees it; a copy agency too).
            "copy_holders": [_agency_name(a) for a in inbox.copies_of(s, entry.id)],
            "fields": rendition.fields,
            "statuses": inbox.STATUSES,
            **_timeline_context(s, entry.id, records_view),
        }
        html = render_template("staff/entry.html", **context)
    return html, (400 if error else 200)


def _open_entry(s: Any, user: StaffAccount, entry: Entry,
                reveal: inbox.RevealRequest | None) -> tuple[bool, str | None]:
    """Record this view of the entry: a reveal (logged with its reason) when asked, else an
    access-log line and the read marker. Returns (revealed, why a reveal was refused)."""
    if reveal is None:
        inbox.log_access(s, user, entry.id, "entry")
        inbox.mark_read(s, user, entry.id)
        return False, None
    try:
        with s.begin_nested():
            inbox.reveal(s, user, entry, reveal)
    except inbox.ActionError as exc:
        return False, str(exc)
    return True, None


def _timeline_context(s: Any, entry_id: int, records_view: bool) -> dict[str, Any]:
    """The entry page's timeline, the names of the staff who replied in it, and whether
    its last routing was a reroute."""
    timeline = inbox.timeline(s, entry_id, with_access_log=records_view)
    author_ids = [i.message.author_id or "" for i in timeline
                  if i.message is not None and i.message.author_kind == "staff"]
    authors = {int(a) for a in author_ids if a.isdigit()}
    routing_events = [i.title for i in timeline
                      if i.kind == "event" and i.title in ("routed", "rerouted")]
    return {
        "timeline": timeline,
        "staff_names": {str(account_id): email for account_id, email
                        in accounts.emails_of(s, authors).items()},
        "rerouted": bool(routing_events) and routing_events[-1] == "rerouted",
    }


@bp.get("/entries/<int:entry_id>/attachments/<int:attachment_id>")
@login_required
def attachment(entry_id: int, attachment_id: int) -> ResponseReturnValue:
    user = _user()
    runtime = _runtime()
    with runtime.db.session() as s:
        access = inbox.access_for(s, user, entry_id)
        if access is None:
            abort(404)
        try:
            opened = records.open_attachment(s, entry_id, attachment_id, runtime.originals_key)
        except records.OriginalUnavailable:
            abort(410, description="This attachment was destroyed with the entry's original "
                                   "(retention); it can no longer be read.")
        if opened is None:
            abort(404)
        inbox.log_access(s, user, entry_id, "attachment")
        # The file name as the viewer's rendition shows it (it may name the citizen).
        content, filename = opened.content, renditions.render_entry(
            s, access.entry, inbox.audience_of(user, access.owner), agency_id=user.agency_id,
            relay_domain=runtime.settings.relay_domain, thread=False,
            extra={"attachment": opened.filename}).text("attachment")
    response = Response(content, mimetype="application/octet-stream")
    # A plain fallback name for old clients; the exact name travels RFC 5987-encoded.
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_"
                         for c in filename)[:150] or "attachment"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename[:150])}"
    )
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _entry_action(entry_id: int, action: Callable[[Any, StaffAccount, Entry], str | None],
                  *, on_copy: bool = False) -> ResponseReturnValue:
    """Run an action on an entry the user's agency owns; an agency with a copy (cc or
    kept copy) may not act (403), but for the actions allowed ``on_copy`` (notes)."""
    user = _user()
    message: str | None
    try:
        with _runtime().db.session() as s:
            access = inbox.access_for(s, user, entry_id)
            if access is None:
                abort(404)
            if not access.owner and not on_copy:
                abort(403)
            message = action(s, user, access.entry)
    except inbox.ActionError as exc:
        flash(str(exc), "error")
        return redirect(url_for("staff.entry_view", entry_id=entry_id), code=303)
    if message:
        flash(message, "status")
    return redirect(url_for("staff.entry_view", entry_id=entry_id), code=303)


@bp.post("/entries/<int:entry_id>/assign")
@login_required
def assign(entry_id: int) -> ResponseReturnValue:
    raw = request.form.get("staff_id", "")
    staff_id: int | None
    if raw == "me":
        staff_id = _user().id
    elif raw in ("", "none"):
        staff_id = None
    else:
        try:
            staff_id = int(raw)
        except ValueError:
            abort(400)

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        inbox.assign(s, user, entry, staff_id)
        return "Assignment saved."

    return _entry_action(entry_id, act)


@bp.post("/entries/<int:entry_id>/status")
@login_required
def set_status(entry_id: int) -> ResponseReturnValue:
    status = request.form.get("status", "")

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        inbox.set_status(s, user, entry, status)
        return f"Status set to {STATUS_LABELS.get(status, status)}."

    return _entry_action(entry_id, act)


@bp.post("/entries/<int:entry_id>/tags")
@login_required
def set_tags(entry_id: int) -> ResponseReturnValue:
    raw = request.form.get("tags", "")[:2000]

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        inbox.set_tags(s, user, entry, inbox.parse_tags(raw))
        return "Tags saved."

    return _entry_action(entry_id, act)


@bp.post("/entries/<int:entry_id>/note")
@login_required
def add_note(entry_id: int) -> ResponseReturnValue:
    body = request.form.get("body", "")

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        inbox.add_note(s, user, entry, body)
        return "Note added."

    return _entry_action(entry_id, act, on_copy=True)


@bp.post("/entries/<int:entry_id>/reply")
@login_required
def reply(entry_id: int) -> ResponseReturnValue:
    body = request.form.get("body", "")

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        result = inbox.reply(s, user, entry, body)
        if not result.decision.allowed:
            return f"The reply was kept but not sent ({result.decision.reason})."
        if entry.status in (EntryStatus.NEW, EntryStatus.OPEN):
            inbox.set_status(s, user, entry, EntryStatus.WAITING)
        return "Reply queued for sending."

    return _entry_action(entry_id, act)


@bp.post("/entries/<int:entry_id>/reroute")
@login_required
def reroute(entry_id: int) -> ResponseReturnValue:
    agency_id = request.form.get("agency", "")
    reason = request.form.get("reason", "")[:2000]
    keep_copy = request.form.get("keep_copy") == "1"
    rules = _runtime().rules.current()

    def act(s: Any, user: StaffAccount, entry: Entry) -> str:
        result = inbox.reroute(s, user, entry, rules, agency_id, reason, keep_copy)
        name = rules.agencies[agency_id].name
        if not result.decision.allowed:
            return f"Rerouted to {name}; the delivery was refused ({result.decision.reason})."
        return f"Rerouted to {name}."

    response = _entry_action(entry_id, act)
    # After a reroute without a copy the entry is no longer ours: back to the inbox.
    with _runtime().db.session() as s:
        if inbox.access_for(s, _user(), entry_id) is None:
            return redirect(url_for("staff.inbox_view"), code=303)
    return response


@bp.post("/entries/<int:entry_id>/unread")
@login_required
def mark_unread(entry_id: int) -> ResponseReturnValue:
    user = _user()
    with _runtime().db.session() as s:
        if inbox.access_for(s, user, entry_id) is None:
            abort(404)
        inbox.mark_unread(s, user, entry_id)
    return redirect(url_for("staff.inbox_view"), code=303)


# -- admin views ---------------------------------------------------------------------------


@bp.get("/admin")
@admin_required
def admin() -> ResponseReturnValue:
    user = _user()
    runtime = _runtime()
    system = user.role == "system_admin"
    mailboxes: list[mail_admin.MailboxState] = []
    quarantined: list[mail_admin.QuarantinedMessage] = []
    with runtime.db.session() as s:
        dead = inbox.dead_letters(s, user)
        if system:
            mailboxes = mail_admin.mailbox_states(s)
            quarantined = mail_admin.open_quarantine(s)
    from intake.core.failures import explain, explain_quarantine  # plain words, next step

    return render_template("staff/admin.html", dead=dead, rules=runtime.rules.status(),
                           mailboxes=mailboxes, quarantined=quarantined, system=system,
                           now=datetime.now(UTC), explain=explain,
                           explain_quarantine=explain_quarantine)


@bp.post("/admin/dead-letters/<int:item_id>/retry")
@admin_required
def retry_dead_letter(item_id: int) -> ResponseReturnValue:
    from intake.services.work import retry_dead

    user = _user()
    with _runtime().db.session() as s:
        if not inbox.may_retry(s, user, item_id):
            abort(404)
        retry_dead(s, [item_id])
    log.info("dead letter %s put back in the queue by account %s", item_id, user.id)
    flash("The work item is back in the queue.", "status")
    return redirect(url_for("staff.admin"), code=303)


@bp.post("/admin/quarantine/<int:quarantine_id>/retry")
@admin_required
def retry_quarantined(quarantine_id: int) -> ResponseReturnValue:
    user = _user()
    if user.role != "system_admin":
        abort(403)
    from intake.services.mail_intake import MailContext, open_quarantined, store_or_quarantine

    runtime = _runtime()
    agencies = runtime.rules.current().agencies.values()
    with runtime.db.session() as s:
        row = mail_admin.unresolved(s, quarantine_id)
        if row is None:
            abort(404)
        context = MailContext.from_settings(
            runtime.settings, row.mailbox or "quarantine", pii_key=runtime.pii_key,
            agency_addresses=[a.email for a in agencies if a.email])
        outcome = store_or_quarantine(s, open_quarantined(row, context.originals_key), context,
                                      uid=row.uid, uidvalidity=row.uidvalidity)
    stored = outcome.outcome != "quarantined"
    flash("The message was stored." if stored else
          "The message could not be stored again; it stays in quarantine.", "status")
    return redirect(url_for("staff.admin"), code=303)


@bp.post("/admin/quarantine/<int:quarantine_id>/dismiss")
@admin_required
def dismiss_quarantined(quarantine_id: int) -> ResponseReturnValue:
    user = _user()
    if user.role != "system_admin":
        abort(403)
    with _runtime().db.session() as s:
        row = mail_admin.unresolved(s, quarantine_id)
        if row is None:
            abort(404)
        mail_admin.dismiss(row, f"staff:{user.id}")
    flash("The message was dismissed; its bytes stay on record.", "status")
    return redirect(url_for("staff.admin"), code=303)


# -- staff accounts ------------------------------------------------------------------------
#
# A system administrator manages every account but its own; an agency administrator the
# agents and records officers of its own agency (accounts.may_manage). Any other account is
# a 404, the same answer as a missing one. Every action is confirmed on a page of its own
# (GET), then done by a POST with the CSRF token; each is a staff_account_events row.

ACTION_LABELS = {
    "disable": "Disable the account",
    "enable": "Enable the account again",
    "reset-password": "Reset the password",
    "reset-totp": "Reset the second factor",
    "unlock": "Lift the login throttles",
}
ACTION_EFFECTS = {
    "disable": "The account can no longer log in, and every session it has open ends now.",
    "enable": "The account can log in again with its password and second factor.",
    "reset-password": "A new random password is made and shown to you once; the old one "
                      "stops working, the account's sessions end, and the employee must "
                      "choose a password of their own at the next login.",
    "reset-totp": "A new TOTP secret is made and shown to you once; codes from the old one "
                  "stop working and the account's sessions end.",
    "unlock": "Failed logins counted against this account, from every address, are "
              "forgotten.",
}
EVENT_LABELS = {
    "created": "Created",
    "disabled": "Disabled",
    "enabled": "Enabled",
    "password-reset": "Password reset",
    "totp-reset": "Second factor reset",
    "unlocked": "Login throttles lifted",
    "password-changed": "Password changed by the employee",
}
ACTION_DONE = {
    "disable": "The account is disabled and its sessions have ended.",
    "enable": "The account is enabled.",
    "unlock": "The login throttles of the account are lifted.",
}


def _managed(s: Any, account_id: int) -> StaffAccount:
    target = s.get(StaffAccount, account_id)
    if target is None or not accounts.may_manage(_user(), target):
        abort(404)
    managed: StaffAccount = target
    return managed


def _actions_for(target: StaffAccount) -> list[str]:
    return ["enable" if target.disabled else "disable", "reset-password", "reset-totp",
            "unlock"]


@bp.get("/admin/accounts")
@admin_required
def accounts_view() -> ResponseReturnValue:
    user = _user()
    system = user.role == "system_admin"
    with _runtime().db.session() as s:
        rows = accounts.list_accounts(s, None if system else user.agency_id)
        manageable = {row.id for row in rows
                      if (target := s.get(StaffAccount, row.id)) is not None
                      and accounts.may_manage(user, target)}
    return render_template("staff/accounts.html", rows=rows, manageable=manageable,
                           system=system)


@bp.get("/admin/accounts/<int:account_id>")
@admin_required
def account_view(account_id: int) -> ResponseReturnValue:
    with _runtime().db.session() as s:
        target = _managed(s, account_id)
        events = accounts.account_events(s, [account_id])
        actor_names = accounts.emails_of(s, {e.actor_id for e in events if e.actor_id})
        return render_template("staff/account.html", account=target,
                               actions=_actions_for(target), events=events,
                               actor_names=actor_names, action_labels=ACTION_LABELS,
                               event_labels=EVENT_LABELS)


@bp.route("/admin/accounts/<int:account_id>/<action>", methods=["GET", "POST"])
@admin_required
def account_action(account_id: int, action: str) -> ResponseReturnValue:
    if action not in ACTION_LABELS:
        abort(404)
    user = _user()
    actor = accounts.Actor.staff(user)
    runtime = _runtime()
    with runtime.db.session() as s:
        target = _managed(s, account_id)
        if request.method == "GET":
            return render_template("staff/account_confirm.html", account=target,
                                   action=action, action_labels=ACTION_LABELS,
                                   action_effects=ACTION_EFFECTS)
        if action in ("disable", "enable"):
            accounts.set_disabled(s, account_id, action == "disable", actor)
        elif action == "unlock":
            accounts.unlock(s, account_id, runtime.settings.derived_key(
                accounts.THROTTLE_KEY_PURPOSE), actor)
        elif action == "reset-password":
            password = secrets.token_urlsafe(15)  # 20 characters, 120 random bits
            accounts.reset_password(s, account_id, password, actor)
            return render_template("staff/account_secret.html", account=target,
                                   title=_("New password"), password=password)
        else:
            secret = accounts.reset_totp(s, account_id, actor)
            return render_template("staff/account_secret.html", account=target,
                                   title=_("New second factor"), secret=secret,
                                   uri=accounts.provisioning_uri(secret, target.email))
    flash(_(ACTION_DONE[action]), "status")
    return redirect(url_for("staff.account_view", account_id=account_id, **_lang_args()),
                    code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def own_password() -> ResponseReturnValue:
    """The employee changes their own password (required after an administrator's reset)."""
    user = _user()
    if request.method == "GET":
        return render_template("staff/account_password.html")
    form = request.form
    new = form.get("new_password", "")[:2048]
    if new != form.get("new_password_again", "")[:2048]:
        return render_template("staff/account_password.html",
                               error=_("The two new passwords are not the same.")), 400
    try:
        with _runtime().db.session() as s:
            accounts.change_own_password(s, user.id, form.get("current_password", "")[:2048],
                                         new, keep_session=str(session.get(SESSION_KEY)))
    except accounts.AccountError as exc:
        # The service's messages are fixed sentences, each in the catalogue.
        return render_template("staff/account_password.html", error=_(str(exc))), 400
    flash(_("Your password is changed. Your other sessions have ended."), "status")
    return redirect(url_for("staff.inbox_view"), code=303)
