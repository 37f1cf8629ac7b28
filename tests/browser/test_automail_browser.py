"""The staff's automatic-mail page in Chromium: reached from the staff navigation with the
keyboard, axe-core finds no WCAG 2.x A/AA violation on it, and it fits a 375 px screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from intake.db.models import WorkItem
from intake.runtime import Runtime
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from tests.browser.conftest import ARGS, CHROMIUM, log_in, violations
from tests.conftest import make_account

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail" / "auto"
pytestmark = pytest.mark.slow


def test_automatic_mail_page_in_chromium(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    names = ["bounce--gmail-dsn.eml", "auto-reply--exchange-oof.eml", "bulk--mailman-list.eml",
             "spam--x-spam-status-yes.eml", "challenge--boxtrapper.eml"]
    context = MailContext.from_settings(runtime.settings, "contact", pii_key=runtime.pii_key)
    store_messages(runtime.db, [ReceivedMail((CORPUS / n).read_bytes()) for n in names], context)
    with runtime.db.session() as s:
        routes = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
    for item_id in routes:
        assert runtime.jobs.perform(item_id, "test") == "done"
    agent = make_account(runtime, "agent@governor.examplia.gov", "governor")

    axe = Axe()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(bypass_csp=True).new_page()
            log_in(page, base, agent)
            link = page.get_by_role("link", name="Automatic mail")
            link.focus()
            page.keyboard.press("Enter")
            page.wait_for_url("**/staff/automatic")
            assert page.get_by_role("heading", name="Automatic mail", level=1).count() == 1
            assert page.locator("tbody tr").count() == len(names)
            assert violations(axe, page) == []
            page.get_by_role("link", name="Bounces 1").click()
            page.wait_for_url("**/staff/automatic?category=bounce")
            assert page.locator("tbody tr").count() == 1
            assert violations(axe, page) == []
            page.set_viewport_size({"width": 375, "height": 800})
            page.goto(f"{base}/staff/automatic")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            wide = page.evaluate("""[...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > innerWidth)
                .map(e => e.tagName + '.' + e.className)""")
            assert overflow <= 0, f"{overflow} px of horizontal scroll at 375 px {wide}"
            assert violations(axe, page) == []
        finally:
            browser.close()
