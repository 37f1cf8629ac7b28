"""``intake staff ...``: create staff accounts and unlock them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from intake.cli.common import fail, load_rules_or_fail, open_runtime, settings_or_fail
from intake.core.roles import ROLES


def _read_password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the password file: {type(exc).__name__}")
        return lines[0] if lines else ""
    if sys.stdin is not None and sys.stdin.isatty():
        value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                  err=True)
        return value
    # No terminal (a script, a pipe): the first line of standard input.
    return sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""


@click.group()
def staff() -> None:
    """Staff accounts of the inbox."""


@staff.command("add")
@click.option("--email", required=True, help="The employee's e-mail address (the login).")
@click.option("--agency", "agency_id", required=True, help="Agency id from the rules file.")
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the password from the first line of this file "
                   "(default: prompt, or the first line of standard input).")
@click.option("--no-totp", is_flag=True,
              help="No second factor (refused for the administrator roles).")
def add(email: str, agency_id: str, role: str, password_file: Path | None,
        no_totp: bool) -> None:
    """Create a staff account; prints the TOTP secret once."""
    from intake.services import staff as accounts

    password = _read_password(password_file)
    settings = settings_or_fail()
    with open_runtime(settings) as runtime:
        load_rules_or_fail(runtime)
        if agency_id not in runtime.rules.current().agencies:
            fail(f"unknown agency '{agency_id}' (not in the rules file)")
        try:
            with runtime.db.session() as session:
                account, secret = accounts.create_account(
                    session, email=email, agency_id=agency_id, role=role, password=password,
                    with_totp=not no_totp)
                account_id, account_email = account.id, account.email
        except accounts.AccountError as exc:
            fail(str(exc))
    click.echo(f"created staff account {account_id} for {account_email} "
               f"({role}, agency {agency_id})")
    if secret is not None:
        click.echo("TOTP secret (shown once; add it to an authenticator app):")
        click.echo(f"  secret: {secret}")
        click.echo(f"  uri:    {accounts.provisioning_uri(secret, account_email)}")


@staff.command("unlock")
@click.option("--email", required=True)
def unlock(email: str) -> None:
    """Lift a lockout after too many failed logins."""
    from intake.services import staff as accounts

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        account_id = accounts.account_id_for(session, email)
        if account_id is None:
            fail(f"no staff account for {email}")
        accounts.unlock(session, account_id)
    click.echo(f"unlocked {email}")
