"""The staff inbox in Chromium: log in with TOTP, triage, reply, reroute, log out.

axe-core checks every staff page for WCAG 2.1 A/AA violations; entries whose
subject, body, submitter name and attachment name carry script payloads must
render inert (no dialog opens, no script runs). The page's CSP stays on.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake.db.models import Disclosure, Entry, ThreadMessage
from intake.runtime import Runtime
from tests.browser.conftest import ARGS, CHROMIUM, violations
from tests.conftest import make_account, make_entry

XSS_SUBJECT = "<script>alert('subject')</script>"
XSS_BODY = "<img src=x onerror=alert('body')> </textarea><script>alert('body2')</script>"
XSS_NAME = '"><svg onload=alert("name")>'
XSS_FILE = "<img src=x onerror=alert('file')>.html"

pytestmark = pytest.mark.slow


def test_staff_flow_in_chromium(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    admin = make_account(runtime, "admin@dot.examplia.gov", "dot", role="agency_admin")
    make_account(runtime, "ranger@parks.examplia.gov", "parks")
    xss_id = make_entry(runtime, "dot", subject=XSS_SUBJECT, body=XSS_BODY, name=XSS_NAME,
                        attachment=(XSS_FILE, b"<script>alert(1)</script>"), key="xss")
    pothole_id = make_entry(runtime, "dot", subject="Pothole on Elm Street", key="pothole")
    trail_id = make_entry(runtime, "dot", subject="Fallen tree on the river trail",
                          body="A tree blocks the trail near the bridge.", key="trail")

    axe = Axe()
    dialogs: list[str] = []
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        found = violations(axe, page)
        if found:
            problems[name] = found

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            page.goto(f"{base}/staff/inbox")
            assert page.url.startswith(f"{base}/staff/login")
            check(page, "login")
            page.get_by_label("E-mail address").fill(agent.email)
            page.get_by_label("Password").fill(agent.password)
            page.get_by_role("button", name="Continue").click()
            page.wait_for_url("**/staff/login/code")
            check(page, "login code")
            page.get_by_label("The 6-digit code").fill(agent.code())
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/staff/inbox")
            assert page.get_by_text("Pothole on Elm Street").count() == 1
            assert page.get_by_text(XSS_SUBJECT).count() == 1  # shown as text
            check(page, "inbox")

            page.get_by_label("Search subject and text").fill("pothole")
            page.get_by_role("button", name="Apply").click()
            page.wait_for_load_state()
            assert page.get_by_text("Pothole on Elm Street").count() == 1
            assert page.get_by_text("Fallen tree").count() == 0
            check(page, "inbox search")

            # Triage: open, assign to me, set the status, tag, note, reply.
            page.goto(f"{base}/staff/entries/{pothole_id}")
            check(page, "entry")
            page.get_by_label("Assign to").select_option(label=agent.email)
            page.get_by_role("button", name="Assign").click()
            page.get_by_label("Status", exact=True).select_option("open")
            page.get_by_role("button", name="Set status").click()
            page.get_by_label("Tags, separated by commas").fill("roads, urgent")
            page.get_by_role("button", name="Save tags").click()
            page.get_by_label("Internal note (never sent)").fill("District crew informed.")
            page.get_by_role("button", name="Add note").click()
            page.get_by_label("Reply to the submitter").fill("Thank you, we are on it.")
            page.get_by_role("button", name="Send reply").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").filter(has_text="Reply queued").count() == 1
            check(page, "entry after actions")

            # Reroute another entry to Parks.
            page.goto(f"{base}/staff/entries/{trail_id}")
            page.get_by_label("Agency", exact=True).select_option(label="Department of Parks")
            page.get_by_label("Reason (kept as an internal note)").fill("A trail: Parks.")
            page.get_by_role("button", name="Reroute").click()
            page.wait_for_url("**/staff/inbox")
            assert page.get_by_text("Fallen tree on the river trail").count() == 0

            # The entry with script payloads: everything shown as text, nothing runs.
            page.goto(f"{base}/staff/entries/{xss_id}")
            # No consent: the agency sees "Member of the public", not the (hostile) name.
            assert page.get_by_text(XSS_NAME).count() == 0
            assert page.get_by_text(XSS_SUBJECT).count() >= 1  # shown as text
            assert page.get_by_role("link", name=XSS_FILE).count() == 1
            check(page, "entry with payloads")
            page.goto(f"{base}/staff/inbox?q=script")
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url("**/staff/login?logged_out=1")
            check(page, "logged out")
            # The checker itself can fail: an unlabelled field is a violation.
            page.evaluate("document.querySelector('main').appendChild("
                          "document.createElement('input'))")
            assert any(v.startswith("label:") for v in violations(axe, page))
            page.goto(f"{base}/staff/inbox")
            assert "/staff/login" in page.url
            context.close()

            # The administration page, as an agency administrator.
            context = browser.new_context()
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{base}/staff/login")
            page.get_by_label("E-mail address").fill(admin.email)
            page.get_by_label("Password").fill(admin.password)
            page.get_by_role("button", name="Continue").click()
            page.wait_for_url("**/staff/login/code")
            page.get_by_label("The 6-digit code").fill(admin.code())
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/staff/inbox")
            page.get_by_role("link", name="Administration").click()
            page.wait_for_url("**/staff/admin")
            check(page, "administration")
            context.close()
        finally:
            browser.close()

    assert dialogs == []
    assert problems == {}
    with runtime.db.session() as s:
        pothole = s.get(Entry, pothole_id)
        assert pothole is not None and pothole.tags == ["roads", "urgent"]
        assert pothole.status == "waiting"  # a reply puts it in "waiting"
        assert s.scalar(select(ThreadMessage).where(ThreadMessage.direction == "out")) is not None
        trail = s.get(Entry, trail_id)
        assert trail is not None and trail.agency_id == "parks"
        assert s.scalar(select(Disclosure).where(Disclosure.nature == "reroute")) is not None
