"""The citizen's receipt, status and error pages in Chromium, in English and Spanish.

A person fills the form in their language and sends it; the receipt page, the
status page (with a story: routed, answered with a long unbroken line, closed)
and an error page are checked by axe-core (WCAG 2.0-2.2 A/AA) and for
horizontal scrolling at 375 and 320 CSS pixels wide (reflow: what 200 % zoom
of a 640-pixel window gives).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.core.routing import Decision
from intake.db.models import Entry, Event, ThreadMessage
from intake.runtime import Runtime
from intake.services.routing import apply_decision
from tests.browser.conftest import ARGS, CHROMIUM, WCAG, serve
from tests.conftest import write_forms_file

pytestmark = pytest.mark.slow

WIDTHS = (375, 320)
LONG_LINE = "https://www.examplia.gov/transportation/road-repairs/route-9/" + "x" * 80
TEXTS = {
    "en": {"send": "Send", "thanks": "Thank you: we have received your message",
           "story": "What has happened so far", "answered": "Answered by Department of "
           "Transportation", "missing": "Page not found"},
    "es": {"send": "Enviar", "thanks": "Gracias: hemos recibido su mensaje",
           "story": "Lo que ha pasado hasta ahora", "answered": "Respondido por: Department "
           "of Transportation", "missing": "Página no encontrada"},
}


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Runtime]]:
    forms = write_forms_file(tmp_path, min_fill_seconds=0)
    with serve(tmp_path, sqlite_url, INTAKE_FORMS=str(forms),
               INTAKE_FORM_RATE_LIMIT="1000/minute") as pair:
        yield pair


def _story(runtime: Runtime, number: str) -> None:
    """What the agency did: routed, answered (a long unbroken line), closed."""
    with runtime.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.record_number == number)).one()
        apply_decision(s, entry, Decision(
            route_to="dot", cc=(), tags=(), matched_rules=("roads",), decided_by="roads",
            captures={}, trace=(), rules_sha256=runtime.rules.current().sha256), actor="rules")
        s.add(ThreadMessage(entry_id=entry.id, direction="out", author_kind="staff",
                            subject="Re: Route 9", body=f"We fixed it. Details: {LONG_LINE}",
                            idempotency_key=f"reply:{number}"))
        entry.status = "closed"
        s.add(Event(entry_id=entry.id, kind="status-changed", actor="staff:1",
                    detail={"from": "new", "to": "closed"}))


def test_receipt_status_and_error_pages_in_both_languages(
        served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    axe = Axe()
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            if scroll > client:
                problems[f"{name} at {width}px"] = [f"scrolls sideways: {scroll} > {client}"]
        results = axe.run(page, options=WCAG)
        found = [f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']][:3]})"
                 for v in results.response["violations"]]
        if found:
            problems[name] = found

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for lang, words in TEXTS.items():
                context = browser.new_context(bypass_csp=True, locale=f"{lang}-US",
                                              viewport={"width": 375, "height": 800})
                page = context.new_page()
                page.goto(f"{base}/forms/contact?lang={lang}")
                page.locator("#name").fill("Ana Ortiz")
                page.locator("#email").fill("ana@example.org")
                page.locator("#topic").select_option("transportation")
                page.locator("#subject").fill("Route 9")
                page.locator("#message").fill("There is a pothole on Route 9.")
                page.get_by_role("button", name=words["send"]).click()
                page.wait_for_load_state()
                assert page.get_by_role("heading", name=words["thanks"]).count() == 1
                assert page.evaluate("document.documentElement.lang") == lang
                check(page, f"receipt {lang}")
                number = page.locator(".record-number").first.inner_text()
                link = page.locator(".status-link a").get_attribute("href")
                assert link
                path = re.sub(r"^https?://[^/]+", "", link)

                _story(runtime, number)
                page.goto(f"{base}{path}")
                assert page.evaluate("document.documentElement.lang") == lang
                assert page.get_by_role("heading", name=words["story"]).count() == 1
                assert page.get_by_text(words["answered"]).count() == 1
                assert page.get_by_text(LONG_LINE, exact=False).count() == 1
                check(page, f"status {lang}")

                page.goto(f"{base}/status/no-such-link")
                assert page.get_by_role("heading", name=words["missing"]).count() == 1
                assert page.evaluate("document.documentElement.lang") == lang
                check(page, f"404 {lang}")
                context.close()
        finally:
            browser.close()
    assert problems == {}, problems
