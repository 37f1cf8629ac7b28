"""What every browser test shares: Debian's Chromium, the axe-core rule set, a served app.

Chromium runs headless from ``/usr/bin/chromium`` (no downloaded browser builds);
axe-core checks WCAG 2.0, 2.1 and 2.2 at levels A and AA.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from intake import create_app
from intake.runtime import Runtime
from tests.conftest import free_port, make_settings, service_missing

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                              "wcag22aa"]}}


def violations(axe: Any, page: Any) -> list[str]:
    """axe-core's WCAG A/AA violations on the page, one line each."""
    results = axe.run(page, options=WCAG)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
            f"{[n['target'] for n in v['nodes']][:3]})"
            for v in results.response["violations"]]


@contextmanager
def serve(tmp_path: Path, database_url: str, **env: str) -> Iterator[tuple[str, Runtime]]:
    """The app on a free port (waitress, in a thread) on ``database_url`` with ``env``.

    The base URL names "localhost": browsers keep Secure cookies for it over plain http.
    """
    if not CHROMIUM.exists():
        service_missing("Chromium", f"{CHROMIUM} not installed")
    from waitress.server import create_server

    runtime = Runtime(make_settings(tmp_path, database_url, **env))
    runtime.rules.load()
    port = free_port()
    server = create_server(create_app(runtime=runtime), host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}", runtime
    finally:
        server.close()
        thread.join(timeout=5)
        runtime.close()


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Runtime]]:
    with serve(tmp_path, sqlite_url) as served:
        yield served


def log_in(page: Any, base: str, account: Any) -> None:
    """Log a staff account in through the login pages (password, then the TOTP code)."""
    page.goto(f"{base}/staff/login")
    page.get_by_label("E-mail address").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/staff/login/code")
    page.get_by_label("The 6-digit code").fill(account.code())
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/staff/inbox")
