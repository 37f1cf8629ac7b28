"""The staff account pages in Chromium, in English and Spanish: axe-core finds no WCAG
2.2 A/AA violation on the login, list, account, confirmation and one-time secret pages,
and every action is done with the keyboard alone (no JavaScript on the pages)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake.db.staff_models import StaffAccount, StaffAccountEvent
from intake.runtime import Runtime
from tests.browser.conftest import ARGS, CHROMIUM, WCAG
from tests.conftest import make_account

pytestmark = pytest.mark.slow

WORDS = {
    "en": {"email": "E-mail address", "password": "Password", "continue": "Continue",
           "code": "The 6-digit code", "log_in": "Log in", "accounts": "Staff accounts",
           "manage": "Manage", "disable": "Disable the account", "yes": "Yes, go ahead",
           "disabled": "The account is disabled", "reset_totp": "Reset the second factor",
           "secret": "TOTP secret"},
    "es": {"email": "Correo electrónico", "password": "Contraseña", "continue": "Continuar",
           "code": "El código de 6 dígitos", "log_in": "Iniciar sesión",
           "accounts": "Cuentas del personal", "manage": "Administrar",
           "disable": "Desactivar la cuenta", "yes": "Sí, adelante",
           "disabled": "La cuenta está desactivada", "reset_totp":
           "Restablecer el segundo factor", "secret": "Secreto TOTP"},
}


def test_account_pages_in_english_and_spanish(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    root = make_account(runtime, "root@governor.examplia.gov", "governor", role="system_admin")
    targets = {lang: make_account(runtime, f"agent-{lang}@dot.examplia.gov", "dot")
               for lang in WORDS}
    axe = Axe()
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        results = axe.run(page, options=WCAG)
        found = [f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']][:3]})"
                 for v in results.response["violations"]]
        if found:
            problems[name] = found

    def press(page: Any, role: str, name: str) -> None:
        control = page.get_by_role(role, name=name)
        control.focus()
        page.keyboard.press("Enter")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for step, (lang, words) in enumerate(WORDS.items()):
                context = browser.new_context(locale="es-ES" if lang == "es" else "en-US")
                page = context.new_page()
                page.goto(f"{base}/staff/login")
                assert page.get_attribute("html", "lang") == lang
                check(page, f"{lang} login")
                page.get_by_label(words["email"]).fill(root.email)
                page.get_by_label(words["password"]).fill(root.password)
                press(page, "button", words["continue"])
                page.wait_for_url("**/staff/login/code")
                check(page, f"{lang} login code")
                page.get_by_label(words["code"]).fill(root.code(step))
                press(page, "button", words["log_in"])
                page.wait_for_url("**/staff/inbox")

                # The inbox is not translated (yet): its navigation stays English.
                press(page, "link", "Staff accounts")
                page.wait_for_url("**/staff/admin/accounts")
                assert page.get_by_role("heading", name=words["accounts"]).count() == 1
                assert page.get_attribute("html", "lang") == lang
                check(page, f"{lang} accounts")
                target = targets[lang]
                press(page, "link", f"{words['manage']} {target.email}")
                page.wait_for_url(f"**/staff/admin/accounts/{target.id}")
                check(page, f"{lang} account")
                press(page, "link", words["disable"])
                page.wait_for_url(f"**/staff/admin/accounts/{target.id}/disable")
                check(page, f"{lang} confirm")
                press(page, "button", words["yes"])
                page.wait_for_url(f"**/staff/admin/accounts/{target.id}")
                assert page.get_by_role("status").filter(has_text=words["disabled"]).count() \
                    == 1
                check(page, f"{lang} account after disabling")
                press(page, "link", words["reset_totp"])
                page.wait_for_url(f"**/staff/admin/accounts/{target.id}/reset-totp")
                press(page, "button", words["yes"])
                page.get_by_text(words["secret"], exact=True).wait_for()  # the answer came
                check(page, f"{lang} new secret")
                page.goto(f"{base}/staff/account/password")
                assert page.get_attribute("html", "lang") == lang
                check(page, f"{lang} change password")
                context.close()
        finally:
            browser.close()

    assert problems == {}
    with runtime.db.session() as s:
        for target in targets.values():
            account = s.get(StaffAccount, target.id)
            assert account is not None and account.disabled
            assert account.totp_secret != target.secret
        assert [e.action for e in s.scalars(select(StaffAccountEvent)
                                            .order_by(StaffAccountEvent.id))] == [
            "disabled", "totp-reset"] * 2
