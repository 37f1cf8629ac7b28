"""The mailboxes file's ``relay_senders`` and ``spam_headers``: parsed, checked, and obeyed by
the poller (a mailbox's own relay senders and spam header, not only the defaults)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from intake.core.mail.automatic import DEFAULT_RELAY_SENDERS, DEFAULT_SPAM_HEADERS
from intake.db.automail_models import AutomaticEntry
from intake.db.models import Submitter
from intake.mail.config import MailboxConfigError, parse_mailboxes
from intake.mail.memory import MemoryMailServer
from intake.mail.poller import MailboxPoller
from intake.runtime import Runtime
from tests.conftest import REPO, SMALL_RULES, subprocess_env

BASE = """\
mailboxes:
  - name: contact
    host: imap.example.gov
    user: contact@example.gov
    password: secret
"""
RELAYED = (b"From: Site <robot@cms.example>\r\nReply-To: Bo Diaz <bo.diaz@example.org>\r\n"
           b"To: contact@example.gov\r\nSubject: Contact form\r\n"
           b"Message-ID: <form-1@cms.example>\r\n\r\nThe bridge railing is loose.\r\n")
BARRACUDA = (b"From: Deals <deals@shop.example>\r\nTo: contact@example.gov\r\n"
             b"Subject: Offer\r\nX-Barracuda-Spam-Flag: YES\r\n"
             b"Message-ID: <offer-1@shop.example>\r\n\r\nBuy now.\r\n")


def test_defaults_and_own_lists() -> None:
    [default] = parse_mailboxes(BASE, {})
    assert default.relay_senders == DEFAULT_RELAY_SENDERS
    assert default.spam_headers == DEFAULT_SPAM_HEADERS
    [own] = parse_mailboxes(BASE + '    relay_senders: ["robot@", "@cms.example", '
                                   '"forms@site.example"]\n'
                                   '    spam_headers: ["X-Barracuda-Spam-Flag: YES"]\n', {})
    assert own.relay_senders == ("robot@", "@cms.example", "forms@site.example")
    assert own.automatic().spam_rules() == [("x-barracuda-spam-flag", "yes")]
    [off] = parse_mailboxes(BASE + "    relay_senders: []\n", {})
    assert off.relay_senders == ()


@pytest.mark.parametrize("line", [
    "    relay_senders: noreply@\n",
    "    relay_senders: [noreply]\n",
    "    relay_senders: ['@']\n",
    "    relay_senders: [1]\n",
    "    spam_headers: ['X-Spam-Flag']\n",
    "    spam_headers: ['X-Spam-Flag:   ']\n",
])
def test_bad_lists_are_refused_with_one_line(line: str) -> None:
    with pytest.raises(MailboxConfigError) as caught:
        parse_mailboxes(BASE + line, {})
    assert "\n" not in str(caught.value) and "mailbox 'contact'" in str(caught.value)


def test_the_poller_uses_the_mailboxs_lists(runtime: Runtime) -> None:
    [config] = parse_mailboxes(
        BASE + '    relay_senders: ["@cms.example"]\n'
               '    spam_headers: ["X-Barracuda-Spam-Flag: YES"]\n', {})
    server = MemoryMailServer()
    wordpress = (b"From: WordPress <wordpress@blog.example>\r\nReply-To: ann@example.org\r\n"
                 b"To: contact@example.gov\r\nSubject: Contact form\r\n"
                 b"Message-ID: <wp-1@blog.example>\r\n\r\nHello.\r\n")
    server.append(config.folder, RELAYED, BARRACUDA, wordpress)
    poller = MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                           open_mailbox=server.open)
    assert poller.poll_once().stored == 3
    with runtime.db.session() as s:
        submitters = sorted(x.email or "" for x in s.scalars(select(Submitter)))
        categories = [a.category for a in s.scalars(select(AutomaticEntry))]
    # Only this mailbox's relay senders count: wordpress@ is not one of them here.
    assert submitters == ["bo.diaz@example.org", "deals@shop.example", "wordpress@blog.example"]
    assert categories == ["spam"]


def test_ingest_takes_the_lists_of_the_mailbox_it_names(tmp_path: Path, sqlite_url: str) -> None:
    """``intake ingest --mailbox contact`` classifies like the poller of "contact" would."""
    mailboxes = tmp_path / "mailboxes.yaml"
    mailboxes.write_text(BASE + '    relay_senders: ["@cms.example"]\n'
                                '    spam_headers: ["X-Barracuda-Spam-Flag: YES"]\n')
    files = []
    for n, raw in enumerate((RELAYED, BARRACUDA)):
        files.append(tmp_path / f"{n}.eml")
        files[-1].write_bytes(raw)
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_MAILBOXES_FILE=str(mailboxes))
    done = subprocess.run([sys.executable, "-m", "intake", "ingest", "--mailbox", "contact",
                           "--json", *map(str, files)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o.get("auto_category") for o in outcomes] == [None, "spam"]
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            emails = sorted(conn.execute(select(Submitter.email)).scalars())
    finally:
        engine.dispose()
    assert emails == ["bo.diaz@example.org", "deals@shop.example"]
