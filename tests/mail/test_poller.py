"""The poller's logic on an in-memory mail server: exactly once, leases, crashes,
UIDVALIDITY changes, servers without MOVE, the polling loop.

Every test ends the same way: each message is stored exactly once (its exact bytes
are an original or in quarantine) and nothing was removed from the server.
tests/mail/test_imap.py runs the poller against real IMAP servers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text, update

from intake.db.mail_models import MailboxState, QuarantinedMessage
from intake.db.models import Entry, utcnow
from intake.mail.config import MailboxConfig
from intake.mail.memory import MemoryMailServer
from intake.mail.poller import MailboxPoller, PassReport
from intake.runtime import Runtime
from intake.services.mail_intake import open_quarantined
from intake.services.mailboxes import acquire_lease
from tests.conftest import wait_for
from tests.mail.conftest import digest, message, stored_digests

CONFIG = MailboxConfig(name="default", host="memory.invalid", port=143, security="none",
                       user="intake", password="memory", folder="INBOX",
                       processed_folder="Processed", poll_interval=1.0)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no lease is released."""


@pytest.fixture
def server() -> MemoryMailServer:
    return MemoryMailServer()


def poller(runtime: Runtime, server: MemoryMailServer, **kwargs: Any) -> MailboxPoller:
    return MailboxPoller(runtime.db, runtime.settings, CONFIG, pii_key=runtime.pii_key,
                         open_mailbox=server.open, **kwargs)


def assert_exactly_once(runtime: Runtime, server: MemoryMailServer, sent: list[bytes]) -> None:
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in sent), \
        "each message stored exactly once"
    assert server.contents(CONFIG.folder) == [], "every message moved out of the folder"
    assert sorted(digest(m) for m in server.contents(CONFIG.processed_folder)) == sorted(
        digest(m) for m in sent), "nothing removed from the server"


def test_a_pass_stores_every_message_once_and_moves_it(runtime: Runtime,
                                                       server: MemoryMailServer) -> None:
    sent = [message(1), message(2, attachment_kb=30), message(3)]
    server.append(CONFIG.folder, *sent)
    report = poller(runtime, server).poll_once()
    assert (report.stored, report.duplicates, report.quarantined, report.moved) == (3, 0, 0, 3)
    assert_exactly_once(runtime, server, sent)
    with runtime.db.session() as s:
        assert [e.fields["_mailbox"] for e in s.scalars(select(Entry))] == ["default"] * 3
        state = s.get(MailboxState, "default")
        assert state is not None and state.messages_stored == 3 and state.lease_owner is None
        assert state.last_error is None and state.last_poll_at is not None
    again = poller(runtime, server).poll_once()
    assert (again.stored, again.moved) == (0, 0)
    assert_exactly_once(runtime, server, sent)


def test_a_dropped_connection_is_resumed_without_loss(runtime: Runtime,
                                                      server: MemoryMailServer) -> None:
    sent = [message(n) for n in range(6)]
    server.append(CONFIG.folder, *sent)
    server.drop_after(12)  # in the middle of the batches
    report = poller(runtime, server, batch_bytes=1).poll_once(backoff=0.01)
    assert report.errors == ["ConnectionResetError (attempt 1)"] and server.logins == 2
    assert report.stored == 6
    assert_exactly_once(runtime, server, sent)
    with runtime.db.session() as s:
        state = s.get(MailboxState, "default")
        assert state is not None and state.last_error is None  # the retry finished the pass


