"""Staff login cannot be used against staff: throttles, second factors, account management.

Over HTTP with the real app (Flask test client; the session cookie keeps its ``Secure``
flag, see tests/web/test_staff.py), on SQLite and PostgreSQL. Clients are told apart by
their address (``REMOTE_ADDR``); time passing is the throttle rows' ``blocked_until``
moved into the past, or the service's ``now``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from intake import create_app
from intake.db.staff_models import LoginThrottle, StaffAccount, StaffAccountEvent
from intake.runtime import Runtime
from intake.services import staff as accounts
from tests.conftest import Account, csrf_from, login, make_account, make_settings

OWNER_ADDRESS = "198.51.100.7"
ATTACKER_ADDRESS = "203.0.113.66"
WRONG = "not the password at all"


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def attempt(client: FlaskClient, email: str, password: str,
            code: str | None = None) -> TestResponse:
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    data = {"email": email, "password": password, "csrf_token": token}
    if code is not None:
        data["code"] = code
    return client.post("/staff/login", data=data)


def time_passes(runtime: Runtime) -> None:
    """Every throttle's delay is over (the failures stay counted)."""
    with runtime.db.session() as s:
        s.execute(update(LoginThrottle).where(LoginThrottle.blocked_until.is_not(None))
                  .values(blocked_until=datetime.now(UTC) - timedelta(seconds=1)))


def events_of(runtime: Runtime, account_id: int) -> list[tuple[int | None, str, str]]:
    with runtime.db.session() as s:
        return [(e.actor_id, e.actor, e.action) for e in s.scalars(
            select(StaffAccountEvent).where(StaffAccountEvent.target_id == account_id)
            .order_by(StaffAccountEvent.id))]


# -- throttling instead of a lockout ---------------------------------------------------------


def test_an_outsider_cannot_lock_the_owner_out(app: Flask, runtime: Runtime) -> None:
    owner = make_account(runtime, "owner@dot.examplia.gov", "dot")
    attacker = client_at(app, ATTACKER_ADDRESS)
    answers = [attempt(attacker, owner.email, WRONG).status_code for _ in range(8)]
    assert answers == [401] * 5 + [429] * 3  # the attacker's own client slows down
    time_passes(runtime)
    for _ in range(30):  # and from many more addresses, far past the account's ceiling
        attempt(client_at(app, f"203.0.113.{len(answers)}"), owner.email, WRONG)
        answers.append(0)

    # The owner's own browser still gets in with the password, and the code beside it
    # (past the account's ceiling the password is only checked together with a code).
    own = client_at(app, OWNER_ADDRESS)
    asked = attempt(own, owner.email, owner.password)
    assert asked.status_code == 401
    page = asked.get_data(as_text=True)
    assert 'name="code"' in page and "authenticator app" in page
    done = attempt(own, owner.email, owner.password, code=owner.code())
    assert done.status_code == 303 and "/staff/login" not in done.headers["Location"]
    assert own.get("/staff/inbox").status_code == 200

    # Meanwhile the attacker learns nothing about passwords: without a valid code the
    # right password gets the same answer as a wrong one.
    other = client_at(app, "192.0.2.200")
    right = attempt(other, owner.email, owner.password, code="000000")
    wrong = attempt(other, owner.email, WRONG, code="000000")
    assert right.status_code == wrong.status_code == 401
    strip = [r.get_data(as_text=True) for r in (right, wrong)]
    assert strip[0].replace(csrf_from(strip[0]), "") == strip[1].replace(csrf_from(strip[1]),
                                                                          "")


def test_the_throttle_grows_with_each_failure(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "slow@dot.examplia.gov", "dot")
    client = client_at(app, ATTACKER_ADDRESS)
    for _ in range(5):
        assert attempt(client, agent.email, WRONG).status_code == 401
    waits = []
    for _ in range(4):
        refused = attempt(client, agent.email, WRONG)
        assert refused.status_code == 429
        assert "Try again after" in refused.get_data(as_text=True)
        waits.append(int(refused.headers["Retry-After"]))
        # Refused attempts are not checked: even the right password is refused now.
        assert attempt(client, agent.email, agent.password).status_code == 429
        time_passes(runtime)
        assert attempt(client, agent.email, WRONG).status_code == 401
    final = attempt(client, agent.email, WRONG)
    waits.append(int(final.headers["Retry-After"]))
    # 1, 2, 4, 8, 16 minutes (a second of rounding either way).
    assert [round(w / 60) for w in waits] == [1, 2, 4, 8, 16], waits
    # Nothing about the client or the account is readable in the rows.
    with runtime.db.session() as s:
        keys = [(r.key, r.account_key or "") for r in s.scalars(select(LoginThrottle))]
    assert keys and all(ATTACKER_ADDRESS not in k + a and "slow@" not in k + a
                        for k, a in keys)


