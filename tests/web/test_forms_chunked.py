"""The public form's body limit holds for a chunked body too (no Content-Length).

A chunked body over the form's cap must be 413 with nothing stored, never read up to the
cap and parsed as if it ended there. Over a real HTTP server (werkzeug's, which de-chunks).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask

from intake.runtime import Runtime
from intake.web.forms import _body_cap, _config
from tests.conftest import contact_fields
from tests.web.test_inbound import entries, post_chunked, serving


def test_a_chunked_form_post_over_the_cap_is_413_and_stores_nothing(app: Flask,
                                                                     rt: Runtime) -> None:
    with app.app_context():
        cap = _body_cap(_config().forms["contact"])
    fields = urlencode(contact_fields(app)).encode()
    # Valid fields first: a body cut at the cap would still make a whole submission.
    body = fields + b"&message=" + b"x" * (cap + 10_000)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    with serving(app) as port:
        assert post_chunked(port, "/forms/contact", body, headers) == 413
        assert entries(rt) == 0
        assert post_chunked(port, "/forms/contact", fields, headers) == 201
    assert entries(rt) == 1
