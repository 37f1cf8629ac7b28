"""``intake staff ...``: create, list, disable, enable and reset staff accounts.

Every change is recorded in ``staff_account_events`` with the operating-system
user who ran the command (``cli:<user>``).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
              help="No second factor: refused unless INTAKE_ALLOW_STAFF_WITHOUT_TOTP=1 "
                   "(development only), and always for the administrator roles.")
def add(email: str, agency_id: str, role: str, password_file: Path | None,
        no_totp: bool) -> None:
    """Create a staff account; prints the TOTP secret once."""
    from intake.services import staff as accounts

    settings = settings_or_fail()
    if no_totp and not settings.allow_staff_without_totp:
        fail(accounts.NO_TOTP_REFUSED)
    password = _read_password(password_file)
    with open_runtime(settings) as runtime:
        load_rules_or_fail(runtime)
        if agency_id not in runtime.rules.current().agencies:
            fail(f"unknown agency '{agency_id}' (not in the rules file)")
        try:
            with runtime.db.session() as session:
                account, secret = accounts.create_account(
                    session, email=email, agency_id=agency_id, role=role, password=password,
                    with_totp=not no_totp,
                    allow_without_totp=settings.allow_staff_without_totp, actor=_operator())
                account_id, account_email = account.id, account.email
        except accounts.AccountError as exc:
            fail(str(exc))
    click.echo(f"created staff account {account_id} for {account_email} "
               f"({role}, agency {agency_id})")
    if secret is not None:
        click.echo("TOTP secret (shown once; add it to an authenticator app):")
        click.echo(f"  secret: {secret}")
        click.echo(f"  uri:    {accounts.provisioning_uri(secret, account_email)}")


def _operator() -> Any:
    from intake.services.staff import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        user = "unknown"
    return Actor.command_line(user)


@contextmanager
def _account(email: str) -> Iterator[tuple[Any, Any, int]]:
    """The runtime, a session and the id of the account with this e-mail (or fail)."""
    from intake.services import staff as accounts

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        account_id = accounts.account_id_for(session, email)
        if account_id is None:
            fail(f"no staff account for {email}")
        yield runtime, session, account_id


def _change(email: str, change: Callable[[Any, Any, int], None], done: str) -> None:
    from intake.services import staff as accounts

    try:
        with _account(email) as (runtime, session, account_id):
            change(runtime, session, account_id)
    except accounts.AccountError as exc:
        fail(str(exc))
    click.echo(f"{done} {accounts.normalise_email(email)}")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_accounts(as_json: bool) -> None:
    """List the staff accounts (no secrets): agency, role, state, second factor, last login."""
    from intake.services import staff as accounts

    with open_runtime(settings_or_fail()) as runtime, runtime.db.session() as session:
        rows = accounts.list_accounts(session)
    for row in rows:
        fields = {"id": row.id, "email": row.email, "agency": row.agency_id, "role": row.role,
                  "disabled": row.disabled, "second_factor": row.has_second_factor,
                  "created_at": row.created_at.isoformat(),
                  "last_login_at": row.last_login_at.isoformat() if row.last_login_at
                  else None}
        if as_json:
            click.echo(json.dumps(fields))
        else:
            state = "disabled" if row.disabled else "active"
            factor = "totp" if row.has_second_factor else "NO SECOND FACTOR"
            click.echo(f"{row.id}\t{row.email}\t{row.agency_id}\t{row.role}\t{state}\t"
                       f"{factor}\t{fields['last_login_at'] or 'never'}")
    if not rows and not as_json:
        click.echo("no staff accounts", err=True)


@staff.command("disable")
@click.option("--email", required=True)
def disable(email: str) -> None:
    """Disable an account: it cannot log in and its sessions end at once."""
    from intake.services import staff as accounts

    _change(email, lambda _rt, s, account_id: accounts.set_disabled(
        s, account_id, True, _operator()), "disabled")


@staff.command("enable")
@click.option("--email", required=True)
def enable(email: str) -> None:
    """Re-enable a disabled account."""
    from intake.services import staff as accounts

    _change(email, lambda _rt, s, account_id: accounts.set_disabled(
        s, account_id, False, _operator()), "enabled")


@staff.command("reset-password")
@click.option("--email", required=True)
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the new password from the first line of this file "
                   "(default: prompt, or the first line of standard input).")
def reset_password(email: str, password_file: Path | None) -> None:
    """Set a new password; the sessions end, and the next login must choose a new one."""
    from intake.services import staff as accounts

    password = _read_password(password_file)
    _change(email, lambda _rt, s, account_id: accounts.reset_password(
        s, account_id, password, _operator()), "new password set for")


@staff.command("reset-totp")
@click.option("--email", required=True)
def reset_totp(email: str) -> None:
    """Give the account a new TOTP secret (printed once); the old one stops working."""
    from intake.services import staff as accounts

    secrets: list[str] = []
    _change(email, lambda _rt, s, account_id: secrets.append(accounts.reset_totp(
        s, account_id, _operator())), "new second factor for")
    address = accounts.normalise_email(email)
    click.echo("TOTP secret (shown once; add it to an authenticator app):")
    click.echo(f"  secret: {secrets[0]}")
    click.echo(f"  uri:    {accounts.provisioning_uri(secrets[0], address)}")


@staff.command("unlock")
@click.option("--email", required=True)
def unlock(email: str) -> None:
    """Lift the login throttles of an account (every client, and its ceiling)."""
    from intake.services import staff as accounts

    _change(email, lambda rt, s, account_id: accounts.unlock(
        s, account_id, rt.settings.derived_key(accounts.THROTTLE_KEY_PURPOSE), _operator()),
        "unlocked")