def test_parallel_attempts_through_two_workers_share_one_throttle(
        runtime: Runtime, settings: object) -> None:
    """Two web workers (two apps, each with its own runtime and connection pool, like two
    gunicorn processes) take a burst of parallel wrong passwords for one account from one
    client: exactly the free five are checked, the rest are refused."""
    from concurrent.futures import ThreadPoolExecutor

    agent = make_account(runtime, "burst@dot.examplia.gov", "dot")
    second = Runtime(runtime.settings)
    try:
        apps = [create_app(runtime=runtime), create_app(runtime=second)]
        clients = [client_at(apps[i % 2], ATTACKER_ADDRESS) for i in range(12)]
        tokens = [csrf_from(c.get("/staff/login").get_data(as_text=True)) for c in clients]

        def post(i: int) -> int:
            return clients[i].post("/staff/login", data={
                "email": agent.email, "password": WRONG, "csrf_token": tokens[i]}).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = sorted(pool.map(post, range(12)))
    finally:
        second.close()
    assert answers == [401] * 5 + [429] * 7


def test_delays_double_up_to_an_hour() -> None:
    assert [accounts.PAIR_POLICY.delay_after(n) for n in (4, 5, 6, 10, 11, 40)] == [
        None, timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=32),
        timedelta(hours=1), timedelta(hours=1)]


def _guesses_in_a_day(runtime: Runtime, email: str, *, many_clients: bool) -> int:
    """Simulate an attacker who tries a new password as soon as it is let in, for 24 hours;
    count the attempts whose answer depends on the password (the password guesses)."""
    attempt_of = accounts.Attempt(client=ATTACKER_ADDRESS, secret=b"k" * 32)
    start = now = datetime(2026, 12, 7, tzinfo=UTC)
    guesses = tries = 0
    while now < start + timedelta(days=1):
        tries += 1
        if many_clients:  # a botnet: every attempt from a new address
            attempt_of = accounts.Attempt(client=f"10.{tries // 65536}.{tries // 256 % 256}."
                                                 f"{tries % 256}", secret=b"k" * 32)
        with runtime.db.session() as s:
            step = accounts.check_password(s, email, f"guess {tries}", attempt_of, now=now)
            account_row = s.get(LoginThrottle, accounts.account_key(b"k" * 32, email))
            ceiling_until = account_row.blocked_until if account_row else None
        if step.reason == "bad-credentials":
            guesses += 1
        elif step.reason == "throttled":
            assert step.retry_at is not None
            now = step.retry_at
        elif step.reason == "code-needed":
            assert ceiling_until is not None
            now = ceiling_until
        else:  # pragma: no cover - a guess never succeeds here
            raise AssertionError(step)
    return guesses


@pytest.mark.parametrize(("many_clients", "bound"), [(False, 33), (True, 38)])
def test_password_guesses_per_day_are_bounded(runtime: Runtime, many_clients: bool,
                                              bound: int) -> None:
    make_account(runtime, "target@dot.examplia.gov", "dot")
    # One client: 5 free, then 1+2+4+8+16+32 minutes, then one an hour: 33 on the first
    # day, 24 a day after. Many clients: the account's ceiling, 10 free, then the same: 38.
    assert _guesses_in_a_day(runtime, "target@dot.examplia.gov",
                             many_clients=many_clients) == bound


def test_the_code_step_counts_failures_too(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "codes@dot.examplia.gov", "dot")
    client = client_at(app, ATTACKER_ADDRESS)
    answers = []
    for _ in range(5):
        assert attempt(client, agent.email, agent.password).status_code == 303
        token = csrf_from(client.get("/staff/login/code").get_data(as_text=True))
        answers.append(client.post("/staff/login/code",
                                   data={"code": "000000", "csrf_token": token}).status_code)
    assert answers == [401] * 5
    # Wrong codes slow the client down like wrong passwords.
    assert attempt(client, agent.email, agent.password).status_code == 429


