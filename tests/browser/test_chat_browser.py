"""Live Help in Chromium: a visitor and an operator, two browser contexts, exchanging
messages live; the same with the visitor's JavaScript off and no cookies kept; axe-core
on the visitor's and the operator's pages in English and Spanish."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intake.runtime import Runtime
from tests.browser.conftest import ARGS, CHROMIUM, log_in, serve, violations
from tests.conftest import SMALL_RULES, make_account
from tests.web.test_chat import write_help

pytestmark = pytest.mark.slow


@pytest.fixture
def served_help(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Runtime]]:
    with serve(tmp_path, sqlite_url, INTAKE_RULES=str(SMALL_RULES),
               INTAKE_HELP=str(write_help(tmp_path)), INTAKE_HELP_STREAM_SECONDS="3",
               INTAKE_HELP_MESSAGE_RATE="1000/minute",
               INTAKE_FORM_RATE_LIMIT="1000/minute") as served:
        yield served


def _start(page: Any, base: str, lang: str, message: str) -> None:
    page.goto(f"{base}/help?lang={lang}")
    page.locator("#name").fill("Ada Lovelace")
    page.locator("#topic").select_option("transportation")
    page.locator("#message").fill(message)
    page.locator("#start-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/help/c/.*"))


def test_visitor_and_operator_chat_live_and_without_javascript(
        served_help: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import expect, sync_playwright

    base, runtime = served_help
    operator = make_account(runtime, "op@dot.examplia.gov", "dot", role="operator")
    axe = Axe()
    problems: dict[str, list[str]] = {}
    dialogs: list[str] = []

    def check(page: Any, name: str) -> None:
        found = violations(axe, page)
        if found:
            problems[name] = found

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            staff = browser.new_context()
            op = staff.new_page()
            op.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            log_in(op, base, operator)
            op.goto(f"{base}/staff/help")
            op.locator("#display_name").fill("Grace")
            op.get_by_role("button", name="Save").click()

            for lang in ("en", "es"):
                visitor_context = browser.new_context()
                visitor = visitor_context.new_page()
                visitor.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                visitor.goto(f"{base}/help?lang={lang}")
                check(visitor, f"start {lang}")
                _start(visitor, base, lang,
                       f"A pothole on Route 9 <script>alert(1)</script> {lang}")
                check(visitor, f"conversation {lang}")

                op.goto(f"{base}/staff/help?lang={lang}")
                check(op, f"queue {lang}")
                op.locator("table.chat-queue a").last.click()
                op.wait_for_url(re.compile(r".*/staff/help/\d+.*"))
                check(op, f"operator chat {lang}")
                op.locator("form[action*='/accept'] button").click()
                op.wait_for_url(re.compile(r".*/staff/help/\d+.*"))
                op.locator("#message").fill(f"Hello from the operator ({lang})")
                op.locator("#send-form button[type=submit]").click()
                # Live: the visitor's page shows it without reloading.
                expect(visitor.locator("#chat-log")).to_contain_text(
                    f"Hello from the operator ({lang})", timeout=15_000)
                expect(visitor.locator("#chat-log")).to_contain_text("Grace")
                visitor.locator("#message").fill(f"Thanks, northbound ({lang})")
                visitor.locator("#send-form button[type=submit]").click()
                expect(op.locator("#chat-log")).to_contain_text(
                    f"Thanks, northbound ({lang})", timeout=15_000)
                check(visitor, f"conversation live {lang}")
                check(op, f"operator chat live {lang}")
                # The visitor ends it with the exit interview: record number and status link.
                visitor.locator("#end-form input[name=helped]").first.check()
                visitor.locator("#end-form button[type=submit]").click()
                expect(visitor.locator(".record-number")).to_be_visible(timeout=15_000)
                check(visitor, f"ended {lang}")
                visitor_context.close()

            # JavaScript off, no cookie kept: the form posts and the frame refreshes itself.
            plain = browser.new_context(java_script_enabled=False)
            page = plain.new_page()
            _start(page, base, "en", "A pothole near exit 4, no script")
            plain.clear_cookies()
            chat_url = page.url
            op.goto(f"{base}/staff/help")
            op.locator("table.chat-queue a").last.click()
            op.wait_for_url(re.compile(r".*/staff/help/\d+.*"))
            op.locator("form[action*='/accept'] button").click()
            op.wait_for_url(re.compile(r".*/staff/help/\d+.*"))
            op.locator("#message").fill("Hello, reader without script")
            op.locator("#send-form button[type=submit]").click()
            log = page.frame_locator("iframe.chat-frame-log").locator("#chat-log")
            expect(log).to_contain_text("Hello, reader without script", timeout=20_000)
            page.locator("#message").fill("I can answer without script")
            page.locator("#send-form button[type=submit]").click()
            plain.clear_cookies()
            assert page.url.split("#")[0] == chat_url.split("#")[0]
            expect(op.locator("#chat-log")).to_contain_text("I can answer without script",
                                                            timeout=15_000)
            # (axe-core itself needs script: the same page with script was checked above.)
            plain.close()
        finally:
            browser.close()
    assert dialogs == []
    assert problems == {}, problems
