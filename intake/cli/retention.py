"""``intake retention check|run|hold|holds|release|log``: the retention schedule and holds."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from intake.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    fail,
    open_runtime,
    progress_line,
    settings_or_fail,
)

#: Record numbers printed per series by a dry run (the rest are counted).
SHOWN = 20


@click.group()
def retention() -> None:
    """Retention schedules, legal holds and the disposition log."""


def _schedule_or_exit(path: Path) -> Any:
    """Load a schedule, or print its `file:line: message` errors and exit 1."""
    from intake.core.retention import RetentionError, load_schedule_file

    try:
        return load_schedule_file(path)
    except RetentionError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)


@retention.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def retention_check(file: str | None) -> None:
    """Validate a retention schedule (default: INTAKE_RETENTION) against the rules and forms."""
    from intake.core.forms import FormsConfigError
    from intake.core.retention import unknown_references
    from intake.core.routing import RulesError, load_rules_file
    from intake.services.forms import load_forms

    settings = settings_or_fail()
    path = Path(file) if file else settings.retention_schedule_path
    schedule = _schedule_or_exit(path)
    try:
        agencies = load_rules_file(settings.rules_path).agencies
        forms = load_forms(settings).forms
    except RulesError:
        fail("the rules file is invalid; run `intake rules check`")
    except FormsConfigError:
        fail("the forms file is invalid; run `intake forms check`")
    errors = unknown_references(schedule, agencies, forms)
    for error in errors:
        click.echo(str(error), err=True)
    click.echo(f"{path}: {len(schedule.series)} series"
               + (f", {len(errors)} problem(s)" if errors else ", OK"))
    sys.exit(EXIT_FAILURE if errors else 0)


def _describe(series: Any) -> str:
    return (f"{series.disposition} {series.keep} after {series.trigger}"
            + (f" [{series.citation}]" if series.citation else ""))


@retention.command("run")
@click.option("--apply", "do_apply", is_flag=True,
              help="Dispose of the records (without it: only say what would be done).")
@click.option("--batch", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Entries per transaction.")
def retention_run(do_apply: bool, batch: int) -> None:
    """Dispose of the entries whose retention period ended (a dry run unless --apply).

    Held entries are never disposed of. An interrupted --apply is finished by running
    it again; a second --apply finds nothing to do.
    """
    from intake.services.retention import apply_schedule, plan

    settings = settings_or_fail()
    path = settings.retention_schedule_path
    schedule = _schedule_or_exit(path)
    if do_apply and settings.retention_path is None:
        fail("no retention schedule is configured (the packaged one is an example); "
             "set INTAKE_RETENTION to the schedule to apply", EXIT_CONFIG)
    now = datetime.now(UTC)
    with open_runtime(settings) as runtime:
        if not do_apply:
            with runtime.db.session() as session:
                planned = plan(session, schedule, now)
            click.echo(f"{path} (sha256 {schedule.sha256[:12]}), as of "
                       f"{now:%Y-%m-%d %H:%M} UTC: dry run, nothing changed")
            for item in planned.series:
                held = f", {item.held} held (kept)" if item.held else ""
                click.echo(f"series {item.series.id} ({_describe(item.series)}): "
                           f"{len(item.due)} due{held}")
                for due in item.due[:SHOWN]:
                    click.echo(f"  {due.record_number} due {due.due_at:%Y-%m-%d}")
                if len(item.due) > SHOWN:
                    click.echo(f"  ... and {len(item.due) - SHOWN} more")
            if planned.due:
                click.echo("run `intake retention run --apply` to do it")
            return
        report = apply_schedule(runtime.db, schedule, now, actor="cli", batch=batch,
                                progress=progress_line("disposed of"))
    for series in schedule.series:
        click.echo(f"series {series.id} ({_describe(series)}): "
                   f"{report.done.get(series.id, 0)} done")
    held = f", {report.held} held (kept)" if report.held else ""
    if report.run_id is None:
        click.echo(f"nothing is due{held}; nothing changed")
    else:
        click.echo(f"run {report.run_id}: {report.total} entries handled{held}")
    if report.unsealed:
        click.echo(f"intake: {report.unsealed} entries stored before sealing were not "
                   "destroyed; run `intake db seal --apply`, then run this again", err=True)
        sys.exit(EXIT_FAILURE)


@retention.command("hold")
@click.option("--reason", required=True, help="Why the entries are held.")
@click.option("--case", "case_reference", required=True, help="The case or matter reference.")
@click.option("--record", "records", multiple=True, required=True, metavar="RECORD_NUMBER",
              help="An entry to hold (repeat for several).")
@click.option("--by", "by_email", required=True,
              help="E-mail address of the records officer placing the hold.")
def retention_hold(reason: str, case_reference: str, records: tuple[str, ...],
                   by_email: str) -> None:
    """Put a legal hold on entries by record number."""
    from intake.services.retention import (
        RetentionActionError,
        entry_ids_for_numbers,
        officer_by_email,
        place_hold,
    )

    with open_runtime(settings_or_fail()) as runtime:
        try:
            with runtime.db.session() as session:
                user = officer_by_email(session, by_email)
                ids = entry_ids_for_numbers(session, None, records)
                hold_id = place_hold(session, user, reason=reason, case_reference=case_reference,
                                     entry_ids=ids, scope={"record_numbers": sorted(
                                         {r.strip().upper() for r in records})})
        except RetentionActionError as exc:
            fail(str(exc))
    click.echo(f"hold {hold_id}: {len(ids)} entries held")


@retention.command("holds")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
def retention_holds(show_all: bool) -> None:
    """List the legal holds (active ones unless --all)."""
    from intake.services.retention import holds

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        found = holds(session, active_only=not show_all)
    if not found:
        click.echo("no holds")
    for hold in found:
        state = (f"released {hold.released_at:%Y-%m-%d} by {hold.released_by}"
                 if hold.released_at else "active")
        click.echo(f"{hold.id}\t{hold.case_reference}\t{hold.entries} entries\t"
                   f"{hold.created_at:%Y-%m-%d} by {hold.created_by}\t{state}\t{hold.reason}")


@retention.command("release")
@click.option("--id", "hold_id", type=int, required=True, help="The hold's number.")
@click.option("--reason", required=True, help="Why the hold ends.")
@click.option("--by", "by_email", required=True,
              help="E-mail address of the records officer releasing the hold.")
def retention_release(hold_id: int, reason: str, by_email: str) -> None:
    """Release a legal hold."""
    from intake.services.retention import RetentionActionError, officer_by_email, release_hold

    with open_runtime(settings_or_fail()) as runtime:
        try:
            with runtime.db.session() as session:
                count = release_hold(session, officer_by_email(session, by_email), hold_id,
                                     reason)
        except RetentionActionError as exc:
            fail(str(exc))
    click.echo(f"hold {hold_id} released ({count} entries)")


@retention.command("log")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
def retention_log(limit: int) -> None:
    """Show the newest rows of the disposition log."""
    from intake.services.retention import disposition_log

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        rows = disposition_log(session, limit)
    for row in rows:
        run = f"run {row.run_id}" if row.run_id is not None else row.actor
        click.echo(f"{row.at:%Y-%m-%d %H:%M}\t{row.record_number}\t{row.action}\t"
                   f"{row.series}\t{run}")