def test_crash_between_commit_and_move(runtime: Runtime, server: MemoryMailServer) -> None:
    sent = [message(n) for n in range(5)]
    server.append(CONFIG.folder, *sent)
    batches: list[list[int]] = []

    def crash_on_third_batch(uids: list[int]) -> None:
        batches.append(uids)
        if len(batches) == 3:
            raise Crash

    doomed = poller(runtime, server, batch_bytes=1, lease_seconds=1,
                    before_move=crash_on_third_batch)
    with pytest.raises(Crash):
        doomed.run_pass(doomed.connect())
    assert len(stored_digests(runtime)) == 3  # committed ...
    assert len(server.contents(CONFIG.folder)) == 3  # ... but only two were moved
    # The crashed poller still holds the lease; a new one waits for it to expire.
    survivor = poller(runtime, server)
    first = survivor.poll_once()
    assert first.skipped_lease or first.stored == 2
    reports: list[PassReport] = [first]
    if first.skipped_lease:
        reports.append(wait_for(lambda: _not_skipped(survivor.poll_once()), 10,
                                message="the crashed poller's lease to expire"))
    assert sum(r.stored for r in reports) == 2
    assert sum(r.moved for r in reports) == 3  # the committed one moved without a re-store
    assert_exactly_once(runtime, server, sent)


def _not_skipped(report: PassReport) -> PassReport | None:
    return None if report.skipped_lease else report


def test_uidvalidity_change_rescans_without_duplicates(runtime: Runtime,
                                                       server: MemoryMailServer) -> None:
    first = [message(n) for n in range(3)]
    server.append(CONFIG.folder, *first)
    assert poller(runtime, server).poll_once().stored == 3
    # The server rebuilds the folder (a restore from backup): new UIDVALIDITY,
    # UIDs start again, the old messages are back and one new one arrived.
    server.rebuild(CONFIG.folder)
    new = message(99)
    server.append(CONFIG.folder, *first, new)
    report = poller(runtime, server).poll_once()
    assert report.uidvalidity_reset
    assert (report.stored, report.duplicates) == (1, 3)
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in [*first, new])
    assert server.contents(CONFIG.folder) == []
    assert len(server.contents(CONFIG.processed_folder)) == 7  # restored copies moved too


