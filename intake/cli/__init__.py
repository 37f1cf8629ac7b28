"""The ``intake`` command line: the click group and its command groups, one module each.

Shared helpers (exit codes, one-line failures, settings, the runtime) are in
:mod:`intake.cli.common`; every failure an operator can cause ends in one
clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import click

from intake.cli.audit import audit
from intake.cli.chat import chat
from intake.cli.db import db
from intake.cli.forms import forms
from intake.cli.jobs import jobs
from intake.cli.mail import ingest, poll
from intake.cli.mailboxes import mailboxes
from intake.cli.notices import notices
from intake.cli.retention import retention
from intake.cli.rules import rules
from intake.cli.serve import serve
from intake.cli.staff import staff
from intake.cli.stats import stats
from intake.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intake")
def cli() -> None:
    """intake: the contact-form and e-mail intake router for state agencies."""


# One module per command group; each imports only intake.cli.common of the CLI.
cli.add_command(audit)
cli.add_command(chat)
cli.add_command(db)
cli.add_command(forms)
cli.add_command(ingest)
cli.add_command(jobs)
cli.add_command(mailboxes)
cli.add_command(notices)
cli.add_command(poll)
cli.add_command(retention)
cli.add_command(rules)
cli.add_command(serve)
cli.add_command(staff)
cli.add_command(stats)
cli.add_command(worker)


def main() -> None:
    cli(prog_name="intake")


if __name__ == "__main__":  # pragma: no cover
    main()
