"""Random field sets and values thrown at ``POST /forms/<slug>``: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake import create_app
from intake.runtime import Runtime
from tests.conftest import aged_token, make_settings, write_forms_file

KNOWN = ["name", "email", "phone", "postal_address", "topic", "subject", "message", "rating",
         "about", "comment", "service", "channels", "satisfaction", "ease", "improve", "consent",
         "lang", "_next", "_embed", "_confirm_sensitive", "_gotcha", "_token"]
TYPICAL = ["", "parks", "ana@example.com", "4", "share-identity-2026-01-en", "es", "1",
           "https://agency.example/x", "123-45-6789", "<script>alert(1)</script>", "a\r\nb",
           "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"), "é" * 300]

values = st.one_of(st.sampled_from(TYPICAL), st.text(max_size=300))
names = st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=20))
field_sets = st.dictionaries(names, st.one_of(values, st.lists(values, max_size=3)), max_size=12)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Flask]:
    import shutil

    tmp = tmp_path_factory.mktemp("fuzz")
    shutil.copyfile(sqlite_template, tmp / "intake.sqlite3")
    settings_ = make_settings(tmp, f"sqlite:///{tmp / 'intake.sqlite3'}",
                              INTAKE_FORMS=str(write_forms_file(tmp)),
                              INTAKE_FORM_RATE_LIMIT="100000/minute")
    runtime = Runtime(settings_)
    runtime.rules.load()
    yield create_app(runtime=runtime)
    runtime.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(slug=st.sampled_from(["contact", "feedback", "survey", "nope"]), fields=field_sets,
       with_token=st.booleans(), as_json=st.booleans(), raw=st.binary(max_size=200),
       use_raw=st.booleans())
def test_random_submissions_never_cause_a_server_error(
        app: Flask, slug: str, fields: dict, with_token: bool, as_json: bool, raw: bytes,
        use_raw: bool) -> None:
    client = app.test_client()
    if with_token and slug != "nope":
        fields = {**fields, "_token": aged_token(app, slug)}
    if use_raw:
        content_type = "application/json" if as_json else "application/x-www-form-urlencoded"
        response = client.post(f"/forms/{slug}", data=raw, content_type=content_type)
    elif as_json:
        response = client.post(f"/forms/{slug}", json=fields,
                               headers={"Accept": "application/json"})
    else:
        response = client.post(f"/forms/{slug}", data=fields)
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
