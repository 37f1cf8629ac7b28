"""The mail pool: parsing and the PII scan in worker processes, pipelined with the commits.

Against real Dovecot: a pooled pass stores every message exactly once across
batches and quarantines the ones that cannot be stored; a crash between a
commit and its move (batch n+1 already fetched and in the workers) loses and
duplicates nothing; a worker process that dies takes only its own message to
quarantine; the workers stop when the pool (the runtime) is closed. And the
workers prepare exactly what the storing process would have.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intake.db.mail_models import QuarantinedMessage
from intake.db.models import Entry, PiiFinding
from intake.mail.config import MailboxConfig
from intake.mail.imap import ImapMailbox
from intake.mail.poller import FETCH_BATCH_COUNT, POOL_MIN_MESSAGES, MailboxPoller
from intake.runtime import Runtime
from intake.services.mail_intake import (
    MailContext,
    MailPool,
    PreparedMail,
    ReceivedMail,
    prepare_mail,
)
from tests.mail.conftest import ImapServer, digest, message, start_dovecot, stored_digests

CRASH_MARKER = b"X-Test-Crash: the worker dies here"


def crash_on_marker(raw: bytes, context: MailContext) -> PreparedMail:
    """A pool task that kills its worker process on the marked message (as a segfault or
    the kernel's OOM killer would) and prepares the others as usual."""
    if CRASH_MARKER in raw:
        os._exit(3)
    return prepare_mail(raw, context)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[ImapServer]:
    yield from start_dovecot()


@pytest.fixture
def pool() -> Iterator[MailPool]:
    pool = MailPool(2)
    try:
        yield pool
    finally:
        pool.close()


def pooled_poller(runtime: Runtime, config: MailboxConfig, pool: MailPool,
                  **kwargs: Any) -> MailboxPoller:
    return MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                         open_mailbox=ImapMailbox.open, pool=pool, **kwargs)


def corpus(count: int) -> list[bytes]:
    """``count`` messages; one in ten with an attachment, one with PII in its body."""
    sent = [message(n, attachment_kb=20 if n % 10 == 0 else 0) for n in range(count)]
    sent[7] = message(7, subject="Paid twice",
                      body="My card is 4111 1111 1111 1111, please call me.\n")
    return sent


def assert_exactly_once(runtime: Runtime, imap: ImapServer, config: MailboxConfig,
                        sent: list[bytes]) -> None:
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in sent), \
        "each message stored (or quarantined) exactly once"
    assert imap.count(config.folder) == 0, "every message moved out of the folder"
    assert sorted(digest(m) for m in imap.contents(config.processed_folder)) == sorted(
        digest(m) for m in sent), "nothing removed from the server"


def test_a_pooled_pass_stores_each_message_once_and_quarantines_the_unstorable(
        runtime: Runtime, dovecot: ImapServer, pool: MailPool) -> None:
    count = FETCH_BATCH_COUNT + POOL_MIN_MESSAGES  # two batches, pipelined
    sent = corpus(count)
    sent[120] = b"\r\n\r\n"  # nothing of an e-mail: quarantined, the others stored
    config = dovecot.mailbox()
    dovecot.append(config.folder, *sent)
    report = pooled_poller(runtime, config, pool).poll_once()
    assert (report.stored, report.quarantined, report.moved) == (count - 1, 1, count)
    assert_exactly_once(runtime, dovecot, config, sent)
    with runtime.db.session() as s:
        quarantined = s.scalars(select(QuarantinedMessage)).one()
        assert quarantined.error_class == "UnstorableMessage"
        assert quarantined.sha256 == digest(sent[120])
        # The workers' PII scan is what was stored: the card number is a marker in the
        # entry's text and a finding beside it.
        card = s.scalars(select(Entry).where(Entry.subject == "Paid twice")).one()
        assert "4111" not in card.body
        assert s.scalar(select(func.count()).select_from(PiiFinding)
                        .where(PiiFinding.entry_id == card.id))


