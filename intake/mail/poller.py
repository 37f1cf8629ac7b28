"""IMAP polling that never loses, never duplicates and survives any message.

Per mailbox, per pass:

1. take the mailbox's **lease** in the database (one poller per mailbox
   across processes and hosts; it expires, so a dead poller is replaced);
2. SELECT the folder; if its UIDVALIDITY differs from the stored one, forget
   the "last UID done" and re-scan (the raw-bytes idempotency key makes the
   re-scan store nothing twice);
3. messages still in the folder with a UID at or below "last UID done" were
   committed by an earlier pass that stopped before moving them: move them;
4. fetch the others with ``BODY.PEEK[]`` (never marks them read), in batches
   bounded by size, and for each one commit the entry (or the thread reply,
   or the quarantine row) **together with** "last UID done" = its UID, in one
   transaction that also checks the lease is still ours;
5. only then MOVE the batch to the processed folder (created if missing;
   where MOVE is missing, COPY + a keyword). Nothing is ever deleted.

With a mail pool (``intake/services/mail_prepare.py``: ``MailPool``) and at least
``POOL_MIN_MESSAGES`` new messages, batch n+1 is fetched and parsed in the pool's
worker processes while batch n is committed; batch n is still moved only after its
own commit, and batch n+1 committed only after that move.

A dropped connection at any point loses nothing: what was committed is
moved on the next pass, what was not is fetched again. ``intake poll`` and
the pollers embedded in ``intake serve`` run this same code; between passes
a poller waits in IDLE where the server offers it.

The poller drives a :class:`~intake.mail.mailbox.Mailbox` it opens with the
factory it was given (the real IMAP one, or an in-memory one in tests) and
keeps its state through :mod:`intake.services.mailboxes`.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from intake.logsafe import describe
from intake.mail.check import plain_error
from intake.mail.config import MailboxConfig, load_mailboxes
from intake.mail.imap import ImapMailbox
from intake.mail.mailbox import CONNECTION_ERRORS, Mailbox, OpenMailbox
from intake.services import mailboxes
from intake.services.mail_intake import (
    DUPLICATE,
    QUARANTINED,
    STORED,
    THREAD_REPLY,
    TRANSIENT_ERRORS,
    MailContext,
    MailOutcome,
    MailPool,
    PreparedBatch,
    ReceivedMail,
    store_messages,
)
from intake.services.mailboxes import Database, LeaseLost
from intake.settings import Settings

log = logging.getLogger("intake.mail")

FETCH_BATCH_BYTES = 8 * 1024 * 1024
FETCH_BATCH_COUNT = 100
# A pass with fewer new messages parses them itself: starting the mail pool's workers
# costs more than it saves on a few.
POOL_MIN_MESSAGES = 50


class PollFailed(Exception):
    """A pass could not finish after its retries; the message is the error in one plain
    line (the token endpoint's refusal, the server's text, or the error class), no secret."""


@dataclass
class PassReport:
    mailbox: str
    stored: int = 0
    duplicates: int = 0
    replies: int = 0
    quarantined: int = 0
    moved: int = 0
    skipped_lease: bool = False
    uidvalidity_reset: bool = False
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: MailOutcome) -> None:
        if outcome.outcome == STORED:
            self.stored += 1
        elif outcome.outcome == DUPLICATE:
            self.duplicates += 1
        elif outcome.outcome == THREAD_REPLY:
            self.replies += 1
        elif outcome.outcome == QUARANTINED:
            self.quarantined += 1

    def merge(self, other: PassReport) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.replies += other.replies
        self.quarantined += other.quarantined
        self.moved += other.moved
        self.skipped_lease = self.skipped_lease or other.skipped_lease
        self.uidvalidity_reset = self.uidvalidity_reset or other.uidvalidity_reset
        self.errors.extend(other.errors)

    def summary(self) -> str:
        if self.skipped_lease:
            return f"{self.mailbox}: another poller holds the lease; skipped"
        return (f"{self.mailbox}: {self.stored} stored, {self.replies} thread replies, "
                f"{self.duplicates} duplicates, {self.quarantined} quarantined, "
                f"{self.moved} moved" + (" (UIDVALIDITY changed; re-scanned)"
                                         if self.uidvalidity_reset else ""))


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# -- the poller ---------------------------------------------------------------------------


class MailboxPoller:
    """Polls one mailbox. Thread-safe to run one per mailbox; many processes may race.

    ``open_mailbox`` connects to the mailbox (:class:`ImapMailbox.open` for a
    real server, :meth:`MemoryMailServer.open <intake.mail.memory.MemoryMailServer.open>`
    in tests).
    """

    def __init__(
        self, db: Database, settings: Settings, config: MailboxConfig, *,
        pii_key: bytes | None, open_mailbox: OpenMailbox,
        agency_addresses: Callable[[], Iterable[str]] = tuple,
        owner: str | None = None, lease_seconds: float | None = None,
        batch_bytes: int = FETCH_BATCH_BYTES,
        before_move: Callable[[list[int]], None] | None = None,
        pool: MailPool | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.config = config
        self.pii_key = pii_key
        self.open_mailbox = open_mailbox
        self.agency_addresses = agency_addresses
        self.owner = owner or default_owner()
        self.lease_seconds = lease_seconds or max(60.0, 3 * config.poll_interval)
        self.batch_bytes = batch_bytes
        # Called after a batch is committed and before it is moved (tests use it
        # to stop a poller exactly there, as a crash would).
        self.before_move = before_move
        # Parses and scans a fetched batch in worker processes while the batch before is
        # committed; without one, the pass does it itself.
        self.pool = pool

    def connect(self) -> Mailbox:
        return self.open_mailbox(self.config)

    # one pass ------------------------------------------------------------------------

    def poll_once(self, retries: int = 3, release: bool = True,
                  backoff: float = 0.5) -> PassReport:
        """Drain the mailbox once; reconnect and resume after connection errors."""
        total = PassReport(self.config.name)
        try:
            for attempt in range(retries + 1):
                mailbox: Mailbox | None = None
                try:
                    mailbox = self.connect()
                    self.run_pass(mailbox, total)  # progress counts even if a retry follows
                    return total
                except LeaseLost:
                    total.skipped_lease = True
                    return total
                except (*CONNECTION_ERRORS, *TRANSIENT_ERRORS) as exc:
                    note = f"{type(exc).__name__} (attempt {attempt + 1})"
                    total.errors.append(note)
                    log.warning("mailbox %s: %s", self.config.name, note)
                    mailboxes.record_error(self.db, self.config.name, type(exc).__name__)
                    # A token endpoint that refused the client will refuse it again.
                    refused = bool(getattr(exc, "refused", False))
                    if attempt == retries or refused:
                        tries = "" if refused else f" after {retries + 1} attempts"
                        raise PollFailed(f"mailbox {self.config.name}: "
                                         f"{plain_error(exc, self.config)}{tries}") from exc
                    time.sleep(backoff * (2 ** attempt))
                finally:
                    if mailbox is not None:
                        mailbox.close()
            return total  # pragma: no cover - the loop returns or raises
        finally:
            if release:
                self._release()

    def run_pass(self, mailbox: Mailbox, report: PassReport | None = None) -> PassReport:
        """One pass over the folder on an open connection (see the module notes)."""
        c = self.config
        report = report if report is not None else PassReport(c.name)
        if not mailboxes.acquire_lease(self.db, c.name, self.owner, self.lease_seconds):
            report.skipped_lease = True
            return report
        mailbox.ensure_folder(c.processed_folder)
        selected = mailbox.select(c.folder)
        last_uid, reset = mailboxes.sync_uidvalidity(self.db, c.name, self.owner,
                                                     selected.uidvalidity)
        if reset:
            report.uidvalidity_reset = True
            log.warning("mailbox %s: UIDVALIDITY changed; re-scanning the folder", c.name)
        use_move = mailbox.can_move
        uids = mailbox.search_unprocessed(
            c.done_keyword if not use_move and selected.keywords else None)
        committed = [u for u in uids if u <= last_uid]
        # An earlier pass committed these but stopped before moving them. Without
        # MOVE and without keywords nothing marks a copy as done, so committed
        # messages stay where they are rather than being copied again each pass.
        if committed and (use_move or selected.keywords):
            report.moved += self._move(mailbox, committed, use_move)
        self._store_new(mailbox, [u for u in uids if u > last_uid], selected.uidvalidity,
                        use_move, report)
        mailboxes.record_pass(self.db, c.name)
        if report.stored or report.replies or report.quarantined:
            log.info("mailbox %s", report.summary())  # the summary begins with the name
        return report

    def _store_new(self, mailbox: Mailbox, todo: list[int], uidvalidity: int, use_move: bool,
                   report: PassReport) -> None:
        """Fetch, commit, then move the new messages, batch by batch.

        With a pool (and at least ``POOL_MIN_MESSAGES`` new messages), pipelined: batch
        n+1 is fetched and handed to the workers before batch n is committed, so that the
        workers parse and scan the one while this thread commits the other. A batch is
        moved only after its own commit."""
        c = self.config
        context = MailContext.from_settings(
            self.settings, c.name, pii_key=self.pii_key,
            agency_addresses=tuple(self.agency_addresses()), form=c.form,
            agency_hint=c.agency, automatic=c.automatic())
        pool = self.pool if len(todo) >= POOL_MIN_MESSAGES else None
        if pool is not None:
            pool.warm_up()  # while the first batch is fetched
        waiting: tuple[list[ReceivedMail], PreparedBatch | None] | None = None
        for batch in self._batches(mailbox, todo):
            fetched = mailbox.fetch(batch)
            mails: list[ReceivedMail] = []
            for uid in batch:
                raw = fetched.pop(uid, None)
                if raw is None:
                    # Expunged by someone else between SEARCH and FETCH: not ours to lose.
                    log.warning("mailbox %s: UID %s vanished before fetch", c.name, uid)
                    continue
                mails.append(ReceivedMail(raw, uid=uid, uidvalidity=uidvalidity))
            del fetched
            prepared = pool.prepare(mails, context) if pool is not None and mails else None
            if waiting is not None:
                self._commit_and_move(mailbox, *waiting, context, uidvalidity, use_move,
                                      report)
            waiting = (mails, prepared)
        if waiting is not None:
            self._commit_and_move(mailbox, *waiting, context, uidvalidity, use_move, report)

    def _commit_and_move(self, mailbox: Mailbox, mails: list[ReceivedMail],
                         prepared: PreparedBatch | None, context: MailContext,
                         uidvalidity: int, use_move: bool, report: PassReport) -> None:
        for outcome in self._commit(mails, context, uidvalidity, prepared):
            report.add(outcome)
        done = [int(m.uid or 0) for m in mails]
        mails.clear()
        if done:
            if self.before_move is not None:
                self.before_move(done)
            report.moved += self._move(mailbox, done, use_move)

    def _commit(self, mails: list[ReceivedMail], context: MailContext, uidvalidity: int,
                prepared: PreparedBatch | None = None) -> list[MailOutcome]:
        """Store a fetched batch and advance "last UID done" in the same transaction
        (:func:`intake.services.mail_intake.store_messages`)."""
        def advance(session: Session, done: Sequence[tuple[ReceivedMail, MailOutcome]]) -> None:
            self._advance(session, int(done[-1][0].uid or 0), uidvalidity,
                          [outcome for _, outcome in done])

        return store_messages(self.db, mails, context, also=advance, prepared=prepared)

    def _advance(self, session: Session, uid: int, uidvalidity: int,
                 outcomes: list[MailOutcome]) -> None:
        """In the messages' own transaction: advance "last UID done", if the lease is ours."""
        mailboxes.advance(
            session, self.config.name, self.owner, uid=uid, uidvalidity=uidvalidity,
            stored=sum(o.outcome in (STORED, THREAD_REPLY) for o in outcomes),
            quarantined=sum(o.outcome == QUARANTINED for o in outcomes),
            lease_seconds=self.lease_seconds)

    def _batches(self, mailbox: Mailbox, uids: list[int]) -> Iterable[list[int]]:
        """UIDs in ascending order, grouped so one fetch holds at most ``batch_bytes``."""
        for start in range(0, len(uids), 500):
            chunk = uids[start:start + 500]
            sizes = mailbox.sizes(chunk)
            batch: list[int] = []
            batch_size = 0
            for uid in chunk:
                size = sizes.get(uid, 0)
                if batch and (batch_size + size > self.batch_bytes
                              or len(batch) >= FETCH_BATCH_COUNT):
                    yield batch
                    batch, batch_size = [], 0
                batch.append(uid)
                batch_size += size
            if batch:
                yield batch

    def _move(self, mailbox: Mailbox, uids: list[int], use_move: bool) -> int:
        """Move the messages to the processed folder; where MOVE is missing, copy them and
        flag the originals with our keyword so the next SEARCH skips them. Never a delete."""
        if use_move:
            mailbox.move(uids, self.config.processed_folder)
        else:
            mailbox.copy_and_flag(uids, self.config.processed_folder, self.config.done_keyword)
        return len(uids)

    def _release(self) -> None:
        try:
            mailboxes.release_lease(self.db, self.config.name, self.owner)
        except TRANSIENT_ERRORS:
            pass

    # the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set: passes, IDLE (or a sleep) between them, backoff."""
        mailbox: Mailbox | None = None
        delay = 1.0
        try:
            while not stop.is_set():
                try:
                    if mailbox is None:
                        mailbox = self.connect()
                    report = self.run_pass(mailbox)
                    delay = 1.0
                    if report.skipped_lease:
                        stop.wait(self.config.poll_interval)
                        continue
                    # Until new mail, the poll interval, or a third of the lease.
                    mailbox.wait_for_mail(min(self.config.poll_interval, self.lease_seconds / 3),
                                          stop)
                except LeaseLost:
                    stop.wait(self.config.poll_interval)
                except Exception as exc:  # noqa: BLE001 - a poller thread must not die
                    if isinstance(exc, (*CONNECTION_ERRORS, *TRANSIENT_ERRORS)):
                        log.warning("mailbox %s: %s; retrying in %.0f s", self.config.name,
                                    type(exc).__name__, delay)
                    else:
                        # Class and location only: the message may quote mail or SQL values.
                        log.error("mailbox %s: unexpected %s", self.config.name, describe(exc))
                    mailboxes.record_error(self.db, self.config.name, type(exc).__name__)
                    if mailbox is not None:
                        mailbox.close()
                        mailbox = None
                    stop.wait(delay)
                    delay = min(delay * 2, 300.0)
        finally:
            if mailbox is not None:
                mailbox.close()
            self._release()


