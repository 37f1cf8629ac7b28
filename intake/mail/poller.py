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

A dropped connection at any point loses nothing: what was committed is
moved on the next pass, what was not is fetched again. ``intake poll`` and
the pollers embedded in ``intake serve`` run this same code; between passes
a poller waits in IDLE where the server offers it.
"""

from __future__ import annotations

import atexit
import imaplib
import logging
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.db import Database
from intake.db.mail_models import MailboxState
from intake.db.models import utcnow
from intake.logsafe import describe
from intake.mail.config import MailboxConfig, load_mailboxes
from intake.services.mail_intake import (
    DUPLICATE,
    QUARANTINED,
    STORED,
    THREAD_REPLY,
    TRANSIENT_ERRORS,
    MailContext,
    MailOutcome,
    ReceivedMail,
    store_messages,
)
from intake.settings import Settings

log = logging.getLogger("intake.mail")

# Failures of the IMAP connection: back off and reconnect; never skip a message.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, ssl.SSLError, EOFError,
)
FETCH_BATCH_BYTES = 8 * 1024 * 1024
FETCH_BATCH_COUNT = 100
CONNECT_TIMEOUT = 30.0


class LeaseLost(Exception):
    """Another poller holds this mailbox now; stop before committing anything more."""


class PollFailed(Exception):
    """A pass could not finish after its retries; the message names the error class."""


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


# -- the lease and the state row ------------------------------------------------------------


def acquire_lease(db: Database, name: str, owner: str, seconds: float) -> bool:
    """Take or renew the mailbox's lease with one atomic UPDATE; False if someone else has it."""
    with db.session() as session:
        if session.get(MailboxState, name) is None:
            try:
                with session.begin_nested():
                    session.add(MailboxState(name=name, last_uid=0, messages_stored=0,
                                             messages_quarantined=0, updated_at=utcnow()))
            except IntegrityError:
                pass  # created concurrently
        now = utcnow()
        taken = session.execute(
            update(MailboxState)
            .where(MailboxState.name == name,
                   or_(MailboxState.lease_owner.is_(None), MailboxState.lease_owner == owner,
                       MailboxState.lease_expires_at < now))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=seconds),
                    updated_at=now)
            .returning(MailboxState.name)
        ).first()
        return taken is not None


def release_lease(db: Database, name: str, owner: str) -> None:
    with db.session() as session:
        session.execute(
            update(MailboxState)
            .where(MailboxState.name == name, MailboxState.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None, updated_at=utcnow())
        )


def _record_error(db: Database, name: str, message: str | None) -> None:
    try:
        with db.session() as session:
            session.execute(update(MailboxState).where(MailboxState.name == name)
                            .values(last_error=message, last_poll_at=utcnow(),
                                    updated_at=utcnow()))
    except TRANSIENT_ERRORS:
        pass  # the database is down too; the log line is all we can do


# -- the poller ---------------------------------------------------------------------------


