"""``intake audit verify``: tamper evidence of the consent and disclosure ledgers."""

from __future__ import annotations

import sys

import click

from intake.cli.common import EXIT_FAILURE, open_runtime, settings_or_fail


@click.group()
def audit() -> None:
    """Tamper evidence of the consent and disclosure ledgers."""


@audit.command("verify")
def audit_verify() -> None:
    """Verify the hash chains; report the first broken link and exit 1 if any."""
    from intake.services.consent import verify_chains

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        reports = verify_chains(session)
    broken = False
    for report in reports:
        verdict = report.verdict
        if verdict.ok:
            click.echo(f"{report.chain}: {verdict.rows_checked} rows, chain intact")
        else:
            broken = True
            where = f" at seq {verdict.broken_at_seq}" if verdict.broken_at_seq is not None else ""
            click.echo(f"{report.chain}: BROKEN{where} ({verdict.reason}) after checking "
                       f"{verdict.rows_checked} rows", err=True)
    sys.exit(EXIT_FAILURE if broken else 0)
