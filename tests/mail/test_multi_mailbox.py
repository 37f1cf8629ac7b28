"""Three mailboxes on one IMAP server (Dovecot, or pymap where Dovecot cannot run), each
with its own routing hint (``agency``) and form, polled by one ``intake poll --once`` and
by ``intake serve``'s pollers: each message lands with its mailbox's hint, and the rules
route it by that hint.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from intake.cli import cli
from intake.db.models import Entry
from intake.mail.config import MailboxConfig
from intake.runtime import Runtime
from tests.conftest import (
    TEST_SECRET,
    free_port,
    make_settings,
    output_of,
    subprocess_env,
    wait_for,
)
from tests.mail.conftest import DOVECOT, ImapServer, message, start_dovecot, start_pymap

RULES = """\
version: 1
agencies:
  - {id: governor, name: Office of the Governor, email: governor@examplia.gov}
  - {id: dot, name: Department of Transportation, email: dot@examplia.gov}
  - {id: parks, name: Department of Parks, email: parks@examplia.gov}
  - {id: health, name: Department of Health, email: health@examplia.gov}
default_agency: governor
rules:
  - {id: hint-dot, when: {field: _mailbox_agency, equals: dot}, route_to: dot, stop: true}
  - {id: hint-parks, when: {field: _mailbox_agency, equals: parks}, route_to: parks, stop: true}
  - {id: hint-health, when: {field: _mailbox_agency, equals: health}, route_to: health,
     stop: true}
"""
HINTS = {"roads-box": "dot", "parks-box": "parks", "health-box": "health"}


@pytest.fixture(scope="module")
def imap_server() -> Iterator[ImapServer]:
    """Dovecot where it can run here (installed, root), else pymap."""
    if os.path.exists(DOVECOT) and os.geteuid() == 0:
        yield from start_dovecot()
    else:
        yield from start_pymap()


def _mailboxes_file(tmp_path: Path, imap: ImapServer) -> tuple[Path, dict[str, MailboxConfig]]:
    configs = {name: imap.mailbox(name, agency=agency, form="contact")
               for name, agency in HINTS.items()}
    path = tmp_path / "mailboxes.yaml"
    path.write_text(yaml.safe_dump({"mailboxes": [
        {"name": c.name, "host": c.host, "port": c.port, "security": "none", "user": c.user,
         "password": c.password, "folder": c.folder, "processed_folder": c.processed_folder,
         "agency": c.agency, "form": c.form, "poll_interval": 1}
        for c in configs.values()]}))
    return path, configs


def _landed(runtime: Runtime) -> dict[str, tuple[str | None, str | None, str | None, str]]:
    """Subject -> (the entry's mailbox, its agency hint, its form, the agency it went to)."""
    with runtime.db.session() as s:
        return {e.subject: (e.fields.get("_mailbox"), e.fields.get("_mailbox_agency"),
                            e.form_slug, e.agency_id or "")
                for e in s.scalars(select(Entry))}


def _send(imap: ImapServer, configs: dict[str, MailboxConfig], round_: str) -> dict[str, str]:
    """One message into each mailbox; subject -> the mailbox it was put in."""
    sent = {}
    for n, (name, config) in enumerate(configs.items()):
        subject = f"{round_} question {n} for the state"
        imap.append(config.folder, message(n, subject=subject,
                                           body="Who do I ask about this, please?\n"))
        sent[subject] = name
    return sent


def test_three_mailboxes_each_with_its_hint_by_poll_once_and_by_serve(
        tmp_path: Path, sqlite_url: str, imap_server: ImapServer,
        server_process: Callable[..., subprocess.Popen[str]]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    mailboxes, configs = _mailboxes_file(tmp_path, imap_server)
    env = {"INTAKE_DATABASE_URL": sqlite_url, "INTAKE_SECRET_KEY": TEST_SECRET,
           "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"), "INTAKE_RULES": str(rules),
           "INTAKE_MAILBOXES_FILE": str(mailboxes), "INTAKE_LOG_LEVEL": "WARNING"}
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_RULES=str(rules)))
    try:
        # One `intake poll --once` polls all three, and routes what it stored.
        first = _send(imap_server, configs, "Polled")
        result = CliRunner().invoke(cli, ["poll", "--once"], env=env)
        assert result.exit_code == 0, result.output
        landed = _landed(runtime)
        assert {subject: landed[subject] for subject in first} == {
            subject: (name, HINTS[name], "contact", HINTS[name])
            for subject, name in first.items()}
        for config in configs.values():
            assert imap_server.count(config.folder) == 0  # moved to the processed folder
            assert imap_server.count(config.processed_folder) == 1

        # `intake serve` runs the same pollers, one per mailbox.
        port = free_port()
        proc = server_process(["serve", "--port", str(port)], subprocess_env(**env))
        second = _send(imap_server, configs, "Served")

        def arrived() -> bool:
            now = _landed(runtime)
            return proc.poll() is not None or all(
                subject in now and now[subject][3] for subject in second)

        wait_for(arrived, timeout=60, message="the served pollers storing and routing")
        assert proc.poll() is None, output_of(proc)
        landed = _landed(runtime)
        assert {subject: landed[subject] for subject in second} == {
            subject: (name, HINTS[name], "contact", HINTS[name])
            for subject, name in second.items()}
        assert len(landed) == 6
    finally:
        runtime.close()
