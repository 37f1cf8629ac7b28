"""The staff dashboard at ``/staff/dashboard``: an agency's figures as charts and tables.

A route of the staff blueprint (its login and session checks apply). Staff see
their own agency; a system administrator sees every agency, or one with
``?agency=``. Every chart is server-rendered SVG (no script, no inline style:
the CSP holds) with a title, a description and the same figures in a table;
``/staff/dashboard.csv?chart=ID`` downloads a chart's table. Counts below
``INTAKE_STATS_MIN_CELL`` read "< N" everywhere. English only, like the other
staff pages outside the login and accounts pages.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from flask import Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from intake.core.forms import FormsConfig, Survey
from intake.core.stats import Chart, svg
from intake.runtime import Runtime
from intake.services import dashboard as figures
from intake.web.forms import CONFIG_KEY
from intake.web.staff.views import _user, bp, login_required

SEES_ALL = ("system_admin",)
_AGENCY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_WEEKS = 104


def surveys_of(config: FormsConfig) -> dict[str, Survey]:
    from intake.web.chat import help_config

    return figures.counted_surveys(config.forms.values(), help_config().exit_survey)


def _scope() -> figures.Scope:
    user = _user()
    runtime: Runtime = current_app.extensions["intake"]
    agency: str | None = user.agency_id
    if user.role in SEES_ALL:
        asked = request.args.get("agency", "")
        agency = asked if _AGENCY_RE.match(asked) else None
    try:
        weeks = min(MAX_WEEKS, max(1, int(request.args.get("weeks", "12"))))
    except ValueError:
        abort(400)
    return figures.Scope(agency=agency, min_cell=runtime.settings.stats_min_cell,
                         now=datetime.now(UTC), weeks=weeks)


def _charts(scope: figures.Scope) -> list[Chart]:
    runtime: Runtime = current_app.extensions["intake"]
    with runtime.db.session() as s:
        return figures.dashboard(s, scope, surveys_of(current_app.extensions[CONFIG_KEY]))


@bp.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    scope = _scope()
    charts = _charts(scope)
    drawn = {c.id: Markup(svg(c)) for c in charts}  # noqa: S704 - escaped in core.stats.svg
    return render_template("staff/dashboard.html", charts=charts, drawn=drawn, scope=scope,
                           sees_all=_user().role in SEES_ALL)


@bp.get("/dashboard.csv")
@login_required
def dashboard_csv() -> ResponseReturnValue:
    scope = _scope()
    wanted = request.args.get("chart", "")
    chart = next((c for c in _charts(scope) if c.id == wanted), None)
    if chart is None:
        abort(404)
    out = io.StringIO()
    writer = csv.writer(out)
    for row in chart.table():
        # A cell starting with = + - @ would be a formula in a spreadsheet.
        writer.writerow([f"'{v}" if v[:1] in ("=", "+", "-", "@") else v for v in row])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="dashboard-{chart.id}.csv"'})
