"""``intake jobs status|retry``: background work items by state, and dead letters."""

from __future__ import annotations

import json
from typing import Any

import click

from intake.cli.common import EXIT_CONFIG, fail, open_runtime, settings_or_fail


@click.group()
def jobs() -> None:
    """Background work: status and dead letters."""


@jobs.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.option("--dead", "dead_limit", type=click.IntRange(0, 1000), default=20, show_default=True,
              help="How many of the latest dead letters to list, with why they failed.")
def jobs_status(as_json: bool, dead_limit: int) -> None:
    """Count work items by state; list the latest dead letters (and why) and the
    destinations that are failing or paused."""
    from intake.core.failures import explain, explain_quarantine
    from intake.services.circuits import circuits
    from intake.services.mail_admin import open_quarantine
    from intake.services.work import dead_letters

    with open_runtime(settings_or_fail()) as runtime:
        counts = runtime.jobs.counts()
        with runtime.db.session() as session:
            dead = [{"id": item.id, "kind": item.kind, "entry_id": item.entry_id,
                     "attempts": item.attempts, "deferrals": item.deferrals,
                     "since": item.updated_at.isoformat(), "reason": item.last_error or "",
                     **_plain(explain(item.last_error or "", item.kind))}
                    for item in dead_letters(session, dead_limit)] if dead_limit else []
            quarantined = [{"id": q.id, "mailbox": q.mailbox,
                            "since": q.quarantined_at.isoformat(),
                            "reason": f"{q.error_class}: {q.error_message or ''}".strip(": "),
                            **_plain(explain_quarantine(q.error_class, q.error_message))}
                           for q in open_quarantine(session, dead_limit)] if dead_limit else []
            failing = [{"destination": c.destination, "state": c.state,
                        "failures": c.failures,
                        "failing_since": c.failing_since.isoformat() if c.failing_since
                        else None,
                        "retry_at": c.retry_at.isoformat() if c.retry_at else None,
                        "last_error": c.last_error or ""} for c in circuits(session)]
    if as_json:
        click.echo(json.dumps({**counts, "dead_letters": dead, "quarantined": quarantined,
                               "destinations": failing}))
        return
    click.echo(", ".join(f"{state}: {n}" for state, n in counts.items()))
    if dead:
        click.echo(f"latest dead letters ({len(dead)}):")
        for d in dead:
            click.echo(_one_line(f"  #{d['id']} {d['kind']} (entry {d['entry_id']}, "
                                 f"{str(d['since'])[:16]}): {d['what']}: {d['reason']}"))
            click.echo(_one_line(f"    next step: {d['next_step']}"))
    if quarantined:
        click.echo(f"quarantined e-mails ({len(quarantined)}):")
        for q in quarantined:
            click.echo(_one_line(f"  quarantine #{q['id']} (mailbox {q['mailbox'] or '-'}, "
                                 f"{str(q['since'])[:16]}): {q['what']}: {q['reason']}"))
            click.echo(_one_line(f"    next step: {q['next_step']}"))
    for c in failing:
        pause = f", paused until {str(c['retry_at'])[:19]}" if c["state"] == "open" else ""
        click.echo(_one_line(f"destination {c['destination']}: {c['failures']} failure(s) "
                             f"in a row since {str(c['failing_since'])[:19]}{pause}: "
                             f"{c['last_error']}"))


def _plain(explanation: Any) -> dict[str, str]:
    return {"what": explanation.what, "next_step": explanation.next_step}


def _one_line(text: str) -> str:
    """A line for the terminal: what a server answered may hold control characters."""
    return "".join(c if c.isprintable() else " " for c in text)


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