def test_unlock_lifts_every_throttle_of_the_account(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "unlock@dot.examplia.gov", "dot")
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        for _ in range(5):
            attempt(client_at(app, address), agent.email, WRONG)
    assert attempt(client_at(app, "203.0.113.1"), agent.email, WRONG).status_code == 429
    with runtime.db.session() as s:
        accounts.unlock(s, agent.id, runtime.settings.derived_key(
            accounts.THROTTLE_KEY_PURPOSE), accounts.Actor.command_line("ops"))
    login(client_at(app, "203.0.113.1"), agent)
    assert events_of(runtime, agent.id) == [(None, "cli:ops", "unlocked")]


# -- every account has a second factor ----------------------------------------------------


def test_an_account_without_a_second_factor_cannot_log_in(app: Flask,
                                                          runtime: Runtime) -> None:
    agent = make_account(runtime, "plain@dot.examplia.gov", "dot", totp=False)
    client = client_at(app, OWNER_ADDRESS)
    assert attempt(client, agent.email, agent.password).status_code == 401
    assert client.get("/staff/inbox").status_code == 302
    with runtime.db.session() as s, pytest.raises(accounts.AccountError,
                                                  match="INTAKE_ALLOW_STAFF_WITHOUT_TOTP"):
        accounts.create_account(s, email="other@dot.examplia.gov", agency_id="dot",
                                role="agent", password="a long enough password",
                                with_totp=False)


def test_the_development_setting_lets_an_agent_in_without_a_code(
        tmp_path: object, db_url: str) -> None:
    from pathlib import Path

    runtime = Runtime(make_settings(Path(str(tmp_path)), db_url,
                                    INTAKE_ALLOW_STAFF_WITHOUT_TOTP="1"))
    runtime.rules.load()
    try:
        app = create_app(runtime=runtime)
        agent = make_account(runtime, "dev@dot.examplia.gov", "dot", totp=False)
        client = client_at(app, OWNER_ADDRESS)
        login(client, agent)
        assert client.get("/staff/inbox").status_code == 200
    finally:
        runtime.close()


