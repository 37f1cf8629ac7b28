"""Every route, hostile input, anonymous and as staff: never a response of 500 or more.

The routes are read from ``app.url_map`` when the test runs, so a route added
later is fuzzed too without touching this file. Each example picks a rule and
one of its methods, fills its variables (huge and negative integers, path
tricks, control characters, long text), and adds a hostile query string,
headers and a form, JSON (deeply nested too) or raw body. Staff examples run
as a logged-in system administrator, and half of their POSTs carry a valid
CSRF token, so they reach the views and not only the CSRF check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from intake import create_app
from intake.runtime import Runtime
from tests.conftest import (
    SMALL_RULES,
    Account,
    csrf,
    login,
    make_account,
    make_entry,
    make_settings,
    write_forms_file,
)

HOSTILE = ["", "0", "1", "-1", "2", "9223372036854775807", "9223372036854775808",
           "18446744073709551616", "1" * 300, "1e9", "0x10", " 1", "１",
           "..", "../../etc/passwd", "%2e%2e%2f", "a/b", "\x00", "\r\nX-Injected: 1",
           "<script>alert(1)</script>", "' OR 1=1 --", "contact", "feedback", "survey", "es",
           "é" * 200, "\U0001f600", "\u202e", "x" * 5000, "null", "[]", "{}"]
# What HTTP can carry: no lone surrogates; header values are latin-1 without line breaks.
text = st.one_of(st.sampled_from(HOSTILE),
                 st.text(st.characters(exclude_categories=["Cs"]), max_size=80))
header_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n",
                                    exclude_categories=["Cs"]), max_size=80)
QUERY_NAMES = ["lang", "page", "q", "status", "agency", "next", "token", "sort", "tag",
               "assigned", "unread", "id", "entry", "format", "_embed"]
HEADER_VALUES = {
    "Accept": ["application/json", "text/html", "*/*", "application/json;q=0.9, text/html;q=1",
               "garbage/;;q=x"],
    "Accept-Language": ["es", "en;q=0.1, es", "xx-YY", ";;;", "*", "es-" + "x" * 500],
    "Origin": ["null", "https://evil.example", "https://agency.example", "http://localhost",
               "javascript:alert(1)", "://", "https://[::1"],
    "X-Forwarded-For": ["1.2.3.4", "garbage", "1.2.3.4, 5.6.7.8", "::1"],
    "X-Forwarded-Proto": ["https", "gopher"],
    "Referer": ["https://evil.example/", "\x00"],
    "If-Modified-Since": ["yesterday", "Thu, 01 Jan 1970 00:00:00 GMT"],
    "Range": ["bytes=0-1", "bytes=-1", "bytes=9999999999999999999-"],
    "Cookie": ["__Host-session=garbage", "__Host-session=.eJw.bad.sig", "a=b; c"],
}
CONTENT_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data",
                 "application/json", "text/plain", "application/json; charset=latin-1",
                 "multipart/form-data; boundary=", "application/xml"]

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(text, children, max_size=4)),
    max_leaves=20)


@dataclass
class Site:
    app: Flask
    runtime: Runtime
    anonymous: FlaskClient
    staff: FlaskClient
    rules: list[Rule]
    accounts: int = 0

    def log_in(self) -> None:
        """A new logged-in client, as a new system administrator: an example may have
        logged the last one out, disabled it, or used the current TOTP code (which is
        refused a second time)."""
        self.accounts += 1
        account: Account = make_account(self.runtime, f"admin{self.accounts}@dot.examplia.gov",
                                        "dot", role="system_admin")
        self.staff = self.app.test_client()
        login(self.staff, account)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import shutil

    tmp = tmp_path_factory.mktemp("fuzz-routes")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'intake.sqlite3'}"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp / "intake.sqlite3")
    else:
        from tests.conftest import _truncate_postgres

        url = request.getfixturevalue("postgres_database")
        _truncate_postgres(url)
    runtime = Runtime(make_settings(tmp, url, INTAKE_FORMS=str(write_forms_file(tmp)),
                                    INTAKE_RULES=str(SMALL_RULES),
                                    INTAKE_FORM_RATE_LIMIT="100000/minute"))
    runtime.rules.load()
    try:
        app = create_app(runtime=runtime)
        make_entry(runtime, "dot")  # entry 1: id-taking routes reach their views
        rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
        site = Site(app, runtime, app.test_client(), app.test_client(), rules)
        site.log_in()
        yield site
    finally:
        runtime.close()


_VARIABLE = re.compile(r"<(?:([^:>(]+)(?:\([^)]*\))?:)?([^>]+)>")
#: Integers around every boundary a database id has (0, 2**31, 2**63, 2**64) and far beyond.
integers = st.one_of(
    st.sampled_from(["1", "0", "-1", "2147483648", "9223372036854775807", "9223372036854775808",
                     "18446744073709551616", "9" * 40, "1" * 400]),
    st.integers(min_value=-(2**80), max_value=2**80).map(str), text)
#: Known names for string variables, so the views behind them are reached.
NAMES = st.one_of(st.sampled_from(["contact", "feedback", "survey", "app.css", "x"]), text)


def _variables(rule: Rule) -> dict[str, str]:
    """Each variable of the rule and its converter's name (``default`` for strings)."""
    return {m.group(2): m.group(1) or "default" for m in _VARIABLE.finditer(rule.rule)}


