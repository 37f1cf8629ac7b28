"""The pure part of storing an e-mail, and the worker processes that run it.

:func:`prepare_mail` parses a message, classifies it (automatic mail, web-form
relays) and scans it for PII as :func:`intake.services.mail_intake.store_message`
would store it as a new entry: everything of storing it that needs no database.
:class:`MailPool` runs it in worker processes for a whole fetched batch, on every
core, while the storing process commits the batch before; ``store_messages`` then
takes the results (``prepared=``). One way to store stays: this module computes,
``store_messages`` stores.

The workers import this module and nothing that imports the database (they start
from a fork server that has imported it once), and get no key but the PII key.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import pickle
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from intake.core.language import written_language
from intake.core.mail import Address, ParsedMessage, parse_message
from intake.core.mail.automatic import (
    BOUNCE,
    AutoConfig,
    Verdict,
    classify,
    from_relay,
    header_map,
    relay_person,
)
from intake.services.submissions import (
    NewAttachment,
    NewSubmission,
    ScannedSubmission,
    SubmitterData,
    scan_submission,
)

if TYPE_CHECKING:
    from intake.settings import Settings

log = logging.getLogger("intake.mail")


# Text attachments up to this size are searched for PII too.
_PII_ATTACHMENT_LIMIT = 1_000_000


class UnstorableMessage(Exception):
    """The message cannot become an entry (empty, or the parser gave up)."""


@dataclass(frozen=True)
class MailContext:
    """What the service needs to know besides the bytes."""

    mailbox: str
    record_prefix: str
    relay_domain: str
    pii_key: bytes | None = None
    agency_addresses: Collection[str] = ()
    form: str | None = None
    agency_hint: str | None = None
    # The key-encryption key of the entries' data keys (see :mod:`intake.core.sealing`).
    originals_key: bytes = field(kw_only=True, repr=False)
    # Web-form relay senders and spam headers of the mailbox (intake.mail.config).
    automatic: AutoConfig = field(default_factory=AutoConfig, kw_only=True)
    # The key of undeliverable addresses' hashes (services.automail.KEY_PURPOSE).
    undeliverable_key: bytes | None = field(default=None, kw_only=True, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, mailbox: str, *, pii_key: bytes | None,
                      agency_addresses: Collection[str] = (), form: str | None = None,
                      agency_hint: str | None = None,
                      automatic: AutoConfig | None = None) -> MailContext:
        from intake.services import automail  # the database's side: not for the workers

        return cls(mailbox=mailbox, record_prefix=settings.record_prefix,
                   relay_domain=settings.relay_domain, pii_key=pii_key,
                   agency_addresses=tuple(agency_addresses), form=form,
                   agency_hint=agency_hint, originals_key=settings.originals_key(),
                   automatic=automatic or AutoConfig(),
                   undeliverable_key=settings.derived_key(automail.KEY_PURPOSE))


@dataclass(frozen=True)
class ReceivedMail:
    """A message's raw bytes as received, and where from (an IMAP UID, if polled)."""

    raw: bytes
    uid: int | None = None
    uidvalidity: int | None = None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def _attachments(parsed: ParsedMessage) -> tuple[NewAttachment, ...]:
    """The message's attachments as the record store takes them. Over the size cap the
    parser drops the content (``None`` here): the raw message keeps it."""
    return tuple(NewAttachment(
        filename=att.filename, declared_type=att.declared_type, sniffed_type=att.sniffed_type,
        content=att.content if (att.content or att.size == 0) else None, size=att.size,
        sha256=att.sha256, inline=att.inline, content_id=att.content_id)
        for att in parsed.attachments)


def _attachment_texts(parsed: ParsedMessage, prefix: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for att in parsed.attachments:
        if att.sniffed_type.startswith("text/") and 0 < len(att.content) <= _PII_ATTACHMENT_LIMIT:
            texts[f"{prefix}attachment:{att.filename}"[:64]] = att.content.decode(
                "utf-8", "replace").replace("\x00", "")
    return texts


def _check_storable(parsed: ParsedMessage) -> None:
    failure = next((d for d in parsed.defects if d.startswith("parser failure")), None)
    if failure is not None:
        raise UnstorableMessage(failure)
    if not (parsed.from_ or parsed.subject or parsed.text.strip() or parsed.attachments
            or parsed.message_id):
        raise UnstorableMessage("no headers, text or attachments: not an e-mail message")


@dataclass(frozen=True)
class PreparedMail:
    """What storing a message needs that is pure (no database): :func:`prepare_mail`."""

    digest: str  # SHA-256 of the raw bytes
    parsed: ParsedMessage | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)  # header_map's
    verdict: Verdict | None = None  # automatic mail's classification
    person: Address | None = None  # the person behind a web-form relay
    # The message as a new entry (without a related record), scanned for PII.
    entry: ScannedSubmission | None = None
    auto_submitted: str | None = None
    # Why it cannot be stored: raised in the transaction, which quarantines the message.
    error: BaseException | None = None


