"""The form page rendered once per (form, language, embed) and served with a fresh token
(issue 28): every visitor still gets a token of the moment, the token checks and the
other checks stay on the path, a re-shown page is never the cached one."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.web import forms as web_forms
from tests.conftest import contact_fields, record_number_in

T0 = 1_800_000_000.0


def _token(html: str) -> str:
    found = re.search(r'name="_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [T0]
    monkeypatch.setattr(web_forms.time, "time", lambda: now[0])
    return now


def test_each_first_page_carries_a_token_of_its_own_moment(client: FlaskClient,
                                                           clock: list[float]) -> None:
    first = client.get("/forms/contact").get_data(as_text=True)
    clock[0] += 100
    second = client.get("/forms/contact").get_data(as_text=True)
    one, two = _token(first), _token(second)
    assert one.split(".")[0] == str(int(T0))
    assert two.split(".")[0] == str(int(T0 + 100))
    assert one != two
    assert first.count(one) == 1 and second.count(two) == 1
    assert first.replace(one, "T") == second.replace(two, "T")
    assert "__intake_form_token__" not in second


def test_a_token_from_a_served_again_page_is_accepted_and_checked(
        app: Flask, client: FlaskClient, clock: list[float]) -> None:
    client.get("/forms/contact")
    token = _token(client.get("/forms/contact").get_data(as_text=True))
    clock[0] += 1  # too fast: the minimum fill time still applies
    fast = client.post("/forms/contact", data=contact_fields(app, _token=token))
    assert record_number_in(fast.get_data(as_text=True)) is None
    clock[0] += 60
    sent = client.post("/forms/contact", data=contact_fields(app, _token=token))
    assert sent.status_code == 200
    assert record_number_in(sent.get_data(as_text=True)) is not None
    forged = client.post("/forms/contact",
                         data=contact_fields(app, _token=token[:-4] + "0000"))
    assert record_number_in(forged.get_data(as_text=True)) is None


def test_english_and_spanish_pages_are_each_their_own(client: FlaskClient,
                                                      clock: list[float]) -> None:
    for _ in range(2):
        en = client.get("/forms/contact?lang=en").get_data(as_text=True)
        es = client.get("/forms/contact?lang=es").get_data(as_text=True)
        assert '<html lang="en">' in en and "We use your address only" in en
        assert '<html lang="es">' in es and "We use your address only" not in es
        embedded = client.get("/embed/contact?lang=es").get_data(as_text=True)
        assert '<html lang="es">' in embedded and 'class="embed"' in embedded
        assert 'class="embed"' not in es


def test_a_page_shown_again_with_errors_is_never_served_to_the_next_visitor(
        app: Flask, client: FlaskClient, clock: list[float]) -> None:
    client.get("/forms/contact")
    clock[0] += 60
    hostile = "<script>alert(1)</script>"
    wrong = client.post("/forms/contact", data=contact_fields(
        app, _token=f"{int(T0)}.{'0' * 32}", subject=hostile, message=""))
    assert hostile not in wrong.get_data(as_text=True)
    bad = client.post("/forms/contact", data=contact_fields(app, subject=hostile, message=""))
    shown = bad.get_data(as_text=True)
    assert "&lt;script&gt;" in shown and "Error:" in shown
    after = client.get("/forms/contact").get_data(as_text=True)
    assert "Error:" not in after and "&lt;script&gt;" not in after


def test_a_feedback_page_about_something_is_rendered_for_it(client: FlaskClient,
                                                           clock: list[float]) -> None:
    client.get("/forms/feedback")
    about = client.get("/forms/feedback?about=Parks+%26+trails").get_data(as_text=True)
    assert "Parks &amp; trails" in about
    plain = client.get("/forms/feedback").get_data(as_text=True)
    assert "Parks &amp; trails" not in plain
