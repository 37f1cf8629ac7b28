"""The IMAP poller against real servers on loopback (pymap always, Dovecot when installed).

Every fault test ends the same way: each message is stored exactly once (its
exact bytes are an original or in quarantine) and nothing was removed from the
server (the folder plus the processed folder hold every appended message). The
poller's logic (leases, crashes, UIDVALIDITY changes, poison messages) is tested
on the in-memory mail server in tests/mail/test_poller.py; here it runs on
ImapMailbox against real servers: a pass, a dropped connection, a server without
MOVE, the `serve` and `poll` commands, and what reaches the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from intake.db.mail_models import MailboxState
from intake.db.models import Attachment, Entry
from intake.mail.config import MailboxConfig
from intake.mail.imap import ImapMailbox
from intake.mail.poller import MailboxPoller
from intake.runtime import Runtime
from tests.conftest import wait_for
from tests.mail.conftest import (
    DroppingProxy,
    ImapServer,
    digest,
    message,
    start_dovecot,
    start_pymap,
    stored_digests,
)


@pytest.fixture(scope="session")
def pymap_server() -> Iterator[ImapServer]:
    yield from start_pymap()


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[ImapServer]:
    yield from start_dovecot()


@pytest.fixture(params=["pymap", "dovecot"])
def imap(request: pytest.FixtureRequest) -> ImapServer:
    server: ImapServer = request.getfixturevalue(f"{request.param}_server")
    return server


def poller(runtime: Runtime, config: MailboxConfig, **kwargs: Any) -> MailboxPoller:
    return MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                         open_mailbox=ImapMailbox.open, **kwargs)


def assert_exactly_once(runtime: Runtime, imap: ImapServer, config: MailboxConfig,
                        sent: list[bytes]) -> None:
    stored = stored_digests(runtime)
    assert sorted(stored) == sorted(digest(m) for m in sent), "each message stored exactly once"
    assert imap.count(config.folder) == 0, "every message moved out of the folder"
    on_server = sorted(digest(m) for m in imap.contents(config.processed_folder))
    assert on_server == sorted(digest(m) for m in sent), "nothing removed from the server"


def test_poll_stores_every_message_once_and_moves_it(runtime: Runtime, imap: ImapServer
                                                     ) -> None:
    config = imap.mailbox()
    sent = [message(1), message(2, attachment_kb=30),
            # Two different messages with one Message-ID: both are kept.
            message(3, message_id="<same@example.org>"),
            message(4, message_id="<same@example.org>", body="A different body.\n")]
    imap.append(config.folder, *sent)
    report = poller(runtime, config).poll_once()
    assert (report.stored, report.duplicates, report.quarantined, report.moved) == (4, 0, 0, 4)
    assert_exactly_once(runtime, imap, config, sent)
    with runtime.db.session() as s:
        entries = s.scalars(select(Entry).order_by(Entry.id)).all()
        assert [e.channel for e in entries] == ["email"] * 4
        assert all(e.fields["_mailbox"] == "default" for e in entries)
        assert entries[1].fields["_attachments"] == ["photo-2.bin"]
        att = s.scalars(select(Attachment)).one()
        assert att.size == 30 * 1024 and att.entry_id == entries[1].id
        state = s.get(MailboxState, "default")
        assert state is not None and state.messages_stored == 4 and state.lease_owner is None
    # A second pass finds nothing new and stores nothing twice.
    again = poller(runtime, config).poll_once()
    assert (again.stored, again.moved) == (0, 0)
    assert_exactly_once(runtime, imap, config, sent)


def test_connection_dropped_mid_fetch(runtime: Runtime, imap: ImapServer) -> None:
    proxy = DroppingProxy(imap.port, drop_after=150_000)
    try:
        config = imap.mailbox(port=proxy.port)
        sent = [message(n, attachment_kb=60) for n in range(6)]
        imap.append(config.folder, *sent)
        report = poller(runtime, config, batch_bytes=1).poll_once(backoff=0.01)
        assert proxy.dropped.is_set() and proxy.connections >= 2
        assert report.errors, "the drop was noticed and the pass resumed"
        assert report.stored == 6
        assert_exactly_once(runtime, imap, config, sent)
    finally:
        proxy.close()


def test_servers_without_move_get_copy_and_a_keyword(runtime: Runtime, imap: ImapServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from imapclient import IMAPClient

    real = IMAPClient.has_capability

    def no_move(self: IMAPClient, capability: str) -> bool:
        return False if capability.upper() == "MOVE" else bool(real(self, capability))

    # The server's MOVE is hidden from the poller (the thing under test is its fallback).
    monkeypatch.setattr(IMAPClient, "has_capability", no_move)
    config = imap.mailbox()
    sent = [message(n) for n in range(3)]
    imap.append(config.folder, *sent)
    assert poller(runtime, config).poll_once().stored == 3
    assert poller(runtime, config).poll_once().moved == 0  # flagged ones are not copied again
    assert imap.count(config.folder) == 3  # never deleted
    assert sorted(digest(m) for m in imap.contents(config.processed_folder)) == sorted(
        digest(m) for m in sent)
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in sent)


@pytest.mark.slow
def test_embedded_poller_in_serve(sqlite_url: str, tmp_path: Any, pymap_server: ImapServer,
                                  server_process: Any) -> None:
    from sqlalchemy import create_engine

    from tests.conftest import SMALL_RULES, free_port, subprocess_env

    config = pymap_server.mailbox()
    url = (f"imap://{config.user}:{config.password}@127.0.0.1:{pymap_server.port}/"
           f"{config.folder}?processed={config.processed_folder}&interval=1")
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_IMAP_URL=url,
                         INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    proc = server_process(["serve", "--port", str(free_port())], env)
    pymap_server.append(config.folder, message(1))
    engine = create_engine(sqlite_url)

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Entry)).scalar_one())

    try:
        wait_for(lambda: proc.poll() is not None or count() == 1, 30,
                 message="the embedded poller to store the message")
        assert proc.poll() is None
        # A message arriving while the poller waits (IDLE) is picked up too.
        pymap_server.append(config.folder, message(2))
        wait_for(lambda: count() == 2, 30, message="the second message")
        proc.terminate()
        proc.wait(timeout=20)
        with engine.connect() as conn:
            owner = conn.execute(select(MailboxState.lease_owner)).scalar_one()
        assert owner is None, "the poller stopped cleanly and released its lease"
    finally:
        engine.dispose()


def test_poll_once_command_stores_and_routes(sqlite_url: str, tmp_path: Any,
                                             pymap_server: ImapServer) -> None:
    import subprocess
    import sys

    from sqlalchemy import create_engine

    from intake.db.models import WorkItem
    from tests.conftest import REPO, SMALL_RULES, subprocess_env

    config = pymap_server.mailbox()
    sent = [message(1), message(2)]
    pymap_server.append(config.folder, *sent)
    url = (f"imap://{config.user}:{config.password}@127.0.0.1:{pymap_server.port}/"
           f"{config.folder}?processed={config.processed_folder}")
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_IMAP_URL=url,
                         INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run([sys.executable, "-m", "intake", "poll", "--once"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "default: 2 stored" in done.stdout
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            states = conn.execute(select(WorkItem.state).where(WorkItem.kind == "route")).all()
            others = conn.execute(select(WorkItem.kind, WorkItem.state, WorkItem.attempts)
                                  .where(WorkItem.kind != "route")).all()
        assert [s for (s,) in states] == ["done", "done"], "routed before the command exits"
        # The deliveries routing planned wait for `intake serve` or a worker (no SMTP here):
        # a one-shot command does not try them.
        assert sorted((k, s, a) for k, s, a in others) == [
            ("acknowledge", "pending", 0), ("acknowledge", "pending", 0),
            ("deliver", "pending", 0), ("deliver", "pending", 0)]
    finally:
        engine.dispose()
    assert pymap_server.count(config.folder) == 0
    assert pymap_server.count(config.processed_folder) == 2


def test_poller_log_lines_name_mailboxes_and_counts_never_people(
        runtime: Runtime, imap: ImapServer, caplog: pytest.LogCaptureFixture) -> None:
    """The poller logs the mailbox's configured name, error classes, UIDs and counts:
    a pass with a dropped connection and mail full of personal data logs none of it,
    even at INTAKE_LOG_LEVEL=DEBUG (IMAPClient's protocol log is kept quiet)."""
    import logging

    from intake.runtime import QUIET_LIBRARIES, configure_logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging("DEBUG")  # as intake serve / intake poll set it up
    quieted = [logging.getLogger(name) for name in QUIET_LIBRARIES]
    secrets = ("planted.sender@example.org", "Planted Sender", "518-22-4137",
               "4111 1111 1111 1111", "Complaint about my neighbour")
    caplog.set_level(logging.DEBUG)
    proxy = DroppingProxy(imap.port, drop_after=150_000)
    try:
        config = imap.mailbox(port=proxy.port)
        sent = [message(n, attachment_kb=60, sender=f"{secrets[1]} <{secrets[0]}>",
                        subject=f"{secrets[4]} {n}",
                        body=f"My SSN is {secrets[2]}, card {secrets[3]}.\n")
                for n in range(4)]
        imap.append(config.folder, *sent)
        report = poller(runtime, config, batch_bytes=1).poll_once(backoff=0.01)
        assert report.errors and report.stored == 4
    finally:
        proxy.close()
        root.handlers[:] = handlers
        for quiet in quieted:
            quiet.setLevel(logging.NOTSET)

    def text(record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except TypeError:  # a library's record whose arguments do not fit its format
            message = f"{record.msg} {record.args!r}"
        return f"{record.name} {message} {record.exc_text or ''}"

    logged = "\n".join(text(r) for r in caplog.records)
    assert f"mailbox {config.name}: " in logged  # the warning and the summary were logged
    assert "4 stored" in logged
    assert [s for s in secrets if s in logged] == [], sorted(
        {r.name for r in caplog.records if any(s in text(r) for s in secrets)})


def test_the_imap_conversation_is_not_logged_even_where_its_logger_is_enabled(
        runtime: Runtime, imap: ImapServer, caplog: pytest.LogCaptureFixture) -> None:
    """IMAPClient turns imaplib's debug output on (level 5) and sends it to the
    ``imapclient.imaplib`` logger: every fetched message, quoted whole. intake keeps that
    logger quiet (``QUIET_LIBRARIES``), but imaplib formatted each message for it anyway,
    and a host application that enables it would log citizens' mail. ``ImapMailbox``
    turns imaplib's debug output off, so nothing of a message reaches that logger."""
    import logging

    secrets = ("planted.sender@example.org", "Complaint about my neighbour", "518-22-4137")
    imaplib_logger = logging.getLogger("imapclient")
    level = imaplib_logger.level
    imaplib_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imapclient")
    try:
        config = imap.mailbox()
        sent = [message(n, sender=f"Planted <{secrets[0]}>", subject=f"{secrets[1]} {n}",
                        body=f"My SSN is {secrets[2]}.\n") for n in range(3)]
        imap.append(config.folder, *sent)
        report = poller(runtime, config).poll_once()
    finally:
        imaplib_logger.setLevel(level)
    assert report.stored == 3
    logged = "\n".join(f"{r.name} {r.msg} {r.args!r}" for r in caplog.records)
    assert "imapclient" in logged  # the logger was on: IMAPClient's own command lines
    assert [s for s in secrets if s in logged] == []