def test_the_web_app_warns_at_start_of_accounts_without_a_second_factor(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="intake.staff"):
        create_app(runtime=runtime)
    assert not [r for r in caplog.records if "second factor" in r.getMessage()]
    make_account(runtime, "nofactor@dot.examplia.gov", "dot", totp=False)
    with caplog.at_level(logging.WARNING, logger="intake.staff"):
        create_app(runtime=runtime)
    warnings = [r.getMessage() for r in caplog.records if "second factor" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("1 active staff account(s)")
    assert "nofactor@" not in caplog.text  # the count only, never the address


# -- account management in the admin pages --------------------------------------------------


def _do(client: FlaskClient, account_id: int, action: str) -> TestResponse:
    url = f"/staff/admin/accounts/{account_id}/{action}"
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Yes, go ahead" in confirm.get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_from(confirm.get_data(as_text=True))})


@pytest.fixture
def staff(runtime: Runtime) -> dict[str, Account]:
    return {
        "root": make_account(runtime, "root@governor.examplia.gov", "governor",
                             role="system_admin"),
        "dot_admin": make_account(runtime, "boss@dot.examplia.gov", "dot",
                                  role="agency_admin"),
        "dot_admin2": make_account(runtime, "boss2@dot.examplia.gov", "dot",
                                   role="agency_admin"),
        "agent": make_account(runtime, "agent@dot.examplia.gov", "dot"),
        "ranger": make_account(runtime, "ranger@parks.examplia.gov", "parks"),
    }


def test_disabling_ends_the_sessions_at_once_and_enabling_lets_back_in(
        app: Flask, runtime: Runtime, staff: dict[str, Account]) -> None:
    agent, admin = staff["agent"], staff["dot_admin"]
    agents_browser = client_at(app, OWNER_ADDRESS)
    login(agents_browser, agent)
    assert agents_browser.get("/staff/inbox").status_code == 200

    admins_browser = client_at(app, "192.0.2.10")
    login(admins_browser, admin)
    listing = admins_browser.get("/staff/admin/accounts").get_data(as_text=True)
    assert agent.email in listing and "ranger@parks" not in listing
    done = _do(admins_browser, agent.id, "disable")
    assert done.status_code == 303
    assert "disabled" in admins_browser.get(done.headers["Location"]).get_data(as_text=True)

    assert agents_browser.get("/staff/inbox").status_code == 302  # the session is over
    assert attempt(client_at(app, OWNER_ADDRESS), agent.email,
                   agent.password).status_code == 401
    assert _do(admins_browser, agent.id, "enable").status_code == 303
    login(client_at(app, OWNER_ADDRESS), agent, code=agent.code(1))
    assert events_of(runtime, agent.id) == [(admin.id, f"staff:{admin.id}", "disabled"),
                                            (admin.id, f"staff:{admin.id}", "enabled")]
    page = admins_browser.get(f"/staff/admin/accounts/{agent.id}").get_data(as_text=True)
    assert page.count(admin.email) >= 2  # who did it, in the account's history


def test_reset_password_and_second_factor_show_the_new_secret_once(
        app: Flask, runtime: Runtime, staff: dict[str, Account]) -> None:
    agent, root = staff["agent"], staff["root"]
    agents_browser = client_at(app, OWNER_ADDRESS)
    login(agents_browser, agent)
    browser = client_at(app, "192.0.2.10")
    login(browser, root)

    shown = _do(browser, agent.id, "reset-password")
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    match = re.search(r"<dt>New password</dt><dd><code>([^<]+)</code>",
                      shown.get_data(as_text=True))
    assert match is not None
    new_password = match.group(1)
    assert agents_browser.get("/staff/inbox").status_code == 302
    assert attempt(client_at(app, OWNER_ADDRESS), agent.email,
                   agent.password).status_code == 401
    login(client_at(app, OWNER_ADDRESS), Account(agent.id, agent.email, "dot", "agent",
                                                 agent.secret, new_password),
          code=agent.code(1))  # the current code was used once already

    shown = _do(browser, agent.id, "reset-totp")
    match = re.search(r"<dt>TOTP secret</dt><dd><code>([A-Z2-7]+)</code>",
                      shown.get_data(as_text=True))
    assert match is not None and match.group(1) != agent.secret
    assert "otpauth://totp/" in shown.get_data(as_text=True)
    renewed = Account(agent.id, agent.email, "dot", "agent", match.group(1), new_password)
    old_factor = client_at(app, OWNER_ADDRESS)
    assert attempt(old_factor, agent.email, new_password).status_code == 303
    token = csrf_from(old_factor.get("/staff/login/code").get_data(as_text=True))
    old_code = pyotp.TOTP(agent.secret or "").now()
    assert old_factor.post("/staff/login/code", data={"code": old_code,
                                                      "csrf_token": token}).status_code == 401
    login(client_at(app, OWNER_ADDRESS), renewed)
    assert [a for _, _, a in events_of(runtime, agent.id)] == ["password-reset", "totp-reset"]
    # Shown once: the account page never shows the secret again.
    page = browser.get(f"/staff/admin/accounts/{agent.id}").get_data(as_text=True)
    assert match.group(1) not in page and new_password not in page


def test_unlock_from_the_admin_page(app: Flask, runtime: Runtime,
                                    staff: dict[str, Account]) -> None:
    agent = staff["agent"]
    for _ in range(6):
        attempt(client_at(app, ATTACKER_ADDRESS), agent.email, WRONG)
    browser = client_at(app, "192.0.2.10")
    login(browser, staff["dot_admin"])
    assert _do(browser, agent.id, "unlock").status_code == 303
    agents_key = accounts.account_key(runtime.settings.derived_key(
        accounts.THROTTLE_KEY_PURPOSE), agent.email)
    with runtime.db.session() as s:
        assert s.scalars(select(LoginThrottle).where(
            LoginThrottle.account_key == agents_key)).all() == []
    assert attempt(client_at(app, ATTACKER_ADDRESS), agent.email, WRONG).status_code == 401
    assert events_of(runtime, agent.id)[-1][2] == "unlocked"


def test_who_may_manage_whom(app: Flask, runtime: Runtime, staff: dict[str, Account]) -> None:
    browser = client_at(app, "192.0.2.10")
    login(browser, staff["dot_admin"])
    # Another agency's account, a peer administrator, oneself: the same 404 as nothing.
    for target in (staff["ranger"], staff["dot_admin2"], staff["dot_admin"], staff["root"]):
        assert browser.get(f"/staff/admin/accounts/{target.id}").status_code == 404
        token = csrf_from(browser.get("/staff/admin/accounts").get_data(as_text=True))
        assert browser.post(f"/staff/admin/accounts/{target.id}/disable",
                            data={"csrf_token": token}).status_code == 404
    assert browser.get("/staff/admin/accounts/999999/disable").status_code == 404
    assert browser.get(f"/staff/admin/accounts/{staff['agent'].id}/delete").status_code == 404
    # No CSRF token, no change.
    assert browser.post(f"/staff/admin/accounts/{staff['agent'].id}/disable").status_code \
        == 400
    agents_browser = client_at(app, OWNER_ADDRESS)
    login(agents_browser, staff["agent"])
    assert agents_browser.get("/staff/admin/accounts").status_code == 403
    root = client_at(app, "192.0.2.11")
    login(root, staff["root"])
    listing = root.get("/staff/admin/accounts").get_data(as_text=True)
    assert "ranger@parks" in listing and "boss2@dot" in listing
    assert root.get(f"/staff/admin/accounts/{staff['dot_admin2'].id}").status_code == 200
    with runtime.db.session() as s:
        assert s.scalar(select(StaffAccount.disabled).where(
            StaffAccount.id == staff["agent"].id)) is False
        assert s.scalars(select(StaffAccountEvent)).all() == []


def test_the_accounts_pages_speak_spanish(app: Flask, runtime: Runtime,
                                          staff: dict[str, Account]) -> None:
    browser = client_at(app, "192.0.2.10")
    login(browser, staff["root"])
    page = browser.get("/staff/admin/accounts",
                       headers={"Accept-Language": "es-ES,es;q=0.9"}).get_data(as_text=True)
    assert '<html lang="es">' in page and "Cuentas del personal" in page
    english = browser.get("/staff/admin/accounts").get_data(as_text=True)
    assert '<html lang="en">' in english and "Staff accounts" in english
    login_page = client_at(app, OWNER_ADDRESS).get("/staff/login?lang=es").get_data(
        as_text=True)
    assert '<html lang="es">' in login_page and "Correo electrónico" in login_page
    # The untranslated pages keep saying they are English.
    inbox = browser.get("/staff/inbox", headers={"Accept-Language": "es"}).get_data(
        as_text=True)
    assert '<html lang="en">' in inbox


def test_after_a_reset_the_employee_must_choose_a_password_of_their_own(
        app: Flask, runtime: Runtime, staff: dict[str, Account]) -> None:
    agent = staff["agent"]
    admin = client_at(app, "192.0.2.10")
    login(admin, staff["root"])
    shown = _do(admin, agent.id, "reset-password").get_data(as_text=True)
    match = re.search(r"<dt>New password</dt><dd><code>([^<]+)</code>", shown)
    assert match is not None
    given = Account(agent.id, agent.email, "dot", "agent", agent.secret, match.group(1))

    elsewhere = client_at(app, "192.0.2.20")
    login(elsewhere, given)
    browser = client_at(app, OWNER_ADDRESS)
    login(browser, given, code=agent.code(1))
    # Nothing but the password page until the employee has chosen one.
    for url in ("/staff/inbox", f"/staff/entries/{1}"):
        held = browser.get(url)
        assert held.status_code == 303 and held.headers["Location"].endswith(
            "/staff/account/password")
    page = browser.get("/staff/account/password").get_data(as_text=True)
    assert "reset by an administrator" in page
    token = csrf_from(page)

    def change(current: str, new: str, again: str | None = None) -> TestResponse:
        return browser.post("/staff/account/password", data={
            "csrf_token": token, "current_password": current, "new_password": new,
            "new_password_again": new if again is None else again})

    mine = "my own long passphrase"
    assert "not right" in change(agent.password, mine).get_data(as_text=True)
    assert "not the same" in change(given.password, mine, mine + "!").get_data(as_text=True)
    assert "differ" in change(given.password, given.password).get_data(as_text=True)
    assert "at least 12" in change(given.password, "short").get_data(as_text=True)
    assert browser.get("/staff/inbox").status_code == 303  # still held
    done = change(given.password, mine)
    assert done.status_code == 303
    assert browser.get("/staff/inbox").status_code == 200  # this session goes on
    assert elsewhere.get("/staff/inbox").status_code == 302  # the other one ended
    # The new password is the one that works now (both usable codes are spent: the service).
    with runtime.db.session() as s:
        assert accounts.check_password(s, agent.email, mine, accounts.Attempt(
            client="192.0.2.21", secret=b"k" * 32)).reason == "totp-required"
    assert events_of(runtime, agent.id)[-2:] == [
        (staff["root"].id, f"staff:{staff['root'].id}", "password-reset"),
        (agent.id, f"staff:{agent.id}", "password-changed")]