# -- wiring for `intake poll` and `intake serve` ------------------------------------------


def pollers_for(runtime: Any, *, owner: str | None = None,
                open_mailbox: OpenMailbox = ImapMailbox.open) -> list[MailboxPoller]:
    """One poller per configured mailbox of a :class:`~intake.runtime.Runtime`."""

    def agency_addresses() -> list[str]:
        try:
            agencies = runtime.rules.current().agencies
        except Exception:  # noqa: BLE001 - no rules loaded: nobody counts as an agency
            return []
        return [a.email for a in agencies.values() if a.email]

    return [MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                          open_mailbox=open_mailbox, agency_addresses=agency_addresses,
                          owner=owner, pool=getattr(runtime, "mail_pool", None))
            for config in load_mailboxes(runtime.settings)]


class PollerThreads:
    """Background poller threads, stopped together."""

    def __init__(self, pollers: list[MailboxPoller]) -> None:
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=p.run, args=(self.stop_event,),
                                         name=f"intake-poller-{p.config.name}", daemon=True)
                        for p in pollers]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=timeout)


_embedded: list[PollerThreads] = []


def start_embedded_pollers(runtime: Any) -> PollerThreads | None:
    """Start the configured mailboxes' pollers in threads (``intake serve``); None if none.

    They stop when :func:`stop_embedded_pollers` runs, which is registered
    with ``atexit`` so ``intake serve`` stops them on any shutdown. A mailbox
    description that cannot work raises
    :class:`~intake.mail.config.MailboxConfigError` (one line for the operator)
    before any poller starts.
    """
    if not (runtime.settings.imap_url or runtime.settings.mailboxes_file):
        return None
    pollers = pollers_for(runtime)
    group = PollerThreads(pollers)
    group.start()
    if not _embedded:
        atexit.register(stop_embedded_pollers)
    _embedded.append(group)
    log.info("started %d mailbox poller(s)", len(group.threads))
    return group


def stop_embedded_pollers() -> None:
    while _embedded:
        _embedded.pop().stop()


__all__ = [
    "MailboxPoller", "PassReport", "PollFailed", "PollerThreads", "pollers_for",
    "start_embedded_pollers", "stop_embedded_pollers",
]
