"""``intake db upgrade`` and ``intake db seal``: the database schema and its sealed rows."""

from __future__ import annotations

import click

from intake.cli.common import fail, open_runtime, progress_line, settings_or_fail


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest schema."""
    from intake.runtime import StartupError
    from intake.services.schema import head_revision

    settings = settings_or_fail()
    with open_runtime(settings, need_schema=False) as runtime:
        try:
            runtime.upgrade_database()
        except StartupError as exc:
            fail(str(exc))
        click.echo(f"database at revision {head_revision()} ({settings.database_kind})")


@db.command("seal")
@click.option("--apply", is_flag=True, help="Seal them (without it: only count them).")
def db_seal(apply: bool) -> None:
    """Seal the originals, replies, attachments and quarantined messages stored in plaintext
    before sealing began (run once after upgrading from such a release)."""
    from intake.services.sealing_upgrade import seal_plaintext

    with open_runtime(settings_or_fail()) as runtime:
        report = seal_plaintext(runtime.db, runtime.originals_key, apply=apply,
                                progress=progress_line("sealed", "rows"))
    for kind, count in report.found.items():
        click.echo(f"{kind}: {count} in plaintext")
    if apply:
        click.echo(f"{report.sealed} row(s) sealed")
    elif report.total:
        click.echo("run `intake db seal --apply` to seal them")
