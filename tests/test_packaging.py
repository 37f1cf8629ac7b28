"""`pip install .` must carry every package and data file the code uses."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def _config() -> dict[str, object]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def test_every_package_is_listed() -> None:
    setuptools = _config()["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])  # type: ignore[index]
    found = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "intake").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_data_files_are_covered_by_package_data() -> None:
    patterns = _config()["tool"]["setuptools"]["package-data"]  # type: ignore[index]
    uncovered = []
    for path in (REPO / "intake").rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        package_dir = path.parent
        while not (package_dir / "__init__.py").exists():
            package_dir = package_dir.parent
        package = ".".join(package_dir.relative_to(REPO).parts)
        relative = path.relative_to(package_dir)
        if not any(relative.match(p) for p in patterns.get(package, [])):
            uncovered.append(str(path.relative_to(REPO)))
    assert uncovered == []


def test_shipped_rules_file_is_the_packaged_one() -> None:
    link = REPO / "routing_rules.yaml"
    assert link.resolve() == (REPO / "intake" / "defaults" / "routing_rules.yaml").resolve()