def prepare_mail(raw: bytes, context: MailContext) -> PreparedMail:
    """Parse, classify and scan ``raw`` as :func:`store_message` stores it, with no
    database: what a process pool may run (:class:`MailPool`). A failure is returned
    (``error``), for the transaction to quarantine the message."""
    raw = bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        parsed = parse_message(raw, record_tag_prefix=context.record_prefix)
        _check_storable(parsed)
        headers = header_map(raw, context.automatic.header_names())
        verdict = classify(parsed, headers, context.automatic)
        person = relay_person(parsed, context.automatic) if verdict is None else None
        submission, auto_submitted = _entry_submission(raw, digest, parsed, context, None,
                                                       verdict, person)
        return PreparedMail(digest, parsed, headers, verdict, person,
                            scan_submission(submission, context.pii_key), auto_submitted)
    except Exception as exc:  # noqa: BLE001 - the message is quarantined with it
        return PreparedMail(digest, error=exc)


def _entry_submission(raw: bytes, digest: str, parsed: ParsedMessage, context: MailContext,
                      related: str | None, verdict: Verdict | None = None,
                      person: Address | None = None) -> tuple[NewSubmission, str | None]:
    """The message as a new entry's submission, and its ``auto_submitted`` note."""
    fields: dict[str, Any] = {
        "_mailbox": context.mailbox,
        "_attachments": [a.filename for a in parsed.attachments],
    }
    auto_submitted = (parsed.auto_submitted if person is None else None) or (
        f"{verdict.category}: {verdict.reason}" if verdict is not None else None)
    if auto_submitted:
        fields["_auto_submitted"] = auto_submitted
    if verdict is not None:
        fields["_auto_category"] = verdict.category
    if parsed.is_bounce or (verdict is not None and verdict.category == BOUNCE):
        fields["_bounce"] = True
    relay_only = (person is None and verdict is None
                  and from_relay(parsed, context.automatic))
    if (person is not None or relay_only) and parsed.from_ is not None:
        # The relay's domain only: the person is the submitter (their Reply-To) or, with
        # no Reply-To, unknown (nobody to acknowledge: never the relay's own address).
        fields["_web_form_relay"] = _domain(parsed.from_.address)[:200]
    if related:
        fields["_related_record"] = related
    if context.agency_hint:
        fields["_mailbox_agency"] = context.agency_hint
    if parsed.defects:
        fields["_defects"] = [d[:200] for d in parsed.defects[:20]]
    if parsed.truncated:
        fields["_truncated"] = True
    sender = person or (None if relay_only else parsed.from_)
    submitter = SubmitterData(
        name=(sender.name[:200] or None) if sender else None,
        email=(sender.address[:320] or None) if sender else None,
    )
    return NewSubmission(
        channel="email", kind="email", raw=raw, content_type="message/rfc822",
        subject=parsed.subject, body=parsed.text, form_slug=context.form, fields=fields,
        submitter=submitter, idempotency_key=f"sha256:{digest}",
        attachments=_attachments(parsed), scanned_too=_attachment_texts(parsed, ""),
        language=written_language(parsed.subject, parsed.text),
    ), auto_submitted


class WorkerDied(Exception):
    """The worker process preparing a message died with it (a crash, killed for memory)."""


#: What a pool worker runs for each message (tests give one that crashes).
PrepareTask = Callable[[bytes, MailContext], PreparedMail]


def _in_worker(task: PrepareTask, raw: bytes, context: MailContext) -> PreparedMail:
    """``task`` (:func:`prepare_mail`) in a worker process. The raw bytes are not sent
    back (the storing process has them: :func:`_with_raw`); an error that cannot travel
    back (not picklable) is sent as its class name."""
    prepared = task(raw, context)
    if prepared.error is not None:
        try:
            pickle.loads(pickle.dumps(prepared.error))  # noqa: S301 - our own bytes
        except Exception:  # noqa: BLE001 - any error that does not survive the trip
            return replace(prepared, error=UnstorableMessage(
                f"parser failure ({type(prepared.error).__name__})"))
    if prepared.entry is not None:
        prepared = replace(prepared, entry=replace(
            prepared.entry, submission=replace(prepared.entry.submission, raw=b"")))
    return prepared


def _with_raw(prepared: PreparedMail, raw: bytes) -> PreparedMail:
    """A worker's result with the raw bytes it was not sent back with."""
    if prepared.entry is None or prepared.entry.submission.raw:
        return prepared
    return replace(prepared, entry=replace(
        prepared.entry, submission=replace(prepared.entry.submission, raw=raw)))


