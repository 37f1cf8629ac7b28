"""``intake jobs status|retry``: background work items by state, and dead letters."""

from __future__ import annotations

import json

import click

from intake.cli.common import EXIT_CONFIG, fail, open_runtime, settings_or_fail


@click.group()
def jobs() -> None:
    """Background work: status and dead letters."""


@jobs.command("status")
@click.option("--json", "as_json", is_flag=True)
def jobs_status(as_json: bool) -> None:
    """Count work items by state."""
    with open_runtime(settings_or_fail()) as runtime:
        counts = runtime.jobs.counts()
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(", ".join(f"{state}: {n}" for state, n in counts.items()))


@jobs.command("retry")
@click.option("--id", "ids", multiple=True, type=int, help="A dead work item id (repeatable).")
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead work item.")
def jobs_retry(ids: tuple[int, ...], retry_all: bool) -> None:
    """Put dead-letter work items back in the queue."""
    from intake.services.work import retry_dead

    if not ids and not retry_all:
        fail("say which: --id N (repeatable) or --all", EXIT_CONFIG)
    with open_runtime(settings_or_fail()) as runtime:
        with runtime.db.session() as session:
            revived = retry_dead(session, None if retry_all else list(ids))
        click.echo(f"{len(revived)} work item(s) queued again"
                   + (f": {', '.join(map(str, revived))}" if revived else ""))
