"""Shared helpers for the public-forms tests: a forms file with test origins, tokens."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import yaml
from flask import Flask

from intake.core.forms import make_form_token
from intake.services.forms import packaged_forms_path

AGENCY_ORIGIN = "https://agency.example"


def write_forms_file(tmp_path: Path, *origins: str, max_bytes: int = 200_000,
                     min_fill_seconds: float | None = None) -> Path:
    """The packaged forms file with these embedding origins and a small attachment cap."""
    data = yaml.safe_load(packaged_forms_path().read_text())
    if min_fill_seconds is not None:
        data["min_fill_seconds"] = min_fill_seconds
    for form in data["forms"]:
        form["allowed_origins"] = [AGENCY_ORIGIN, *origins]
        if form["kind"] == "contact":
            form["attachments"]["max_bytes"] = max_bytes
            form["attachments"]["max_files"] = 2
    folder = tmp_path / "forms"
    (folder / "surveys").mkdir(parents=True, exist_ok=True)
    shutil.copy(packaged_forms_path().parent / "surveys" / "service_satisfaction.yaml",
                folder / "surveys")
    path = folder / "forms.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def aged_token(app: Flask, slug: str, age: float = 30.0) -> str:
    """A token as if the page had been open for ``age`` seconds (no sleeping in tests)."""
    from intake.web.forms import _token_key

    with app.app_context():
        return make_form_token(_token_key(), slug, time.time() - age)


def contact_fields(app: Flask, **overrides: str) -> dict[str, str]:
    fields = {
        "_token": aged_token(app, "contact"), "lang": "en", "name": "Ana Ortiz",
        "email": "ana@example.com", "topic": "parks", "subject": "Trail closed",
        "message": "The north trail at Lake Park has been closed for a month.",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def record_number_in(html: str) -> str | None:
    found = re.search(r'class="record-number">([A-Z]+-\d{4}-\d+)<', html)
    return found.group(1) if found else None


def status_path_in(html: str) -> str | None:
    found = re.search(r'href="https?://[^/"]+(/status/[A-Za-z0-9_-]+)"', html)
    return found.group(1) if found else None