def test_two_pollers_at_once(runtime: Runtime, server: MemoryMailServer) -> None:
    sent = [message(n) for n in range(20)]
    server.append(CONFIG.folder, *sent)
    pollers = [poller(runtime, server, owner="host-a"), poller(runtime, server, owner="host-b")]
    start = threading.Barrier(2)
    reports: list[PassReport] = []

    def run(p: MailboxPoller) -> None:
        start.wait()
        reports.append(p.poll_once())

    threads = [threading.Thread(target=run, args=(p,)) for p in pollers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 2
    # Whoever lost the race for the lease either skipped or found the work done.
    leftover = pollers[0].poll_once()
    assert sum(r.stored for r in [*reports, leftover]) == 20
    assert_exactly_once(runtime, server, sent)


def test_a_held_lease_keeps_other_pollers_out(runtime: Runtime, server: MemoryMailServer
                                              ) -> None:
    server.append(CONFIG.folder, message(1))
    assert acquire_lease(runtime.db, CONFIG.name, "someone-else", 60)
    report = poller(runtime, server).poll_once()
    assert report.skipped_lease and report.stored == 0
    assert len(server.contents(CONFIG.folder)) == 1


def test_a_stalled_poller_whose_lease_was_taken_commits_nothing_more(
        runtime: Runtime, server: MemoryMailServer) -> None:
    sent = [message(n) for n in range(4)]
    server.append(CONFIG.folder, *sent)
    stalled: list[list[int]] = []

    def stall_after_first_batch(uids: list[int]) -> None:
        if not stalled:
            stalled.append(uids)
            # A's lease runs out while it stalls; B takes the mailbox over.
            with runtime.db.session() as s:
                s.execute(update(MailboxState).values(lease_expires_at=utcnow()))
            assert acquire_lease(runtime.db, CONFIG.name, "host-b", 60)

    a = poller(runtime, server, owner="host-a", batch_bytes=1,
               before_move=stall_after_first_batch)
    report_a = a.poll_once()
    assert stalled and report_a.skipped_lease and report_a.stored == 1
    report_b = poller(runtime, server, owner="host-b").poll_once()
    assert report_b.stored == 3
    assert_exactly_once(runtime, server, sent)


def _poison_trigger(runtime: Runtime) -> None:
    """Make the database refuse any entry whose subject says POISON: a real store failure."""
    with runtime.db.session() as s:
        if runtime.db.dialect == "sqlite":
            s.execute(text(
                "CREATE TRIGGER poison BEFORE INSERT ON entries WHEN NEW.subject LIKE '%POISON%' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))
        else:
            s.execute(text(
                "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.subject LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            s.execute(text("DROP TRIGGER IF EXISTS poison ON entries"))
            s.execute(text("CREATE TRIGGER poison BEFORE INSERT ON entries "
                           "FOR EACH ROW EXECUTE FUNCTION poison()"))


@pytest.fixture
def poisoned(runtime: Runtime) -> Iterator[Runtime]:
    _poison_trigger(runtime)
    yield runtime
    with runtime.db.session() as s:
        s.execute(text("DROP TRIGGER IF EXISTS poison" if runtime.db.dialect == "sqlite"
                       else "DROP TRIGGER IF EXISTS poison ON entries"))


def test_poison_message_between_good_ones(poisoned: Runtime, server: MemoryMailServer) -> None:
    runtime = poisoned
    poison = message(2, subject="POISON pill")
    sent = [message(1), poison, message(3)]
    server.append(CONFIG.folder, *sent)
    report = poller(runtime, server).poll_once()
    assert (report.stored, report.quarantined) == (2, 1)
    assert_exactly_once(runtime, server, sent)
    with runtime.db.session() as s:
        row = s.scalars(select(QuarantinedMessage)).one()
        assert open_quarantined(row, runtime.originals_key) == poison
        assert not row.resolved and row.mailbox == "default"
        state = s.get(MailboxState, "default")
        assert state is not None and state.messages_quarantined == 1
    # The poller does not trip on it again.
    assert poller(runtime, server).poll_once().quarantined == 0


def test_servers_without_move_get_copy_and_a_keyword(runtime: Runtime) -> None:
    server = MemoryMailServer(can_move=False)
    sent = [message(n) for n in range(3)]
    server.append(CONFIG.folder, *sent)
    assert poller(runtime, server).poll_once().stored == 3
    assert poller(runtime, server).poll_once().moved == 0  # flagged ones are not copied again
    assert len(server.contents(CONFIG.folder)) == 3  # never deleted
    assert all({CONFIG.done_keyword, "\\Seen"} <= f for f in server.flags(CONFIG.folder))
    assert sorted(digest(m) for m in server.contents(CONFIG.processed_folder)) == sorted(
        digest(m) for m in sent)
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in sent)


def test_without_move_or_keywords_committed_messages_stay_and_are_not_copied_again(
        runtime: Runtime) -> None:
    server = MemoryMailServer(can_move=False, keywords=False)
    sent = [message(n) for n in range(2)]
    server.append(CONFIG.folder, *sent)
    assert poller(runtime, server).poll_once().stored == 2
    again = poller(runtime, server).poll_once()
    assert (again.stored, again.moved) == (0, 0)
    assert len(server.contents(CONFIG.folder)) == 2
    assert len(server.contents(CONFIG.processed_folder)) == 2


def test_the_loop_picks_up_mail_that_arrives_while_it_waits(runtime: Runtime,
                                                            server: MemoryMailServer) -> None:
    server.append(CONFIG.folder, message(1))
    stop = threading.Event()
    loop = poller(runtime, server)
    thread = threading.Thread(target=loop.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: len(stored_digests(runtime)) == 1, message="the first message")
        server.append(CONFIG.folder, message(2))
        wait_for(lambda: len(stored_digests(runtime)) == 2, message="the one that arrived")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with runtime.db.session() as s:
        state = s.get(MailboxState, "default")
        assert state is not None and state.lease_owner is None  # released on the way out
