"""The records officers' retention pages in Chromium: axe-core finds no WCAG 2.x A/AA
violation on any of them, in English or Spanish; a hold is placed and released with the
keyboard alone, and works with JavaScript off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.core.retention import load_schedule_file
from intake.db.models import Entry
from intake.runtime import Runtime
from intake.services import retention
from tests.browser.conftest import ARGS, CHROMIUM, log_in, serve, violations
from tests.conftest import (
    make_account,
    make_entry,
)

SCHEDULE = """\
version: 1
series:
  - id: roads
    title: Road complaints
    citation: GRS 6.5 item 020
    match: {agency: dot, tags: [roads, potholes]}
    trigger: received
    keep: 1y
    disposition: review
  - id: general
    title: General correspondence
    trigger: closed
    keep: 3y
    disposition: destroy
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Runtime]]:
    schedule = tmp_path / "retention.yaml"
    schedule.write_text(SCHEDULE)
    with serve(tmp_path, sqlite_url, INTAKE_RETENTION=str(schedule)) as served:
        yield served


def test_retention_pages_in_chromium(served: tuple[str, Runtime]) -> None:
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, runtime = served
    officer = make_account(runtime, "records@dot.examplia.gov", "dot", "records_officer")
    colleague = make_account(runtime, "archivist@dot.examplia.gov", "dot", "records_officer")
    old = datetime.now(UTC) - timedelta(days=400)
    held = make_entry(runtime, "dot", subject="Bridge collapse", received_at=old, key="a")
    listed = make_entry(runtime, "dot", subject="Pothole", received_at=old, key="b")
    with runtime.db.session() as s:
        for entry in s.scalars(select(Entry)):
            entry.tags = ["roads"]
        numbers = dict(s.execute(select(Entry.id, Entry.record_number)).all())
    schedule = load_schedule_file(runtime.settings.retention_schedule_path)
    retention.apply_schedule(runtime.db, schedule, datetime.now(UTC), actor="test")

    axe = Axe()
    problems: dict[str, list[str]] = {}

    def check(page: Any, name: str) -> None:
        found = violations(axe, page)
        if found:
            problems[name] = found

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context().new_page()
            log_in(page, base, officer)
            page.get_by_role("link", name="Retention").click()
            page.wait_for_url("**/staff/retention/")
            assert page.get_by_text(numbers[listed]).count() == 1
            check(page, "overview")
            page.get_by_role("link", name="Español").click()
            page.wait_for_load_state()
            assert page.locator("html").get_attribute("lang") == "es"
            assert page.get_by_role("heading", name="Pendientes de su revisión").count() == 1
            check(page, "overview (es)")

            # Place a hold with the keyboard alone: tab to each field, type, Enter.
            page.goto(f"{base}/staff/retention/holds")
            check(page, "holds")
            page.get_by_label("Case reference").focus()
            page.keyboard.type("2030-CV-17")
            page.keyboard.press("Tab")
            page.keyboard.type("Litigation hold")
            page.keyboard.press("Tab")  # the "record numbers" choice, already chosen
            page.keyboard.press("Tab")
            page.keyboard.type(numbers[held])
            page.get_by_role("button", name="Place the hold").focus()
            page.keyboard.press("Enter")
            page.wait_for_url("**/staff/retention/holds/1*")
            assert page.get_by_role("status").inner_text() == "Hold 1 placed on 1 entries."
            check(page, "hold")

            page.get_by_label("Reason for the release").focus()
            page.keyboard.type("Case settled")
            page.get_by_role("button", name="Release the hold").focus()
            page.keyboard.press("Enter")
            page.wait_for_url("**/staff/retention/holds*")
            assert "released" in page.get_by_role("status").inner_text()

            # The review decision, then the log.
            page.goto(f"{base}/staff/retention/")
            page.get_by_role("button", name=f"Keep {numbers[listed]}").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").inner_text() == f"{numbers[listed]} is kept."
            page.goto(f"{base}/staff/retention/log")
            assert page.get_by_text("Kept on review").count() == 1
            check(page, "log")
            page.goto(f"{base}/staff/retention/log?lang=es")
            check(page, "log (es)")
            page.goto(f"{base}/staff/retention/holds?lang=es")
            check(page, "holds (es)")

            # Without JavaScript: the same forms work (another officer: a TOTP code is
            # accepted once, and the first one's may still be current).
            nojs = browser.new_context(java_script_enabled=False).new_page()
            log_in(nojs, base, colleague)
            nojs.goto(f"{base}/staff/retention/holds")
            nojs.get_by_label("Case reference").fill("C-2")
            nojs.get_by_label("Reason for the hold").fill("Audit")
            nojs.get_by_label("Record numbers (separated by spaces, commas or new lines)"
                              ).fill(numbers[held])
            nojs.get_by_role("button", name="Place the hold").click()
            nojs.wait_for_url("**/staff/retention/holds/2*")
            assert nojs.get_by_role("status").inner_text() == "Hold 2 placed on 1 entries."
        finally:
            browser.close()
    assert problems == {}
    with runtime.db.session() as s:
        assert retention.held_entry_ids(s, [held]) == {held}
