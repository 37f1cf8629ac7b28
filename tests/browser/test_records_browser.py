"""The public records and the records officer's review in Chromium, with axe-core.

A records officer logs in, marks a phrase and publishes an entry on the
review pages; the public then lists, searches (with JavaScript off) and
reads it, in English and Spanish. axe-core checks every page for WCAG 2.1
A/AA violations; the page's CSP stays on.
"""

from __future__ import annotations

from typing import Any

import pytest

from intake.runtime import Runtime
from tests.browser.conftest import ARGS, CHROMIUM, WCAG
from tests.conftest import make_account, make_entry

pytestmark = pytest.mark.slow


def test_records_pages_in_chromium(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    officer = make_account(runtime, "records@dot.examplia.gov", "dot", role="records_officer")
    entry_id = make_entry(runtime, "dot", subject="Pothole near the Quimbly depot",
                          body="A pothole on Route 9; my SSN is 219-45-6781. Ada Lovelace",
                          key="pothole")
    assert entry_id == 1
    make_entry(runtime, "dot", subject="Not published", key="other")
    axe = Axe()
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        results = axe.run(page, options=WCAG)
        found = [f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']][:3]})"
                 for v in results.response["violations"]]
        if found:
            problems[name] = found

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{base}/staff/login")
            page.get_by_label("E-mail address").fill(officer.email)
            page.get_by_label("Password").fill(officer.password)
            page.get_by_role("button", name="Continue").click()
            page.wait_for_url("**/staff/login/code")
            page.get_by_label("The 6-digit code").fill(officer.code())
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/staff/inbox")
            page.get_by_role("link", name="Records review").click()
            page.wait_for_url("**/staff/review")
            check(page, "review queue")
            page.get_by_role("link", name="EX-2026-000001").click()
            page.wait_for_url(f"**/staff/review/{entry_id}")
            check(page, "review entry")
            page.get_by_label("Text, expression or phrase").fill("Quimbly")
            page.get_by_label("Reason", exact=True).select_option("preliminary")
            page.get_by_label("Comment on the mark").fill("a private business")
            page.get_by_role("button", name="Add the mark").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").filter(has_text="Redaction mark added").count()
            page.get_by_role("button", name="Review and publish").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").filter(has_text="Reviewed and published").count()
            check(page, "review entry after actions")

            # The public, without JavaScript: search and read (axe needs JavaScript, so
            # the same pages are checked in a second context below).
            quiet = browser.new_context(java_script_enabled=False)
            public = quiet.new_page()
            public.goto(f"{base}/records")
            public.get_by_label("Search words").fill("pothole")
            public.get_by_role("button", name="Search").click()
            public.wait_for_load_state()
            assert "q=pothole" in public.url
            assert public.get_by_role("heading", name="Search results").count() == 1
            assert public.get_by_text("Not published").count() == 0
            search_url = public.url
            public.get_by_role("link", name="EX-2026-000001").click()
            public.wait_for_load_state()
            record_url = public.url
            text = public.content()
            assert "Quimbly" not in text and "219-45-6781" not in text
            assert "Lovelace" not in text
            assert public.get_by_text("preliminary draft or recommendation withheld").count()
            public.get_by_role("link", name="Español").click()
            public.wait_for_load_state()
            assert public.locator("html").get_attribute("lang") == "es"
            spanish_url = public.url
            assert quiet.cookies() == []

            seen = browser.new_context().new_page()
            for name, url in (("list", f"{base}/records"), ("search results", search_url),
                              ("record", record_url), ("record (es)", spanish_url),
                              ("no results (es)", f"{base}/records?lang=es&q=zzzz")):
                seen.goto(url)
                check(seen, name)
        finally:
            browser.close()
    assert problems == {}
