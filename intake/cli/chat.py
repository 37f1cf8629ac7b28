"""``intake chat close-idle``: record the chats their visitors left without ending them."""

from __future__ import annotations

from datetime import timedelta

import click

from intake.cli.common import open_runtime, settings_or_fail


@click.group()
def chat() -> None:
    """Live Help chats."""


@chat.command("close-idle")
@click.option("--hours", type=click.FloatRange(min=0.1), default=12.0, show_default=True,
              help="End the chats with no message for this long.")
def close_idle(hours: float) -> None:
    """End every chat idle for --hours and record its transcript as an entry (as if the
    visitor had ended it without the exit interview), so that no conversation stays
    outside the record store. Run it from cron or a systemd timer, e.g. hourly."""
    from intake.services import chat as chats

    settings = settings_or_fail()
    with open_runtime(settings) as runtime:
        runtime.rules.load()
        with runtime.db.session() as session:
            idle = chats.idle_chats(session, timedelta(hours=hours))
        total = len(idle)
        for n, found in enumerate(idle, start=1):
            with runtime.db.session() as session:
                row = session.get(chats.ChatSession, found.id)
                if row is None or row.state not in ("waiting", "active"):
                    continue
                recorded = chats.end(session, row, chats.Ending(by="idle"),
                                     originals_key=runtime.originals_key,
                                     pii_key=runtime.pii_key,
                                     record_prefix=settings.record_prefix,
                                     timezone=settings.timezone)
            click.echo(f"[{n}/{total}] chat {found.id}: recorded as {recorded.record_number}")
        click.echo(f"{total} idle chat(s) ended")