class MailboxPoller:
    """Polls one mailbox. Thread-safe to run one per mailbox; many processes may race."""

    def __init__(
        self, db: Database, settings: Settings, config: MailboxConfig, *,
        pii_key: bytes | None, agency_addresses: Callable[[], Iterable[str]] = tuple,
        owner: str | None = None, lease_seconds: float | None = None,
        batch_bytes: int = FETCH_BATCH_BYTES,
        before_move: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.config = config
        self.pii_key = pii_key
        self.agency_addresses = agency_addresses
        self.owner = owner or default_owner()
        self.lease_seconds = lease_seconds or max(60.0, 3 * config.poll_interval)
        self.batch_bytes = batch_bytes
        # Called after a batch is committed and before it is moved (tests use it
        # to stop a poller exactly there, as a crash would).
        self.before_move = before_move

    # connection -------------------------------------------------------------------------

    def connect(self) -> IMAPClient:
        c = self.config
        client = IMAPClient(c.host, port=c.port, ssl=c.security == "tls",
                            timeout=CONNECT_TIMEOUT)
        try:
            if c.security == "starttls":
                client.starttls(ssl.create_default_context())
            client.login(c.user, c.password)
        except BaseException:
            _close(client)
            raise
        return client

    # one pass ------------------------------------------------------------------------

    def poll_once(self, retries: int = 3, release: bool = True,
                  backoff: float = 0.5) -> PassReport:
        """Drain the mailbox once; reconnect and resume after connection errors."""
        total = PassReport(self.config.name)
        try:
            for attempt in range(retries + 1):
                client: IMAPClient | None = None
                try:
                    client = self.connect()
                    self.run_pass(client, total)  # progress counts even if a retry follows
                    return total
                except LeaseLost:
                    total.skipped_lease = True
                    return total
                except (*CONNECTION_ERRORS, *TRANSIENT_ERRORS) as exc:
                    note = f"{type(exc).__name__} (attempt {attempt + 1})"
                    total.errors.append(note)
                    log.warning("mailbox %s: %s", self.config.name, note)
                    _record_error(self.db, self.config.name, type(exc).__name__)
                    if attempt == retries:
                        raise PollFailed(f"mailbox {self.config.name}: {type(exc).__name__} "
                                         f"after {retries + 1} attempts") from exc
                    time.sleep(backoff * (2 ** attempt))
                finally:
                    if client is not None:
                        _close(client)
            return total  # pragma: no cover - the loop returns or raises
        finally:
            if release:
                try:
                    release_lease(self.db, self.config.name, self.owner)
                except TRANSIENT_ERRORS:
                    pass

    def run_pass(self, client: IMAPClient, report: PassReport | None = None) -> PassReport:
        """One pass over the folder on an open connection (see the module notes)."""
        c = self.config
        report = report if report is not None else PassReport(c.name)
        if not acquire_lease(self.db, c.name, self.owner, self.lease_seconds):
            report.skipped_lease = True
            return report
        if not client.folder_exists(c.processed_folder):
            try:
                client.create_folder(c.processed_folder)
            except imaplib.IMAP4.error:
                if not client.folder_exists(c.processed_folder):  # not a creation race
                    raise
        selected = client.select_folder(c.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._sync_uidvalidity(uidvalidity, report)
        use_move = client.has_capability("MOVE")
        keywords = b"\\*" in tuple(selected.get(b"PERMANENTFLAGS", ()))
        criteria: list[Any] = ["NOT", "DELETED"]
        if not use_move and keywords:
            criteria += ["NOT", "KEYWORD", c.done_keyword]
        uids = sorted(int(u) for u in client.search(criteria))
        committed = [u for u in uids if u <= last_uid]
        # An earlier pass committed these but stopped before moving them. Without
        # MOVE and without keywords nothing marks a copy as done, so committed
        # messages stay where they are rather than being copied again each pass.
        if committed and (use_move or keywords):
            report.moved += self._move(client, committed, use_move)
        todo = [u for u in uids if u > last_uid]
        context = MailContext.from_settings(
            self.settings, c.name, pii_key=self.pii_key,
            agency_addresses=tuple(self.agency_addresses()), form=c.form,
            agency_hint=c.agency)
        for batch in self._batches(client, todo):
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            raws: list[tuple[int, bytes]] = []
            for uid in batch:
                item = fetched.pop(uid, None)
                raw = item.get(b"BODY[]") if item else None
                if raw is None:
                    # Expunged by someone else between SEARCH and FETCH: not ours to lose.
                    log.warning("mailbox %s: UID %s vanished before fetch", c.name, uid)
                    continue
                raws.append((uid, raw if isinstance(raw, bytes) else bytes(raw)))
            del fetched
            for outcome in self._commit(raws, context, uidvalidity):
                report.add(outcome)
            done = [uid for uid, _ in raws]
            del raws
            if done:
                if self.before_move is not None:
                    self.before_move(done)
                report.moved += self._move(client, done, use_move)
        with self.db.session() as session:
            session.execute(update(MailboxState).where(MailboxState.name == c.name)
                            .values(last_poll_at=utcnow(), last_error=None, updated_at=utcnow()))
        if report.stored or report.replies or report.quarantined:
            log.info("mailbox %s", report.summary())  # the summary begins with the name
        return report

    def _sync_uidvalidity(self, uidvalidity: int, report: PassReport) -> int:
        with self.db.session() as session:
            state = session.get(MailboxState, self.config.name, with_for_update=True)
            if state is None or state.lease_owner != self.owner:
                raise LeaseLost(self.config.name)
            if state.uidvalidity != uidvalidity:
                if state.uidvalidity is not None:
                    report.uidvalidity_reset = True
                    log.warning("mailbox %s: UIDVALIDITY changed; re-scanning the folder",
                                self.config.name)
                state.uidvalidity = uidvalidity
                state.last_uid = 0
                state.updated_at = utcnow()
            return state.last_uid

    def _commit(self, raws: list[tuple[int, bytes]], context: MailContext,
                uidvalidity: int) -> list[MailOutcome]:
        """Store a fetched batch and advance "last UID done" in the same transaction
        (:func:`intake.services.mail_intake.store_messages`)."""
        def advance(session: Session, done: Sequence[tuple[ReceivedMail, MailOutcome]]) -> None:
            self._advance(session, int(done[-1][0].uid or 0), uidvalidity,
                          [outcome for _, outcome in done])

        return store_messages(self.db, [ReceivedMail(raw, uid=uid, uidvalidity=uidvalidity)
                                        for uid, raw in raws], context, also=advance)

    def _advance(self, session: Session, uid: int, uidvalidity: int,
                 outcomes: list[MailOutcome]) -> None:
        """In the messages' own transaction: advance "last UID done", if the lease is ours."""
        now = utcnow()
        stored = sum(o.outcome in (STORED, THREAD_REPLY) for o in outcomes)
        quarantined = sum(o.outcome == QUARANTINED for o in outcomes)
        values: dict[str, Any] = {
            "last_uid": uid, "updated_at": now, "last_poll_at": now,
            "lease_expires_at": now + timedelta(seconds=self.lease_seconds),
            "messages_stored": MailboxState.messages_stored + stored,
            "messages_quarantined": MailboxState.messages_quarantined + quarantined,
        }
        updated = session.execute(
            update(MailboxState)
            .where(MailboxState.name == self.config.name,
                   MailboxState.lease_owner == self.owner,
                   MailboxState.uidvalidity == uidvalidity)
            .values(**values)
            .returning(MailboxState.name)
        ).first()
        if updated is None:
            raise LeaseLost(self.config.name)

    def _batches(self, client: IMAPClient, uids: list[int]) -> Iterable[list[int]]:
        """UIDs in ascending order, grouped so one fetch holds at most ``batch_bytes``."""
        for start in range(0, len(uids), 500):
            chunk = uids[start:start + 500]
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            batch: list[int] = []
            batch_size = 0
            for uid in chunk:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (batch_size + size > self.batch_bytes
                              or len(batch) >= FETCH_BATCH_COUNT):
                    yield batch
                    batch, batch_size = [], 0
                batch.append(uid)
                batch_size += size
            if batch:
                yield batch

    def _move(self, client: IMAPClient, uids: list[int], use_move: bool) -> int:
        target = self.config.processed_folder
        if use_move:
            client.move(uids, target)
        else:
            # No MOVE: copy, then mark with our keyword so the next SEARCH skips
            # them. Never \Deleted, never EXPUNGE.
            client.copy(uids, target)
            client.add_flags(uids, [self.config.done_keyword.encode(), b"\\Seen"])
        return len(uids)

    # the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set: passes, IDLE (or a sleep) between them, backoff."""
        client: IMAPClient | None = None
        delay = 1.0
        try:
            while not stop.is_set():
                try:
                    if client is None:
                        client = self.connect()
                    report = self.run_pass(client)
                    delay = 1.0
                    if report.skipped_lease:
                        stop.wait(self.config.poll_interval)
                        continue
                    self._wait_for_mail(client, stop)
                except LeaseLost:
                    stop.wait(self.config.poll_interval)
                except (*CONNECTION_ERRORS, *TRANSIENT_ERRORS) as exc:
                    log.warning("mailbox %s: %s; retrying in %.0f s", self.config.name,
                                type(exc).__name__, delay)
                    _record_error(self.db, self.config.name, type(exc).__name__)
                    if client is not None:
                        _close(client)
                        client = None
                    stop.wait(delay)
                    delay = min(delay * 2, 300.0)
                except Exception as exc:  # noqa: BLE001 - a poller thread must not die
                    # Class and location only: the message may quote mail or SQL values.
                    log.error("mailbox %s: unexpected %s", self.config.name, describe(exc))
                    _record_error(self.db, self.config.name, type(exc).__name__)
                    if client is not None:
                        _close(client)
                        client = None
                    stop.wait(delay)
                    delay = min(delay * 2, 300.0)
        finally:
            if client is not None:
                _close(client)
            try:
                release_lease(self.db, self.config.name, self.owner)
            except TRANSIENT_ERRORS:
                pass

    def _wait_for_mail(self, client: IMAPClient, stop: threading.Event) -> None:
        """IDLE until new mail, the poll interval, or a third of the lease; else sleep."""
        timeout = min(self.config.poll_interval, self.lease_seconds / 3)
        if not client.has_capability("IDLE"):
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        client.idle()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                responses = client.idle_check(timeout=1)
                if any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")
                       for r in responses):
                    break
        finally:
            client.idle_done()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - closing a broken connection
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001, S110
            pass


# -- wiring for `intake poll` and `intake serve` ------------------------------------------


def pollers_for(runtime: Any, *, owner: str | None = None) -> list[MailboxPoller]:
    """One poller per configured mailbox of a :class:`~intake.runtime.Runtime`."""

    def agency_addresses() -> list[str]:
        try:
            agencies = runtime.rules.current().agencies
        except Exception:  # noqa: BLE001 - no rules loaded: nobody counts as an agency
            return []
        return [a.email for a in agencies.values() if a.email]

    return [MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                          agency_addresses=agency_addresses, owner=owner)
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
    with ``atexit`` so ``intake serve`` stops them on any shutdown.
    """
    from intake.mail.config import MailboxConfigError

    if not (runtime.settings.imap_url or runtime.settings.mailboxes_file):
        return None
    try:
        pollers = pollers_for(runtime)
    except MailboxConfigError as exc:
        from intake.cli.common import fail

        fail(str(exc), 2)
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
    "LeaseLost", "MailboxPoller", "PassReport", "PollFailed", "PollerThreads",
    "acquire_lease", "pollers_for", "release_lease", "start_embedded_pollers",
    "stop_embedded_pollers",
]
