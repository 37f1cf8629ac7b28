"""The records officers' retention pages at ``/staff/retention/...``, in English and Spanish.

- ``GET /staff/retention``: what the next run would do (by series, counts only),
  the entries awaiting a review decision, the latest runs;
- ``POST /staff/retention/review/<id>``: destroy or keep an entry listed for review;
- ``GET|POST /staff/retention/holds``: the legal holds, and a new one on record
  numbers or on the entries a staff search finds now;
- ``GET /staff/retention/holds/<id>``, ``POST .../release``: one hold, its release;
- ``GET /staff/retention/log``: the disposition log.

A blueprint nested in the staff one: its login, CSRF and Origin checks and its
template globals apply here too. Records officers and system administrators
only (403 for other staff). The language is ``?lang=`` (a hidden field in the
forms), else the browser's preference.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from intake.core.forms import LANGUAGES
from intake.core.retention import RetentionError, Schedule, load_schedule_file
from intake.runtime import Runtime
from intake.services import retention
from intake.services.inbox import RECORDS_ROLES, STATUSES, InboxFilter
from intake.services.staff import StaffAccount
from intake.web.staff import views
from intake.web.staff.views import login_required

bp = Blueprint("retention", __name__, url_prefix="/retention")

LOG_PAGE = 100
#: Seconds the overview spends on the next run's plan; past it, the counts are a lower
#: bound and the page says so (`intake retention run` gives the whole dry run).
PLAN_BUDGET = 3.0
MAX_NUMBERS_TEXT = 200_000


def _lang() -> str:
    asked = request.values.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _officer() -> StaffAccount:
    user: StaffAccount = g.staff_user
    if user.role not in RECORDS_ROLES:
        abort(403)
    return user


def _render(template: str, lang: str, **context: Any) -> str:
    other = "es" if lang == "en" else "en"
    args = {**(request.view_args or {}),
            **{k: v for k, v in request.args.items() if k != "lang"}}
    switch = {"href": url_for(request.endpoint or "staff.retention.overview", lang=other,
                              **args),
              "lang": other, "label": "Español" if other == "es" else "English"}
    with force_locale(lang):
        return render_template(template, page_lang=lang, lang_switch=switch, **context)


def _back(endpoint: str, lang: str, **values: Any) -> ResponseReturnValue:
    return redirect(url_for(endpoint, lang=lang, **values), code=303)


def _schedule() -> tuple[Schedule | None, list[str]]:
    settings = _runtime().settings
    try:
        return load_schedule_file(settings.retention_schedule_path), []
    except RetentionError as exc:
        return None, [str(e) for e in exc.errors]


# -- the overview and review decisions ----------------------------------------------------


@bp.get("/")
@login_required
def overview() -> ResponseReturnValue:
    from datetime import UTC, datetime

    user = _officer()
    lang = _lang()
    schedule, errors = _schedule()
    now = datetime.now(UTC)
    with _runtime().db.session() as s:
        planned = retention.plan(s, schedule, now, budget_seconds=PLAN_BUDGET) \
            if schedule is not None else None
        review = retention.awaiting_review(s, agency_id=user.agency_id)
        runs = retention.runs(s, limit=10)
    return _render("staff/retention.html", lang, planned=planned, schedule=schedule,
                   schedule_errors=errors, review=review, runs=runs, now=now,
                   configured=_runtime().settings.retention_path is not None)


@bp.post("/review/<int:log_id>")
@login_required
def review_decision(log_id: int) -> ResponseReturnValue:
    user = _officer()
    lang = _lang()
    decision = request.form.get("decision", "")
    with force_locale(lang):
        try:
            with _runtime().db.session() as s:
                number = retention.decide_review(s, user, log_id, decision)
        except retention.RetentionActionError as exc:
            flash(_(exc.template, **exc.params), "error")
            return _back("staff.retention.overview", lang)
        flash(_("%(number)s: its personal data was destroyed.", number=number)
              if decision == "destroy" else _("%(number)s is kept.", number=number), "status")
    return _back("staff.retention.overview", lang)


# -- legal holds ----------------------------------------------------------------------------


@bp.get("/holds")
@login_required
def holds() -> ResponseReturnValue:
    _officer()
    lang = _lang()
    with _runtime().db.session() as s:
        found = retention.holds(s)
    return _render("staff/holds.html", lang, holds=found, statuses=STATUSES,
                   form=request.args)


@bp.post("/holds")
@login_required
def place_hold() -> ResponseReturnValue:
    user = _officer()
    lang = _lang()
    form = request.form
    scope: dict[str, Any]
    with force_locale(lang):
        try:
            with _runtime().db.session() as s:
                if form.get("mode") == "search":
                    filters = _search_filters(form)
                    scope = {"search": {k: v for k, v in {
                        "q": filters.query, "status": filters.status,
                        "channel": filters.channel, "form": filters.form, "tag": filters.tag,
                        "from": filters.date_from and filters.date_from.isoformat(),
                        "to": filters.date_to and filters.date_to.isoformat()}.items() if v}}
                    ids = retention.entry_ids_for_search(s, user, filters)
                else:
                    numbers = form.get("record_numbers", "")[:MAX_NUMBERS_TEXT]
                    wanted = numbers.replace(",", " ").split()
                    ids = retention.entry_ids_for_numbers(s, user, wanted)
                    scope = {"record_numbers": sorted({n.upper() for n in wanted})}
                hold_id = retention.place_hold(
                    s, user, reason=form.get("reason", ""),
                    case_reference=form.get("case_reference", ""), entry_ids=ids, scope=scope)
        except retention.RetentionActionError as exc:
            flash(_(exc.template, **exc.params), "error")
            return _back("staff.retention.holds", lang)
        flash(_("Hold %(id)s placed on %(count)s entries.", id=hold_id, count=len(ids)),
              "status")
    return _back("staff.retention.hold_detail", lang, hold_id=hold_id)


def _search_filters(form: Any) -> InboxFilter:
    from datetime import date

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(form.get(name, "").strip())
        except ValueError:
            return None

    status = form.get("status", "")
    channel = form.get("channel", "")
    return InboxFilter(
        status=status if status in STATUSES else None,
        channel=channel if channel in ("web", "email") else None,
        form=form.get("form", "").strip()[:64] or None,
        tag=form.get("tag", "").strip().lower()[:40] or None,
        date_from=day("from"), date_to=day("to"),
        query=form.get("q", "").strip()[:200] or None)


@bp.get("/holds/<int:hold_id>")
@login_required
def hold_detail(hold_id: int) -> ResponseReturnValue:
    _officer()
    lang = _lang()
    with _runtime().db.session() as s:
        hold = retention.hold(s, hold_id)
        if hold is None:
            abort(404)
        numbers = retention.hold_record_numbers(s, hold_id)
    return _render("staff/holds_detail.html", lang, hold=hold, numbers=numbers)


@bp.post("/holds/<int:hold_id>/release")
@login_required
def release_hold(hold_id: int) -> ResponseReturnValue:
    user = _officer()
    lang = _lang()
    with force_locale(lang):
        try:
            with _runtime().db.session() as s:
                count = retention.release_hold(s, user, hold_id, request.form.get("reason", ""))
        except retention.RetentionActionError as exc:
            flash(_(exc.template, **exc.params), "error")
            return _back("staff.retention.hold_detail", lang, hold_id=hold_id)
        flash(_("Hold %(id)s released; %(count)s entries are no longer held by it.",
                id=hold_id, count=count), "status")
    return _back("staff.retention.holds", lang)


# -- the disposition log ----------------------------------------------------------------------


@bp.get("/log")
@login_required
def disposition_log() -> ResponseReturnValue:
    user = _officer()
    lang = _lang()
    before = request.args.get("before", type=int)
    with _runtime().db.session() as s:
        rows = retention.disposition_log(s, LOG_PAGE + 1, before, agency_id=user.agency_id)
    more = len(rows) > LOG_PAGE
    rows = rows[:LOG_PAGE]
    return _render("staff/retention_log.html", lang, rows=rows,
                   next_before=rows[-1].id if more and rows else None)


# Nested in the staff blueprint (once, at import): its hooks and template globals apply.
views.bp.register_blueprint(bp)
