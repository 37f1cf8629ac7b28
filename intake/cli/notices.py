"""``intake notices digest``: queue (and, with ``--send``, send) the daily digests."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import click

from intake.cli.common import open_runtime, settings_or_fail

SEND_WAIT_SECONDS = 60.0


@click.group()
def notices() -> None:
    """Notices to staff: the daily "new entries" digest per agency."""


@notices.command("digest")
@click.option("--day", default=None, metavar="YYYY-MM-DD",
              help="The day (UTC) whose new entries are listed (default: yesterday).")
@click.option("--send", is_flag=True,
              help="Send the digests from this process now (else the worker sends them).")
def notices_digest(day: str | None, send: bool) -> None:
    """Queue each agency's "new entries" digest of a day, once per agency and day.

    Agencies and addresses come from INTAKE_DIGEST_RECIPIENTS (others: off). Run it
    once a day (cron, a systemd timer); a second run for the same day queues nothing.
    The digest lists record numbers and links to the staff pages, nothing else.
    """
    from intake.services.delivery import DIGEST, plan_digests

    try:
        wanted = date.fromisoformat(day) if day else \
            datetime.now(UTC).date() - timedelta(days=1)
    except ValueError:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {day!r}",
                                 param_hint="--day") from None
    settings = settings_or_fail()
    if not settings.digest_recipients:
        click.echo("no digests: INTAKE_DIGEST_RECIPIENTS names no agency")
        return
    with open_runtime(settings) as runtime:
        runtime.rules.load()
        with runtime.db.session() as session:
            plans = plan_digests(session, settings, runtime.rules, wanted)
        for plan in plans:
            state = "queued" if plan.queued else (
                "nothing new" if plan.entries == 0 else "already queued or unknown agency")
            click.echo(f"{plan.agency_id}: {plan.entries} new entries on {wanted}: {state}")
        if send and any(plan.queued for plan in plans):
            finish, stop = threading.Event(), threading.Event()
            finish.set()
            thread = threading.Thread(target=runtime.jobs.drain, args=((DIGEST,),),
                                      kwargs={"finish": finish, "stop": stop}, daemon=True)
            thread.start()
            thread.join(SEND_WAIT_SECONDS)
            if thread.is_alive():
                stop.set()
                runtime.jobs.wake()
                thread.join()
                click.echo("intake: some digests are not sent yet; the worker retries them",
                           err=True)
