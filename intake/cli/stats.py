"""``intake stats [--agency ID] [--weeks N] [--json]``: the staff dashboard's figures."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import click

from intake.cli.common import EXIT_CONFIG, fail, open_runtime, settings_or_fail


@click.command("stats")
@click.option("--agency", default=None, help="One agency's figures (default: every agency).")
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(1, 104),
              help="How many weeks back.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def stats(agency: str | None, weeks: int, as_json: bool) -> None:
    """Print the dashboard's figures: submissions, response times, reroutes, visits.

    Counts below INTAKE_STATS_MIN_CELL are shown as "< N", as on the dashboard.
    """
    from intake.core.forms import FormsConfigError
    from intake.services import chat, dashboard
    from intake.services.forms import load_forms

    if agency is not None and not re.match(r"^[A-Za-z0-9_.-]{1,64}$", agency):
        fail(f"--agency {agency!r}: not an agency id", EXIT_CONFIG)
    settings = settings_or_fail()
    try:
        forms = load_forms(settings).forms.values()
    except FormsConfigError as exc:
        fail(f"INTAKE_FORMS: {exc.errors[0]}", EXIT_CONFIG)
    try:
        exit_survey = chat.load_help(settings).exit_survey
    except chat.HelpConfigError as exc:
        fail(f"INTAKE_HELP: {exc}", EXIT_CONFIG)
    surveys = dashboard.counted_surveys(forms, exit_survey)
    scope = dashboard.Scope(agency=agency, min_cell=settings.stats_min_cell,
                            now=datetime.now(UTC), weeks=weeks)
    with open_runtime(settings) as runtime, runtime.db.session() as s:
        charts = dashboard.dashboard(s, scope, surveys)
    if as_json:
        click.echo(json.dumps({"scope": scope.who, "weeks": weeks,
                               "min_cell": settings.stats_min_cell,
                               "charts": dashboard.as_json(charts)}, indent=2))
        return
    click.echo(f"Figures of the last {weeks} weeks, {scope.who} "
               f"(counts below {settings.stats_min_cell} shown as \"< "
               f"{settings.stats_min_cell}\")")
    for chart in charts:
        click.echo(f"\n{chart.title} [{chart.id}]")
        table = chart.table()
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            click.echo("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                       .rstrip())
        if len(table) == 1:
            click.echo("  (no data)")
        if chart.note:
            click.echo(f"  {chart.note}")