class PreparedBatch:
    """A batch's :class:`PreparedMail`, in the order of its messages: given (prepared
    here) or being made by a :class:`MailPool`."""

    def __init__(self, ready: Sequence[PreparedMail] | None = None, *,
                 pool: MailPool | None = None,
                 pending: Sequence[tuple[bytes, Future[PreparedMail]]] = (),
                 executor: ProcessPoolExecutor | None = None,
                 context: MailContext | None = None) -> None:
        self._ready = list(ready) if ready is not None else None
        self._pool = pool
        self._pending = list(pending)
        self._executor = executor
        self._context = context

    def results(self) -> list[PreparedMail]:
        """Wait for the workers. A message whose worker died is tried again alone, in a
        fresh pool; if that dies too, the message is quarantined (``WorkerDied``)."""
        if self._ready is None:
            assert self._pool and self._executor and self._context  # noqa: S101
            self._ready = [self._pool.result_of(raw, future, self._executor, self._context)
                           for raw, future in self._pending]
            self._pending = []
        return self._ready


class MailPool:
    """Worker processes that do the pure part of storing mail (:func:`prepare_mail`:
    parsing, classifying, the PII scan) for a whole batch, on every core, while the
    storing process commits the batch before. The database work stays in the one
    :func:`store_messages`; the workers get no key but the PII key.

    The processes start on the first batch (from a fork server, never a fork of a
    threaded process) and stop in :meth:`close` (``Runtime.close``).
    """

    def __init__(self, workers: int, task: PrepareTask = prepare_mail) -> None:
        if workers < 1:
            raise ValueError("a mail pool needs at least one worker")
        self.workers = workers
        self.task = task
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._warming: threading.Thread | None = None

    def warm_up(self) -> None:
        """Start the worker processes in the background (they take a second to import
        the parser), so that the first batch finds them ready. Once; never blocks."""
        with self._lock:
            if self._warming is not None or self._executor is not None or self._closed:
                return
            self._warming = threading.Thread(target=self._start_workers,
                                             name="intake-mail-pool-start", daemon=True)
        self._warming.start()

    def _start_workers(self) -> None:
        try:
            executor = self._pool()
            for _ in range(self.workers):  # each submit starts a worker while none is idle
                executor.submit(int)
        except (RuntimeError, BrokenProcessPool):
            pass  # closed meanwhile, or broken: the first batch starts a fresh pool

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the mail pool is closed")
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
                self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._executor

    def _renew(self, broken: ProcessPoolExecutor) -> None:
        """Replace a pool a dead worker broke (once, whoever notices first)."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=True, cancel_futures=True)

    def prepare(self, messages: Sequence[ReceivedMail], context: MailContext) -> PreparedBatch:
        """Start preparing ``messages`` in the workers; :meth:`PreparedBatch.results`
        (which :func:`store_messages` calls) waits for them."""
        worker_context = _for_workers(context)
        executor = self._pool()
        try:
            pending = [(m.raw, executor.submit(_in_worker, self.task, m.raw, worker_context))
                       for m in messages]
        except BrokenProcessPool:
            self._renew(executor)
            executor = self._pool()
            pending = [(m.raw, executor.submit(_in_worker, self.task, m.raw, worker_context))
                       for m in messages]
        return PreparedBatch(pool=self, pending=pending, executor=executor,
                             context=worker_context)

    def result_of(self, raw: bytes, future: Future[PreparedMail], submitted_to: ProcessPoolExecutor,
                  context: MailContext) -> PreparedMail:
        try:
            return _with_raw(future.result(), raw)
        except BrokenProcessPool:
            pass
        except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be sent back
            return PreparedMail(hashlib.sha256(raw).hexdigest(), error=exc)
        # A worker died: maybe on this message, maybe on another of the batch. Alone in a
        # fresh pool, it tells.
        self._renew(submitted_to)
        executor = self._pool()
        try:
            return _with_raw(executor.submit(_in_worker, self.task, raw, context).result(), raw)
        except BrokenProcessPool:
            self._renew(executor)
            log.warning("a mail worker process died preparing a message; quarantined")
            return PreparedMail(hashlib.sha256(raw).hexdigest(),
                                error=WorkerDied("the worker process died preparing it"))

    def close(self) -> None:
        """Stop the worker processes (waiting for what they are doing)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _for_workers(context: MailContext) -> MailContext:
    """The context without the keys the workers do not need (only the PII key's hashes
    are made there)."""
    return replace(context, originals_key=b"", undeliverable_key=None, agency_addresses=())
