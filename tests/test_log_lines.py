"""Log lines never carry control characters from input: one record, one line, as written.

Read from what the processes really wrote: ``intake ingest --mailbox`` with a
forged log line in the mailbox name, and the handler ``configure_logging``
installs (what ``intake serve``, the workers and gunicorn's ``wsgi:app`` use).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from intake.logsafe import OneLineFormatter, escape_controls
from intake.runtime import configure_logging
from tests.conftest import REPO, SMALL_RULES, intake_command, subprocess_env

FORGED = "2026-12-07 00:00:00,000 ERROR intake.gate: FORGED disclosure"
TIMESTAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: "


def _lines_are_records(text: str) -> list[str]:
    import re

    lines = [line for line in text.splitlines() if line.strip()]
    records = [line for line in lines if re.match(TIMESTAMP, line)]
    assert records, text
    return records


def test_ingest_with_a_forged_mailbox_name_writes_no_forged_line(
        tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "intake.sqlite3")
    mailbox = f"ingest\n{FORGED}\r\x1b[2J\u202e\u2028end"
    env = subprocess_env(INTAKE_DATABASE_URL=f"sqlite:///{tmp_path / 'intake.sqlite3'}",
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_RULES=str(SMALL_RULES), INTAKE_LOG_LEVEL="INFO")
    result = subprocess.run(
        [*intake_command(), "ingest", "--mailbox", mailbox,
         str(REPO / "tests" / "data" / "mail" / "alternative.eml")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    log_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert not [line for line in log_lines if line.startswith(FORGED)], result.stderr
    mentioning = [line for line in log_lines if "FORGED" in line]
    assert mentioning, result.stderr  # the name was logged, escaped, on the record's own line
    for line in mentioning:
        assert "(mailbox ingest\\n2026-12-07" in line
        assert "\\r\\x1b[2J\\u202e\\u2028end" in line
        assert not any(ord(c) < 32 or c in "\x7f\u2028\u202e" for c in line)


def test_every_record_of_the_intake_handler_is_one_line(
        capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        for handler in before:  # a fresh handler, as a new process would have
            if getattr(handler, "_intake", False):
                root.removeHandler(handler)
        configure_logging("INFO")
        log = logging.getLogger("intake.test")
        log.warning("subject %s", "one\r\ntwo\x00three\x85four\tfive")
        try:
            raise ValueError("boom\nFORGED")
        except ValueError:
            log.exception("failed for %s", "a\nb")
        for handler in root.handlers:
            handler.flush()
        err = capfd.readouterr().err
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        for handler in before:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
    records = _lines_are_records(err)
    assert len([line for line in err.splitlines() if line.strip()]) == len(records) == 2
    assert records[0].endswith("subject one\\r\\ntwo\\x00three\\x85four\\tfive")
    assert "failed for a\\nb\\nTraceback" in records[1]
    assert "ValueError: boom\\nFORGED" in records[1]


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text, é and 漢字 stay", "plain text, é and 漢字 stay"),
    ("a\nb", "a\\nb"), ("\x1b[31m", "\\x1b[31m"), ("\u2029", "\\u2029"),
    ("\u2066x\u2069", "\\u2066x\\u2069"), ("\x7f", "\\x7f"),
])
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", (raw,), None)
    assert OneLineFormatter("%(message)s").format(record) == shown
