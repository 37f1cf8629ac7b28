"""gunicorn's logs never hold a status-link token or a query string: the access log
(checked end to end in test_wheel.py) and the error log's "Error handling request" line."""

from __future__ import annotations

from pathlib import Path

import pytest
from gunicorn.config import Config

from intake.gunicorn_conf import RedactingLogger, redact_path
from intake.settings import SettingsError, load_settings


def test_paths_are_redacted() -> None:
    assert redact_path("/status/tok-123") == "/status/[token]"
    assert redact_path("/status/tok-123/withdraw?lang=es") == "/status/[token]/withdraw"
    assert redact_path("/staff/inbox?q=Ada+Lovelace") == "/staff/inbox"
    assert redact_path("/records/EX-2026-000001") == "/records/EX-2026-000001"


def test_the_error_log_redacts_the_request_uri(tmp_path: Path) -> None:
    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    logger = RedactingLogger(cfg)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("Error handling request %s", "/status/tok-9f8e7d?q=Ada")
    logger.error("Error handling request %s %s", "POST", "/status/tok-9f8e7d/withdraw")
    text = (tmp_path / "error.log").read_text()
    assert text.count("/status/[token]") == 2, text
    assert "tok-9f8e7d" not in text and "Ada" not in text


def test_the_bind_and_process_settings_are_checked() -> None:
    settings = load_settings({"INTAKE_BIND": "0.0.0.0:8000", "INTAKE_WEB_WORKERS": "3"})
    assert (settings.web_bind, settings.web_workers, settings.web_threads) == (
        "0.0.0.0:8000", 3, 4)
    assert load_settings({"INTAKE_BIND": "unix:/run/intake.sock"}).web_bind == \
        "unix:/run/intake.sock"
    for bad in ("8000", "host:", "host:99999", ":80"):
        with pytest.raises(SettingsError, match="INTAKE_BIND"):
            load_settings({"INTAKE_BIND": bad})
    with pytest.raises(SettingsError, match="INTAKE_METRICS_TOKEN"):
        load_settings({"INTAKE_METRICS_TOKEN": "short"})
    with pytest.raises(SettingsError, match="INTAKE_METRICS_ALLOW"):
        load_settings({"INTAKE_METRICS_ALLOW": "10.0.0.0/8, not-an-address"})
