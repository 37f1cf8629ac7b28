"""Mailbox configuration: INTAKE_IMAP_URL and the mailboxes file."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.mail.config import MailboxConfigError, load_mailboxes, parse_imap_url, parse_mailboxes
from tests.conftest import make_settings


def test_imap_url_with_everything() -> None:
    box = parse_imap_url("imaps://info%40examplia.gov:s%3Dcret@mail.examplia.gov/Public%20Mail"
                         "?processed=Done&interval=30")
    assert (box.host, box.port, box.security, box.user, box.password) == (
        "mail.examplia.gov", 993, "tls", "info@examplia.gov", "s=cret")
    assert (box.folder, box.processed_folder, box.poll_interval) == ("Public Mail", "Done", 30)
    assert "s=cret" not in repr(box)


def test_imap_url_defaults_and_password_variable() -> None:
    box = parse_imap_url("imap+starttls://info@mail.examplia.gov",
                         {"INTAKE_IMAP_PASSWORD": "pw"})
    assert (box.port, box.security, box.folder, box.processed_folder, box.password) == (
        143, "starttls", "INBOX", "Processed", "pw")
    with pytest.raises(MailboxConfigError, match="INTAKE_IMAP_URL: no password"):
        parse_imap_url("imaps://info@mail.examplia.gov/INBOX")


FILE = """
mailboxes:
  - name: info
    host: mail.examplia.gov
    user: info@examplia.gov
    password_file: info.pw
    folder: INBOX
    processed_folder: INBOX.Done
    agency: transport
  - name: foia
    host: mail.examplia.gov
    port: 143
    security: starttls
    user: foia@examplia.gov
    password_env: INTAKE_IMAP_PASSWORD_FOIA
    form: contact
    poll_interval: 15
"""


def test_mailboxes_file(tmp_path: Path) -> None:
    (tmp_path / "info.pw").write_text("secret-1\n")
    path = tmp_path / "mailboxes.yaml"
    path.write_text(FILE)
    settings = make_settings(tmp_path, "sqlite:///" + str(tmp_path / "x.sqlite3"),
                             INTAKE_MAILBOXES_FILE=str(path),
                             INTAKE_IMAP_PASSWORD_FOIA="secret-2")
    info, foia = load_mailboxes(settings)
    assert (info.name, info.port, info.security, info.password, info.agency) == (
        "info", 993, "tls", "secret-1", "transport")
    assert info.processed_folder == "INBOX.Done"
    assert (foia.port, foia.security, foia.password, foia.form, foia.poll_interval) == (
        143, "starttls", "secret-2", "contact", 15.0)


@pytest.mark.parametrize(("text", "message"), [
    ("nope: []", "expected a 'mailboxes:' list"),
    ("mailboxes: [{name: a, host: h, user: u}]", "exactly one of password"),
    ("mailboxes: [{name: a, host: h, user: u, password: p, colour: red}]", "unknown key"),
    ("mailboxes: [{name: a, host: h, user: u, password: p, security: ssl}]", "security must"),
    ("mailboxes: [{name: a, host: h, user: u, password: p, port: 0}]", "port must"),
    ("mailboxes: [{name: a, host: h, user: u, password_env: HOME}]", "password_env must"),
    ("mailboxes: [{name: a, host: h, user: u, password_env: INTAKE_IMAP_PASSWORD_X}]",
     "INTAKE_IMAP_PASSWORD_X is not set"),
    ("mailboxes:\n - {name: a, host: h, user: u, password: p}\n"
     " - {name: a, host: h, user: u, password: p}", "duplicate name"),
    ("mailboxes: [", "not valid YAML"),
])
def test_bad_mailboxes_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MailboxConfigError, match=message) as info:
        parse_mailboxes(text, {})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["planted.person@example.org", "", "-lead", "x" * 65,
                                  "with space", "new\nline"])
def test_a_mailbox_name_is_a_label_however_the_mailbox_is_made(name: str) -> None:
    # Log lines call a mailbox by its name: whatever path builds one, an address (or
    # anything else that is not a plain label) cannot be a name, and is not echoed.
    from intake.mail.config import MailboxConfig

    with pytest.raises(MailboxConfigError) as direct:
        MailboxConfig(name=name, host="imap.example.gov", port=993, security="tls",
                      user="intake", password="pw")
    with pytest.raises(MailboxConfigError) as from_url:
        parse_imap_url("imaps://intake:pw@imap.example.gov/INBOX", name=name)
    for error in (direct.value, from_url.value):
        assert "letters, digits" in str(error) and (not name or name not in str(error))
    assert parse_imap_url("imaps://intake:pw@imap.example.gov/INBOX").name == "default"
