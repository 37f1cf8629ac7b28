"""``intake mailboxes check``: log in to each mailbox and the SMTP server; say what works."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from intake.cli.common import EXIT_CONFIG, EXIT_FAILURE, fail, settings_or_fail

if TYPE_CHECKING:
    from intake.mail.check import CheckResult


@click.group("mailboxes")
def mailboxes() -> None:
    """The configured mailboxes (INTAKE_IMAP_URL, INTAKE_MAILBOXES_FILE) and SMTP server."""


@mailboxes.command("check")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per mailbox/server.")
def check(as_json: bool) -> None:
    """Connect to each mailbox and the SMTP server: login, folder, processed folder.

    One line each; exit 1 if any fails. Nothing is fetched, moved, created or sent.
    """
    from intake.core.failures import DeliveryFailure
    from intake.mail.check import CheckResult, check_mailbox
    from intake.mail.config import MailboxConfigError, load_mailboxes
    from intake.runtime import configure_logging
    from intake.services.gate import check_mail_server

    settings = settings_or_fail()
    configure_logging(settings.log_level)
    try:
        configs = load_mailboxes(settings)
    except MailboxConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if not configs and not settings.smtp_url:
        fail("nothing to check: set INTAKE_IMAP_URL, INTAKE_MAILBOXES_FILE or INTAKE_SMTP_URL",
             EXIT_CONFIG)
    results: list[CheckResult] = []
    total = len(configs) + (1 if settings.smtp_url else 0)
    for index, config in enumerate(configs, 1):
        if not as_json:
            click.echo(f"checking {index}/{total}: mailbox {config.name}…", err=True)
        results.append(check_mailbox(config))
        _show(results[-1], as_json)
    if settings.smtp_url:
        if not as_json:
            click.echo(f"checking {total}/{total}: SMTP server…", err=True)
        auth = "oauth2" if settings.smtp_oauth2_file else "password"
        result = CheckResult("smtp", "outgoing", "INTAKE_SMTP_URL", auth)
        try:
            found = check_mail_server(settings)
        except DeliveryFailure as exc:
            result.error = f"login: {exc.reason}"
        else:
            if found is not None:
                result.server = found[0].removeprefix("smtp://")
                result.steps["login"] = found[1].removeprefix("login ")
        results.append(result)
        _show(result, as_json)
    if not all(r.ok for r in results):
        raise SystemExit(EXIT_FAILURE)


def _show(result: CheckResult, as_json: bool) -> None:
    click.echo(json.dumps(result.as_json(), ensure_ascii=False) if as_json else result.line())