def _path(rule: Rule, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: quote(values.get(m.group(2), "1"), safe=""), rule.rule)


@st.composite
def requests(draw: st.DrawFn, rules: list[Rule]) -> dict[str, Any]:
    rule = draw(st.sampled_from(rules))
    method = draw(st.sampled_from(sorted((rule.methods or {"GET"}) | {"OPTIONS"})))
    values = {name: draw(integers if converter == "int" else NAMES)
              for name, converter in sorted(_variables(rule).items())}
    query = draw(st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), text), text),
                          max_size=4))
    headers = {name: draw(st.one_of(st.sampled_from(choices), header_text))
               for name, choices in HEADER_VALUES.items() if draw(st.booleans())}
    body_kind = draw(st.sampled_from(["none", "form", "json", "deep", "raw"]))
    path = _path(rule, values)
    if draw(st.integers(0, 9)) == 0:  # now and then a path no rule was written for
        path = "/" + quote(draw(st.one_of(text, st.sampled_from(
            ["staff/entries/1/../../healthz", "//staff", "static/../pyproject.toml",
             "forms/contact/", "STAFF/INBOX", "status/"]))), safe="/%")
    request: dict[str, Any] = {"method": method, "path": path,
                               "query_string": urlencode(query), "headers": headers}
    if body_kind == "form":
        request["data"] = draw(st.dictionaries(
            st.one_of(st.sampled_from(["csrf_token", "_token", "email", "password", "code",
                                       "status", "agency", "tags", "note", "body", "reason",
                                       "assignee", "subject", "message", "consent"]), text),
            text, max_size=8))
    elif body_kind == "json":
        request["data"] = json.dumps(draw(json_values))
        request["content_type"] = "application/json"
    elif body_kind == "deep":
        depth = draw(st.sampled_from([1_000, 100_000]))
        request["data"] = "[" * depth + "]" * depth
        request["content_type"] = "application/json"
    elif body_kind == "raw":
        request["data"] = draw(st.binary(max_size=300))
        request["content_type"] = draw(st.sampled_from(CONTENT_TYPES))
    request["as_staff"] = draw(st.booleans())
    request["valid_csrf"] = draw(st.booleans())
    return request


def _staff_client(site: Site) -> FlaskClient:
    """The logged-in client; a new one if an example logged it out."""
    if site.staff.get("/staff/inbox").status_code != 200:
        site.log_in()
    return site.staff


def test_every_route_answers_hostile_input_without_a_server_error(site: Site) -> None:
    assert any("<int:" in r.rule for r in site.rules)  # the id routes are in the walk

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=requests(site.rules))
    def probe(request: dict[str, Any]) -> None:
        as_staff = request.pop("as_staff")
        valid_csrf = request.pop("valid_csrf")
        client = _staff_client(site) if as_staff else site.anonymous
        if as_staff and valid_csrf and request["method"] == "POST":
            token = csrf(client)
            if isinstance(request.get("data"), dict):
                request["data"] = {**request["data"], "csrf_token": token}
            else:
                request["headers"] = {**request["headers"], "X-CSRFToken": token}
        method = request.pop("method")
        path = request.pop("path")
        response = client.open(path, method=method, **request)
        if path == "/readyz" and response.status_code == 503:  # not ready: by design
            assert method == "HEAD" or response.get_json()["status"] == "unavailable"
            return
        assert response.status_code < 500, (method, path, request, response.status_code)

    probe()


def test_a_nul_in_any_text_part_of_a_path_is_a_client_error(site: Site) -> None:
    """Every route's text variables with a NUL in them (PostgreSQL refuses NUL in a
    parameter: ``/records/%00`` once answered 500), anonymous and as staff, each method."""
    checked = 0
    for rule in site.rules:
        variables = _variables(rule)
        if "default" not in variables.values() and "string" not in variables.values():
            continue
        values = {name: ("1" if converter == "int" else "a\x00b")
                  for name, converter in variables.items()}
        path = _path(rule, values)
        for method in sorted(rule.methods or {"GET"}):
            for client in (site.anonymous, _staff_client(site)):
                response = client.open(path, method=method)
                assert response.status_code < 500, (method, path, response.status_code)
                checked += 1
    assert checked > 0
