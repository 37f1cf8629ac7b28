"""The house rules of DESIGN.md section 3, checked on every run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

CORE = REPO / "intake" / "core"

# The pure core never imports these (nor any submodule of them).
FORBIDDEN_IN_CORE = (
    "flask", "werkzeug", "sqlalchemy", "alembic", "dramatiq", "redis", "pika", "psycopg",
    "imaplib", "imapclient", "smtplib", "http", "urllib.request", "requests", "httpx",
    "aiosmtpd", "socket", "intake.db", "intake.jobs", "intake.web", "intake.cli",
    "intake.services", "intake.runtime",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.append("__import__")
    return names


def _forbidden(name: str) -> bool:
    return name == "__import__" or any(
        name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_CORE)


def test_pure_core_imports_no_framework_database_queue_mail_or_http() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 5
    offenders = {
        str(path.relative_to(REPO)): bad
        for path in files
        if (bad := [name for name in _imports(path) if _forbidden(name)])
    }
    assert offenders == {}


def test_the_guard_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom sqlalchemy.orm import Session\nimport urllib.request\n")
    assert [n for n in _imports(sample) if _forbidden(n)] == [
        "sqlalchemy.orm", "sqlalchemy.orm.Session", "urllib.request"]


def test_import_linter_contracts_hold() -> None:
    # import-linter is a test dependency: a missing linter fails here, it does not skip.
    script = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    # The gate's contract: nothing but intake.services.gate imports intake.outbound.
    assert "Only the disclosure gate (intake.services.gate) uses intake.outbound KEPT" \
        in result.stdout


# Only the outbound adapters (driven by the disclosure gate) may send anything out.
SENDING_MODULES = ("smtplib", "urllib.request", "http.client", "requests", "httpx", "urllib3",
                   "aiohttp", "aiosmtplib")


def test_only_outbound_adapters_send_mail_or_make_http_calls() -> None:
    offenders = {}
    for path in sorted((REPO / "intake").rglob("*.py")):
        if "outbound" in path.relative_to(REPO / "intake").parts:
            continue
        bad = [n for n in _imports(path)
               if any(n == m or n.startswith(m + ".") for m in SENDING_MODULES)]
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}
    outbound = {n for p in (REPO / "intake" / "outbound").rglob("*.py") for n in _imports(p)}
    assert "smtplib" in outbound and "urllib.request" in outbound
