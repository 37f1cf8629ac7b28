"""The staff dashboard in Chromium: reached from the staff navigation with the keyboard,
axe-core finds no WCAG 2.x A/AA violation on the agency's page or on the administrator's,
the CSP reports nothing (no inline script or style), and it fits a 375 px screen."""

from __future__ import annotations

from typing import Any

import pytest

from intake.runtime import Runtime
from tests.browser.conftest import ARGS, CHROMIUM, log_in, violations
from tests.conftest import make_account, make_entry

pytestmark = pytest.mark.slow


def _no_overflow(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow} px of horizontal scroll at 375 px"


def test_dashboard_pages_in_chromium(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    for i in range(12):
        make_entry(runtime, "dot", subject=f"Pothole {i}", key=f"dot-{i}")
    make_entry(runtime, "parks", subject="Trail", key="parks-0")
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    admin = make_account(runtime, "admin@examplia.gov", "governor", role="system_admin")

    axe = Axe()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            # Visits first, in a context that enforces the CSP: nothing may be refused.
            strict = browser.new_context()
            visitor = strict.new_page()
            for _ in range(3):
                visitor.goto(f"{base}/forms/contact")
            strict.close()

            page_errors: list[str] = []
            context = browser.new_context()
            page = context.new_page()
            page.on("console", lambda m: page_errors.append(m.text)
                    if "Content Security Policy" in m.text else None)
            log_in(page, base, agent)
            link = page.get_by_role("link", name="Dashboard")
            link.focus()
            page.keyboard.press("Enter")
            page.wait_for_url("**/staff/dashboard")
            assert page.get_by_role("heading", name="Dashboard: agency dot", level=1).count() == 1
            assert page.locator("svg.chart[role=img]").count() >= 5
            assert page_errors == []
            logged_in = context.storage_state()  # a TOTP code is good once: keep the session
            context.close()

            # axe injects its script: the CSP is bypassed from here on.
            context = browser.new_context(bypass_csp=True, storage_state=logged_in)
            page = context.new_page()
            page.goto(f"{base}/staff/dashboard")
            assert violations(axe, page) == []
            page.set_viewport_size({"width": 375, "height": 800})
            _no_overflow(page)
            assert violations(axe, page) == []
            context.close()

            context = browser.new_context(bypass_csp=True)
            page = context.new_page()
            log_in(page, base, admin)
            page.goto(f"{base}/staff/dashboard")
            assert page.get_by_role("heading", name="Dashboard: all agencies").count() == 1
            assert violations(axe, page) == []
            page.get_by_label("Agency (empty for all agencies)").fill("parks")
            page.get_by_role("button", name="Show").click()
            page.wait_for_url("**/staff/dashboard?agency=parks*")
            assert page.get_by_role("heading", name="Dashboard: agency parks").count() == 1
            assert violations(axe, page) == []
            context.close()
        finally:
            browser.close()