def test_a_crash_between_commit_and_move_loses_and_duplicates_nothing(
        runtime: Runtime, dovecot: ImapServer, pool: MailPool) -> None:
    count = FETCH_BATCH_COUNT + POOL_MIN_MESSAGES
    sent = corpus(count)
    config = dovecot.mailbox()
    folder = config.folder
    dovecot.append(folder, *sent)

    class Crash(Exception):
        """The poller dying after its commit, before the move."""

    def crash(uids: list[int]) -> None:
        raise Crash

    crashing = pooled_poller(runtime, config, pool, before_move=crash)
    with pytest.raises(Crash):
        crashing.poll_once()
    # The first batch was committed, the second (fetched, in the workers) was not, and
    # nothing was moved.
    assert len(stored_digests(runtime)) == FETCH_BATCH_COUNT
    assert dovecot.count(folder) == count
    report = pooled_poller(runtime, config, pool).poll_once()
    assert (report.stored, report.moved) == (count - FETCH_BATCH_COUNT, count)
    assert_exactly_once(runtime, dovecot, config, sent)


def test_a_worker_that_dies_quarantines_its_message_only(
        runtime: Runtime, dovecot: ImapServer) -> None:
    count = POOL_MIN_MESSAGES + 10
    sent = corpus(count)
    sent[30] = CRASH_MARKER + b"\r\n" + message(30)
    config = dovecot.mailbox()
    dovecot.append(config.folder, *sent)
    pool = MailPool(2, task=crash_on_marker)
    try:
        report = pooled_poller(runtime, config, pool).poll_once()
        assert (report.stored, report.quarantined, report.moved) == (count - 1, 1, count)
        assert_exactly_once(runtime, dovecot, config, sent)
        with runtime.db.session() as s:
            quarantined = s.scalars(select(QuarantinedMessage)).one()
            assert (quarantined.sha256, quarantined.error_class) == (
                digest(sent[30]), "WorkerDied")
        # The pool works on after the crash.
        prepared = pool.prepare([ReceivedMail(message(999))], context(runtime)).results()
        assert prepared[0].error is None and prepared[0].entry is not None
    finally:
        pool.close()


def context(runtime: Runtime) -> MailContext:
    return MailContext.from_settings(runtime.settings, "default", pii_key=runtime.pii_key)


def test_closing_the_runtime_stops_the_workers(runtime: Runtime) -> None:
    pool = runtime.mail_pool
    assert pool is not None, "a pool by default (INTAKE_MAIL_WORKERS: the number of CPUs)"
    before = set(multiprocessing.active_children())
    prepared = pool.prepare([ReceivedMail(message(n)) for n in range(4)],
                            context(runtime)).results()
    assert [p.error for p in prepared] == [None] * 4
    workers = set(multiprocessing.active_children()) - before
    assert workers, "the pool runs worker processes"
    runtime.close()
    assert not any(w.is_alive() for w in workers)
    with pytest.raises(RuntimeError):
        pool.prepare([ReceivedMail(message(1))], context(runtime))


def _cpython_corpus() -> list[Path]:
    import test  # CPython's own test package, with its e-mail test data

    return sorted((Path(test.__file__).parent / "test_email" / "data").glob("msg_*.txt"))


def comparable(prepared: PreparedMail) -> Any:
    """A prepared message as compared here: an error by its class."""
    return dataclasses.replace(prepared, error=None), type(prepared.error).__name__


def test_the_workers_prepare_what_the_storing_process_would(runtime: Runtime,
                                                            pool: MailPool) -> None:
    raws = [path.read_bytes() for path in _cpython_corpus()]
    if not raws:
        pytest.skip("this Python has no test/test_email/data (python3-test not installed)")
    raws += [message(1, body="Call me on 555-0100 or mail jane@example.org.\n"),
             message(2, attachment_kb=40), b"\r\n\r\n"]
    ctx = context(runtime)
    in_workers = pool.prepare([ReceivedMail(raw) for raw in raws], ctx).results()
    here = [prepare_mail(raw, ctx) for raw in raws]
    assert [comparable(p) for p in in_workers] == [comparable(p) for p in here]
