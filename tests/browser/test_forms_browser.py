"""The public forms in Chromium: every form, JavaScript off, the warning, the iframe embed.

axe-core checks the form, the error state, the sensitive-data warning, the
confirmation and the Spanish page for WCAG 2.1 A/AA violations. The embed is
framed by a page served on another origin (another port); a page on an origin
that is not configured cannot frame it. A cross-origin plain HTML form with
``_next`` lands back on the agency's page.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intake import create_app
from intake.db.models import ConsentEventRow, Entry
from intake.runtime import Runtime
from tests.conftest import free_port, make_settings, service_missing, write_forms_file

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}

pytestmark = pytest.mark.slow


@dataclass
class Sites:
    app: str  # the intake server
    agency: str  # an allowed origin (another port)
    stranger: str  # an origin that is not configured
    runtime: Runtime


def _agency_handler(app_base: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            """Keep the test output quiet (http.server logs every request to stderr)."""

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            own = f"http://{self.headers['Host']}"
            if self.path.startswith("/embed-page"):
                body = (f'<!doctype html><html lang="en"><title>Agency</title><h1>Agency</h1>'
                        f'<iframe src="{app_base}/embed/contact" title="Contact form" '
                        f'width="600" height="1400"></iframe>')
            elif self.path.startswith("/plain-form"):
                # The agency's server fetches a fresh token when it builds its page.
                with urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback
                        f"{app_base}/forms/feedback", headers={"Accept": "application/json"})
                ) as reply:
                    token = json.load(reply)["token"]
                body = (f'<!doctype html><html lang="en"><title>Agency</title>'
                        f'<form method="post" action="{app_base}/forms/feedback">'
                        f'<input type="hidden" name="_token" value="{token}">'
                        f'<input type="hidden" name="_next" value="{own}/thanks">'
                        f'<label>Rating <input name="rating" value="5"></label>'
                        f'<label>Comment <textarea name="comment">Great</textarea></label>'
                        f'<button>Send</button></form>')
            else:
                body = f'<!doctype html><html lang="en"><title>Thanks</title><h1>{self.path}</h1>'
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def sites(tmp_path: Path, sqlite_url: str) -> Iterator[Sites]:
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} not installed")
    from waitress.server import create_server

    app_port, agency_port, stranger_port = free_port(), free_port(), free_port()
    app_base = f"http://127.0.0.1:{app_port}"
    agency = f"http://127.0.0.1:{agency_port}"
    forms_file = write_forms_file(tmp_path, agency, min_fill_seconds=0)
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_FORMS=str(forms_file),
                                    INTAKE_FORM_RATE_LIMIT="1000/minute",
                                    INTAKE_PUBLIC_URL=app_base))  # where the status links point
    runtime.rules.load()
    server = create_server(create_app(runtime=runtime), host="127.0.0.1", port=app_port)
    others = [ThreadingHTTPServer(("127.0.0.1", port), _agency_handler(app_base))
              for port in (agency_port, stranger_port)]
    threads = [threading.Thread(target=server.run, daemon=True)] + [
        threading.Thread(target=o.serve_forever, daemon=True) for o in others]
    for t in threads:
        t.start()
    try:
        yield Sites(app_base, agency, f"http://127.0.0.1:{stranger_port}", runtime)
    finally:
        server.close()
        for o in others:
            o.shutdown()
            o.server_close()
        runtime.close()


def _violations(axe: Any, page: Any) -> list[str]:
    results = axe.run(page, options=WCAG)
    return [f"{v['id']}: {v['help']} {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]]


def _entries(runtime: Runtime) -> int:
    with runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Entry)) or 0)


def _fill_contact(page: Any, message: str) -> None:
    page.get_by_label("Your name").fill("Ana Ortiz")
    page.get_by_label("Your e-mail address").fill("ana@example.com")
    page.get_by_label("Topic").select_option("parks")
    page.get_by_label("Subject").fill("Trail closed")
    page.get_by_label("Your message").fill(message)


def test_public_forms_in_chromium(sites: Sites) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    axe = Axe()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()

            # The form, then the error state: nothing typed.
            page.goto(f"{sites.app}/forms/contact")
            assert _violations(axe, page) == []
            assert axe.run(page, options=WCAG).response["passes"]  # axe really ran
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector(".error-summary")
            assert page.title().startswith("Error:")
            assert _violations(axe, page) == []
            page.locator(".error-summary a[href='#name']").click()
            assert page.evaluate("document.activeElement.id") == "name"

            # The sensitive-data warning, then confirm.
            _fill_contact(page, "My SSN is 123-45-6789; where is my refund?")
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector("#sensitive-warning")
            assert "a Social Security number" in page.inner_text("#sensitive-warning")
            assert _violations(axe, page) == []
            assert _entries(sites.runtime) == 0
            consent = page.locator("#consent")
            assert not consent.is_checked()
            consent.check()
            page.get_by_label("Send; the numbers are hidden from everyone except the sealed "
                              "record", exact=False).check()
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector(".record-number")
            assert re.fullmatch(r"EX-\d{4}-\d{6}", page.inner_text(".record-number"))
            assert _violations(axe, page) == []
            page.locator(".status-link a").click()
            page.wait_for_selector("h1 .record-number")

            # Spanish, through the visible switch.
            page.goto(f"{sites.app}/forms/contact")
            page.get_by_role("link", name="Español").click()
            page.wait_for_selector("html[lang=es]")
            assert page.get_by_label("Su nombre").count() == 1
            assert _violations(axe, page) == []

            # The survey page.
            page.goto(f"{sites.app}/forms/survey")
            assert _violations(axe, page) == []

            # 320 CSS pixels wide (also what 200% zoom of 640 px gives): no sideways scrolling.
            page.set_viewport_size({"width": 320, "height": 700})
            for slug in ("contact", "survey"):
                page.goto(f"{sites.app}/forms/{slug}")
                assert page.evaluate("document.documentElement.scrollWidth") <= 320, slug
            context.close()

            # JavaScript off: contact, feedback and survey still work, and no cookie is set.
            quiet = browser.new_context(java_script_enabled=False)
            page = quiet.new_page()
            page.goto(f"{sites.app}/forms/contact")
            _fill_contact(page, "The north trail has been closed for a month.")
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector(".record-number")
            page.goto(f"{sites.app}/forms/feedback?about=/parks")
            page.get_by_label("4 – Good").check()
            page.get_by_label("Your comment").fill("Clear page, thanks.")
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector(".record-number")
            page.goto(f"{sites.app}/forms/survey")
            page.get_by_label("State parks").check()
            page.get_by_label("Telephone").check()
            page.locator("#satisfaction-4").check()
            page.get_by_role("button", name="Send").click()
            page.wait_for_selector(".record-number")
            assert quiet.cookies() == []
            quiet.close()
            assert _entries(sites.runtime) == 4

            # The iframe embed, framed by the agency on another origin.
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{sites.agency}/embed-page")
            frame = page.frame_locator("iframe")
            frame.get_by_label("Your name").fill("Bo Li")
            frame.get_by_label("Your e-mail address").fill("bo@example.com")
            frame.get_by_label("Topic").select_option("health")
            frame.get_by_label("Subject").fill("Clinic hours")
            frame.get_by_label("Your message").fill("When does the clinic open on Saturdays?")
            frame.get_by_role("button", name="Send").click()
            number = frame.locator(".record-number").inner_text()
            assert re.fullmatch(r"EX-\d{4}-\d{6}", number)

            # A site that is not configured cannot frame the form.
            page.goto(f"{sites.stranger}/embed-page")
            page.wait_for_load_state("load")
            blocked = page.frames[1]
            assert blocked.url.startswith("chrome-error://"), blocked.url

            # The agency's own plain form posts cross-origin and comes back to its page.
            page.goto(f"{sites.agency}/plain-form")
            page.get_by_role("button", name="Send").click()
            page.wait_for_url(re.compile(r"/thanks\?record=EX-"))
            assert page.url.startswith(f"{sites.agency}/thanks?record=EX-")
            context.close()
        finally:
            browser.close()
    assert _entries(sites.runtime) == 6
    with sites.runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsentEventRow)) == 1
