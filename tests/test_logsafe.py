"""Exceptions reach the logs as class and location, never as their message."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from intake import create_app
from intake.logsafe import describe
from intake.runtime import Runtime

ADDRESS = "planted.person@example.org"


def test_describe_keeps_class_and_place_and_drops_the_message(runtime: Runtime) -> None:
    try:
        with runtime.db.session() as s:  # an SQL error that quotes its parameters
            s.execute(text("INSERT INTO record_counters (prefix, year, last_value) "
                           "VALUES (:p, 1, 1), (:p, 1, 2)"), {"p": ADDRESS[:8]})
    except IntegrityError as exc:
        described = describe(exc)
        assert ADDRESS[:8] in str(exc)  # the message would have leaked it
    else:
        pytest.fail("the duplicate key should have been refused")
    assert described.startswith("IntegrityError at ")
    assert "test_logsafe.py" in described
    assert ADDRESS[:8] not in described


def test_an_unhandled_web_error_logs_no_message(runtime: Runtime,
                                               caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(runtime=runtime)

    @app.get("/boom")
    def boom() -> str:
        raise ValueError(f"cannot handle {ADDRESS}")

    caplog.set_level(logging.DEBUG)
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "unhandled ValueError at test_logsafe.py" in logged
    assert ADDRESS not in logged
    assert ADDRESS not in response.get_data(as_text=True)
