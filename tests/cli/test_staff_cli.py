"""``intake staff ...`` as an operator meets it, on SQLite and PostgreSQL.

The commands run through click's CliRunner against the database the web app
(Flask test client) uses, so "the session ended" and "the new password works"
are checked over HTTP; the start-up warnings are checked on real processes.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.cli import cli
from intake.db.staff_models import LoginThrottle, StaffAccount, StaffAccountEvent
from intake.runtime import Runtime
from tests.conftest import (
    SMALL_RULES,
    TEST_SECRET,
    Account,
    csrf_from,
    free_port,
    login,
    make_account,
    output_of,
    subprocess_env,
    wait_for,
)

PASSWORD = "a long enough password"


def run(runtime: Runtime, *args: str, input: str | None = None, **env: str) -> Result:
    environment = {"INTAKE_DATABASE_URL": runtime.settings.database_url,
                   "INTAKE_SECRET_KEY": TEST_SECRET, "INTAKE_RULES": str(SMALL_RULES),
                   "INTAKE_INSTANCE_PATH": str(runtime.settings.instance_path),
                   "INTAKE_ALLOW_STAFF_WITHOUT_TOTP": "", **env}
    return CliRunner().invoke(cli, ["staff", *args], input=input, env=environment)


def operator() -> str:
    return f"cli:{getpass.getuser()}"


def actions_on(runtime: Runtime, email: str) -> list[tuple[str, str]]:
    with runtime.db.session() as s:
        account_id = s.scalar(select(StaffAccount.id).where(StaffAccount.email == email))
        return [(e.actor, e.action) for e in s.scalars(
            select(StaffAccountEvent).where(StaffAccountEvent.target_id == account_id)
            .order_by(StaffAccountEvent.id))]


def browser(runtime: Runtime) -> FlaskClient:
    app = create_app(runtime=runtime)
    app.testing = True
    return app.test_client()


def test_add_without_a_second_factor_is_refused_unless_for_development(
        runtime: Runtime) -> None:
    refused = run(runtime, "add", "--email", "plain@dot.examplia.gov", "--agency", "dot",
                  "--no-totp", input=PASSWORD + "\n")
    assert refused.exit_code != 0
    assert "INTAKE_ALLOW_STAFF_WITHOUT_TOTP" in refused.output
    assert "Traceback" not in refused.output
    allowed = run(runtime, "add", "--email", "plain@dot.examplia.gov", "--agency", "dot",
                  "--no-totp", input=PASSWORD + "\n", INTAKE_ALLOW_STAFF_WITHOUT_TOTP="1")
    assert allowed.exit_code == 0, allowed.output
    assert "secret:" not in allowed.output
    admin = run(runtime, "add", "--email", "boss@dot.examplia.gov", "--agency", "dot",
                "--role", "agency_admin", "--no-totp", input=PASSWORD + "\n",
                INTAKE_ALLOW_STAFF_WITHOUT_TOTP="1")
    assert admin.exit_code != 0 and "second factor" in admin.output
    with_factor = run(runtime, "add", "--email", "agent@dot.examplia.gov", "--agency", "dot",
                      input=PASSWORD + "\n")
    assert with_factor.exit_code == 0 and "otpauth://totp/" in with_factor.output
    assert actions_on(runtime, "plain@dot.examplia.gov") == [(operator(), "created")]
    assert actions_on(runtime, "agent@dot.examplia.gov") == [(operator(), "created")]


def test_list_shows_every_account_without_secrets(runtime: Runtime) -> None:
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    make_account(runtime, "plain@parks.examplia.gov", "parks", totp=False)
    result = run(runtime, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["email"], r["agency"], r["second_factor"], r["disabled"]) for r in rows] == [
        ("agent@dot.examplia.gov", "dot", True, False),
        ("plain@parks.examplia.gov", "parks", False, False)]
    assert agent.secret is not None and agent.secret not in result.output
    text = run(runtime, "list")
    assert "NO SECOND FACTOR" in text.output and "plain@parks.examplia.gov" in text.output


def test_disable_ends_the_sessions_at_once_and_enable_lets_back_in(runtime: Runtime) -> None:
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    client = browser(runtime)
    login(client, agent)
    assert client.get("/staff/inbox").status_code == 200
    result = run(runtime, "disable", "--email", "Agent@dot.examplia.gov")
    assert result.exit_code == 0, result.output
    assert client.get("/staff/inbox").status_code == 302
    listed = json.loads(run(runtime, "list", "--json").output)
    assert listed["disabled"] is True
    again = browser(runtime)
    token = csrf_from(again.get("/staff/login").get_data(as_text=True))
    assert again.post("/staff/login", data={"email": agent.email, "password": agent.password,
                                            "csrf_token": token}).status_code == 401
    assert run(runtime, "enable", "--email", agent.email).exit_code == 0
    login(browser(runtime), agent, code=agent.code(1))
    assert actions_on(runtime, agent.email) == [(operator(), "disabled"),
                                                (operator(), "enabled")]
    unknown = run(runtime, "disable", "--email", "nobody@dot.examplia.gov")
    assert unknown.exit_code != 0 and "no staff account" in unknown.output


def test_reset_password_and_second_factor(runtime: Runtime, tmp_path: Path) -> None:
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    client = browser(runtime)
    login(client, agent)
    short = tmp_path / "short"
    short.write_text("too short\n")
    refused = run(runtime, "reset-password", "--email", agent.email, "--password-file",
                  str(short))
    assert refused.exit_code != 0 and "at least 12" in refused.output
    new = tmp_path / "new"
    new.write_text("a brand new long password\n")
    result = run(runtime, "reset-password", "--email", agent.email, "--password-file",
                 str(new))
    assert result.exit_code == 0, result.output
    assert client.get("/staff/inbox").status_code == 302  # the session ended with it
    renewed = Account(agent.id, agent.email, "dot", "agent", agent.secret,
                      "a brand new long password")
    login(browser(runtime), renewed, code=agent.code(1))

    shown = run(runtime, "reset-totp", "--email", agent.email)
    assert shown.exit_code == 0, shown.output
    secret = next(line.split(":", 1)[1].strip() for line in shown.output.splitlines()
                  if line.strip().startswith("secret:"))
    assert secret != agent.secret and "otpauth://totp/" in shown.output
    login(browser(runtime), Account(agent.id, agent.email, "dot", "agent", secret,
                                    "a brand new long password"))
    assert [a for _, a in actions_on(runtime, agent.email)] == ["password-reset",
                                                                "totp-reset"]


def test_unlock_lifts_the_throttles(runtime: Runtime) -> None:
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    client = browser(runtime)
    for _ in range(6):
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
        last = client.post("/staff/login", data={"email": agent.email, "password": "wrong!",
                                                 "csrf_token": token})
    assert last.status_code == 429
    result = run(runtime, "unlock", "--email", agent.email)
    assert result.exit_code == 0, result.output
    with runtime.db.session() as s:
        assert [r.scope for r in s.scalars(select(LoginThrottle))] == ["client"]
    login(client, agent)
    assert actions_on(runtime, agent.email) == [(operator(), "unlocked")]


def test_serve_and_worker_warn_at_start_of_accounts_without_a_second_factor(
        runtime: Runtime, redis_url: str,
        server_process: Callable[..., subprocess.Popen[str]]) -> None:
    make_account(runtime, "plain@dot.examplia.gov", "dot", totp=False)
    env = subprocess_env(INTAKE_DATABASE_URL=runtime.settings.database_url,
                         INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(runtime.settings.instance_path))
    serve = server_process(["serve", "--port", str(free_port())], env)
    worker = server_process(["worker", "--threads", "1"],
                            {**env, "INTAKE_BROKER_URL": redis_url})
    for proc, ready in ((serve, "intake serving on"), (worker, "consuming from")):
        wait_for(lambda p=proc, r=ready: r in output_of(p) or p.poll() is not None,
                 timeout=60)
        output = output_of(proc)
        assert ready in output, output
        assert "1 active staff account(s) have no second factor" in output, output
        assert "plain@dot" not in output


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_the_development_setting_must_be_clear(runtime: Runtime, value: str) -> None:
    result = run(runtime, "list", INTAKE_ALLOW_STAFF_WITHOUT_TOTP=value)
    assert result.exit_code == 2
    assert "INTAKE_ALLOW_STAFF_WITHOUT_TOTP: expected 1 or 0" in result.output
