"""The house rules of DESIGN.md section 3, checked on every run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

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
    # Its one exception (pyproject.toml): the IMAP edge's XOAUTH2 tokens (intake.outbound.oauth2).
    assert "uses intake.outbound KEPT (1 ignored import)" in result.stdout


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


def _import_cycles(package: str) -> list[list[str]]:
    """The import cycles among ``package``'s modules: its strongly connected components of
    more than one module, over every import (in functions and under TYPE_CHECKING too)."""
    import grimp  # import-linter's graph builder, a test dependency

    graph = grimp.build_graph(package, cache_dir=None)
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    # Tarjan's algorithm, iteratively (the graph has hundreds of modules).
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            module, next_child = work.pop()
            if next_child == 0:
                index[module] = lowlink[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            children = imports[module]
            for position in range(next_child, len(children)):
                child = children[position]
                if child not in index:
                    work.append((module, position + 1))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    lowlink[module] = min(lowlink[module], index[child])
            else:
                if lowlink[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[module])
    return cycles


def test_no_import_cycles_among_intake_modules() -> None:
    assert _import_cycles("intake") == []


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "cyclic_sample"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic_sample import b\n")
    (package / "b.py").write_text("def f() -> None:\n    from cyclic_sample import c\n")
    (package / "c.py").write_text("import typing\nif typing.TYPE_CHECKING:\n"
                                  "    from cyclic_sample import a\n")
    (package / "d.py").write_text("from cyclic_sample import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _import_cycles("cyclic_sample") == [
        ["cyclic_sample.a", "cyclic_sample.b", "cyclic_sample.c"]]
