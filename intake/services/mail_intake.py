"""One e-mail in, one durable outcome: a new entry, a thread reply, a duplicate or quarantine.

The IMAP poller, ``intake ingest`` and anything else that receives raw
message bytes call :func:`store_messages`. For each message, in its batch's
one transaction, it either

- stores a **new entry** (``record_submissions``: raw bytes as the sealed
  original, the submitter from ``From``, attachments, PII findings, the
  "route" work item), or
- adds the message to an existing entry's **thread** (a ``ThreadMessage``
  with the raw bytes sealed under the entry's key and its texts with the P6
  values replaced by markers, a "reply-received" event and a "relay" work
  item), or
- finds it was already stored (**duplicate**: the same raw bytes, whatever
  their Message-ID; two different messages with one Message-ID are both kept), or
- **quarantines** it (raw bytes + error) when storing fails,

together with whatever the caller must commit with it (the poller's "last
UID done" marker). Auto-replies and bounces are stored like the rest and
marked (``fields._auto_submitted``, author "auto"), so nothing acknowledges or
relays them: that is what breaks mail loops. Each message is classified once
(:func:`intake.core.mail.automatic.classify`: auto-reply, bounce, bulk, spam,
challenge); a new entry from automatic mail gets its category
(``fields._auto_category`` and an ``automatic_entries`` row), so it is neither
forwarded nor acknowledged nor published and stays out of the inbox list. A
bounce of our own mail to a submitter marks that address undeliverable
(:func:`intake.services.automail.mark_undeliverable`). Mail from a web-form relay
(``noreply@``... with a ``Reply-To``) is the Reply-To person's: they are the
entry's submitter.

Threading, in order: a relay token in any recipient address; In-Reply-To,
References or a bounce's original Message-ID against ``sent_messages``; a
``[#RECORD]`` tag in the subject. Who may join a thread:

- the submitter (From equals the entry's submitter address) and agencies
  (From's domain is the domain of an agency address in the rules) join, and
  their message is relayed (a "relay" work item);
- auto-replies and bounces join, never relayed;
- by relay token, an **unknown sender** joins the thread (the token is an
  unguessable address we gave out, so the mail is about this entry) but is
  **not relayed**: we never pass mail from someone we cannot identify to the
  citizen; staff see it in the thread and decide;
- by In-Reply-To or a subject tag, an unknown sender (a reply-all from a
  third person, or a guessed record number) opens a **new entry** that notes
  the related record (``fields._related_record``): their personal data never
  lands in someone else's entry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from intake.core import sealing
from intake.core.mail import Address, ParsedMessage, all_recipient_addresses
from intake.core.mail.automatic import (
    BOUNCE,
    Verdict,
    bounce_facts,
)
from intake.core.pii.at_rest import redact_at_rest
from intake.core.relay import find_relay_tokens
from intake.db import Database, after_commit, after_commit_mark, forget_after
from intake.db.inserts import InsertBatch
from intake.db.mail_models import QuarantinedMessage
from intake.db.models import (
    Entry,
    Event,
    SentMessage,
    Submitter,
    ThreadMessage,
    utcnow,
)
from intake.services import automail
from intake.services.findings import detect_places, store_findings
from intake.services.links import entry_for_relay_token
from intake.services.mail_prepare import (
    MailContext,
    PreparedBatch,
    PreparedMail,
    ReceivedMail,
    _attachment_texts,
    _attachments,
    _domain,
    _entry_submission,
    prepare_mail,
)
from intake.services.mail_prepare import MailPool as MailPool
from intake.services.records import (
    ATTACHMENT_INSERT,
    NewSubmission,
    ScannedSubmission,
    attachment_rows,
    entry_sealer,
    record_submissions,
)
from intake.services.work import PENDING_SENDS, enqueue_many

log = logging.getLogger("intake.mail")

STORED = "stored"
DUPLICATE = "duplicate"
THREAD_REPLY = "thread-reply"
QUARANTINED = "quarantined"

# Failures of the database connection itself: retry later, never quarantine.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, DisconnectionError,
)


@dataclass(frozen=True)
class MailOutcome:
    outcome: str  # stored | duplicate | thread-reply | quarantined
    sha256: str
    entry_id: int | None = None
    record_number: str | None = None
    thread_message_id: int | None = None
    via: str | None = None  # relay-token | in-reply-to | record-tag (thread replies)
    author: str | None = None  # submitter | agency | auto | unknown (thread replies)
    auto_submitted: str | None = None
    auto_category: str | None = None  # auto-reply | bounce | bulk | spam | challenge
    quarantine_id: int | None = None
    error_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


#: What the caller commits with a batch of stored messages (the poller's "last UID
#: done"): called in the same transaction with each message and its outcome.
AlsoCommit = Callable[[Session, Sequence[tuple[ReceivedMail, MailOutcome]]], None]


def store_messages(db: Database, messages: Sequence[ReceivedMail], context: MailContext, *,
                   also: AlsoCommit | None = None,
                   prepared: PreparedBatch | None = None) -> list[MailOutcome]:
    """Store (or quarantine) ``messages`` in one transaction: the one way mail comes in.

    The IMAP poller gives each fetched batch, ``intake ingest`` its files'
    messages a batch at a time. Each message runs under its own savepoint, so
    one that fails is quarantined without undoing the others; ``also`` runs
    in the same transaction. Should the transaction's commit itself fail (a
    deferred constraint, a trigger at commit), each message is committed on
    its own instead, so a failure there quarantines only the message that
    causes it. Raises only when the database itself fails
    (``TRANSIENT_ERRORS``) or ``also`` raises: then nothing of the failing
    transaction was committed and the caller retries later.

    ``prepared`` is the pure part of storing the messages (parsing, classifying, the
    PII scan: :meth:`MailPool.prepare`), started before, in worker processes, for these
    same messages; without it that part runs here, message by message.
    """
    if not messages:
        return []
    ready: Sequence[PreparedMail | None] = (
        prepared.results() if prepared is not None else [None] * len(messages))
    if len(ready) != len(messages):
        raise ValueError("prepared for other messages")
    also_failed = False

    def run_also(session: Session, done: Sequence[tuple[ReceivedMail, MailOutcome]]) -> None:
        nonlocal also_failed
        if also is not None:
            try:
                also(session, done)
            except BaseException:
                also_failed = True
                raise

    try:
        with db.session() as session:
            facts = BatchFacts.of(session, [
                p.digest if p is not None else hashlib.sha256(m.raw).hexdigest()
                for m, p in zip(messages, ready, strict=True)])
            outcomes = _store_batch(session, messages, ready, context, facts)
            run_also(session, list(zip(messages, outcomes, strict=True)))
        return outcomes
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - committed one by one below
        if also_failed:
            raise
        if len(messages) > 1:
            log.warning("mailbox %s: batch commit failed (%s); committing one by one",
                        context.mailbox, type(exc).__name__)
            return [out for m, p in zip(messages, ready, strict=True)
                    for out in store_messages(db, [m], context, also=also,
                                              prepared=None if p is None else PreparedBatch([p]))]
        # The commit itself failed for this one message: keep the bytes in quarantine,
        # in a fresh transaction.
        only = messages[0]
        with db.session() as session:
            outcome = quarantine(session, only.raw, exc, mailbox=context.mailbox, uid=only.uid,
                                 uidvalidity=only.uidvalidity,
                                 originals_key=context.originals_key)
            run_also(session, [(only, outcome)])
        return [outcome]


def _store_batch(session: Session, messages: Sequence[ReceivedMail],
                 ready: Sequence[PreparedMail | None], context: MailContext,
                 facts: BatchFacts) -> list[MailOutcome]:
    """Store a batch's messages in the caller's transaction, each one or its quarantine.

    First all under one savepoint (two statements for the batch: on PostgreSQL a savepoint
    per message was two round trips each); a message that cannot be parsed is quarantined
    there, as nothing of it was written. Should anything else fail, that savepoint is
    rolled back and each message is stored under its own (:func:`store_or_quarantine`),
    so that only the failing one is quarantined."""
    sends = len(session.info.get(PENDING_SENDS) or ())
    logged = after_commit_mark(session)
    try:
        with session.begin_nested():
            outcomes = []
            for m, p in zip(messages, ready, strict=True):
                try:
                    outcomes.append(store_message(session, m.raw, context, p, facts))
                except _NotStorable as failed:
                    outcomes.append(quarantine(
                        session, m.raw, failed.error, mailbox=context.mailbox, uid=m.uid,
                        uidvalidity=m.uidvalidity, originals_key=context.originals_key))
                # The same bytes later in the batch are looked up again (BatchFacts).
                facts.seen.add(outcomes[-1].sha256)
            return outcomes
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - each under its own savepoint below
        log.info("mailbox %s: a message failed in its batch (%s); storing each on its own",
                 context.mailbox, type(exc).__name__)
        # Work items created under the rolled-back savepoint: not to be announced; nor
        # its entries logged.
        del session.info.setdefault(PENDING_SENDS, [])[sends:]
        forget_after(session, logged)
        return [store_or_quarantine(session, m.raw, context, uid=m.uid,
                                    uidvalidity=m.uidvalidity, prepared=p, facts=facts)
                for m, p in zip(messages, ready, strict=True)]


class _NotStorable(Exception):
    """:func:`prepare_mail`'s error for a message, raised before anything of it is written."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def store_or_quarantine(session: Session, raw: bytes, context: MailContext, *,
                        uid: int | None = None, uidvalidity: int | None = None,
                        prepared: PreparedMail | None = None,
                        facts: BatchFacts | None = None) -> MailOutcome:
    """:func:`store_message` under a savepoint; on failure, quarantine in the same transaction."""
    sends = len(session.info.get(PENDING_SENDS) or ())
    logged = after_commit_mark(session)
    try:
        with session.begin_nested():
            return store_message(session, raw, context, prepared, facts)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure quarantines the message
        # Work items created under the rolled-back savepoint: not to be announced; nor
        # its entries logged.
        del session.info.setdefault(PENDING_SENDS, [])[sends:]
        forget_after(session, logged)
        error = exc.error if isinstance(exc, _NotStorable) else exc
        return quarantine(session, raw, error, mailbox=context.mailbox, uid=uid,
                          uidvalidity=uidvalidity, originals_key=context.originals_key)
    finally:
        if facts is not None:
            facts.seen.add(prepared.digest if prepared is not None
                           else hashlib.sha256(raw).hexdigest())


@dataclass
class BatchFacts:
    """What a batch's transaction knows of its messages before storing them, found with
    two queries for the batch instead of three for each message: which of their digests
    are stored already (an entry or a thread message) and which are in quarantine,
    unresolved. A digest seen earlier in the batch is looked up again (it may have been
    stored or quarantined since); a concurrent writer of the same bytes is caught where
    it always was (``ON CONFLICT`` in ``record_submissions``, the thread message's
    unique key)."""

    stored: set[str]
    quarantined: set[str]
    seen: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, session: Session, digests: Sequence[str]) -> BatchFacts:
        keys = [f"sha256:{d}" for d in set(digests)]
        conn = session.connection()
        stored = {str(k).removeprefix("sha256:") for k in conn.execute(
            select(_ENTRIES.c.idempotency_key).where(_ENTRIES.c.idempotency_key.in_(keys))
            .union(select(_THREAD.c.idempotency_key)
                   .where(_THREAD.c.idempotency_key.in_(keys)))).scalars()}
        quarantined = set(conn.execute(
            select(_QUARANTINE.c.sha256).where(_QUARANTINE.c.sha256.in_(set(digests)),
                                               _QUARANTINE.c.resolved.is_(False))).scalars())
        return cls(stored, quarantined)

    def may_be_stored(self, digest: str) -> bool:
        return digest in self.stored or digest in self.seen

    def may_be_quarantined(self, digest: str) -> bool:
        return digest in self.quarantined or digest in self.seen


def quarantine(session: Session, raw: bytes, error: BaseException, *, mailbox: str | None,
               originals_key: bytes, uid: int | None = None,
               uidvalidity: int | None = None) -> MailOutcome:
    """Keep the raw bytes, sealed under a new data key of the row's (wrapped with
    ``originals_key``), and the error; one row per distinct content."""
    digest = hashlib.sha256(raw).hexdigest()
    error_class = type(error).__name__
    # The class name and a bounded message; messages of DB errors can quote
    # parameters, so only the first line (the driver's summary) is kept.
    message = (str(error).splitlines() or [""])[0][:500]
    existing = session.scalar(select(QuarantinedMessage).where(QuarantinedMessage.sha256 == digest))
    if existing is None:
        sealed, wrapped_key = seal_quarantined(raw, digest, originals_key)
        row = QuarantinedMessage(sha256=digest, size=len(raw), error_class=error_class,
                                 raw=sealed, wrapped_key=wrapped_key,
                                 error_message=message, mailbox=mailbox, uid=uid,
                                 uidvalidity=uidvalidity, quarantined_at=utcnow(),
                                 resolved=False, attempts=1)
        session.add(row)
        session.flush()
        quarantine_id = row.id
    else:
        existing.attempts += 1
        existing.error_class = error_class
        existing.error_message = message
        existing.resolved = False
        quarantine_id = existing.id
    after_commit(session, partial(log.warning, "message quarantined (%s) mailbox=%s id=%s",
                                  error_class, mailbox, quarantine_id))
    return MailOutcome(QUARANTINED, digest, quarantine_id=quarantine_id, error_class=error_class)


def seal_quarantined(raw: bytes, digest: str, originals_key: bytes) -> tuple[bytes, bytes]:
    """A quarantined message's bytes (SHA-256 ``digest``) sealed under a new data key, and
    that key wrapped with ``originals_key``: the row's ``raw`` and ``wrapped_key``."""
    data_key = sealing.new_data_key()
    return (sealing.seal(data_key, raw, sealing.original_context(digest)),
            sealing.wrap_key(originals_key, data_key))


def open_quarantined(row: QuarantinedMessage, originals_key: bytes) -> bytes:
    """The exact bytes a quarantined message was received as.

    Rows quarantined before their bytes were sealed (revision 0010) have no key and
    hold them as received. Raises :class:`intake.core.sealing.SealError` when they do not
    open."""
    if row.wrapped_key is None:
        return bytes(row.raw)
    return sealing.unseal(sealing.unwrap_key(originals_key, row.wrapped_key), row.raw,
                          sealing.original_context(row.sha256))


# -- storing ------------------------------------------------------------------------


_ENTRIES = cast(Table, Entry.__table__)
_THREAD = cast(Table, ThreadMessage.__table__)
_QUARANTINE = cast(Table, QuarantinedMessage.__table__)
_ENTRY_BY_KEY = select(_ENTRIES.c.id, _ENTRIES.c.record_number).where(
    _ENTRIES.c.idempotency_key == bindparam("key"))
_REPLY_BY_KEY = (
    select(_THREAD.c.id, _THREAD.c.entry_id, _ENTRIES.c.record_number)
    .join(_ENTRIES, _ENTRIES.c.id == _THREAD.c.entry_id)
    .where(_THREAD.c.idempotency_key == bindparam("key"))
)
_RESOLVE_QUARANTINE = (
    update(_QUARANTINE)
    .where(_QUARANTINE.c.sha256 == bindparam("digest"), _QUARANTINE.c.resolved.is_(False))
    .values(resolved=True, resolved_at=bindparam("now"), resolved_by="stored-on-retry")
)


def _duplicate(session: Session, digest: str) -> MailOutcome | None:
    key = f"sha256:{digest}"
    conn = session.connection()
    row = conn.execute(_ENTRY_BY_KEY, {"key": key}).first()
    if row is not None:
        return MailOutcome(DUPLICATE, digest, entry_id=row.id, record_number=row.record_number)
    reply = conn.execute(_REPLY_BY_KEY, {"key": key}).first()
    if reply is not None:
        return MailOutcome(DUPLICATE, digest, entry_id=reply.entry_id,
                           record_number=reply.record_number, thread_message_id=reply.id)
    return None


def _thread_target(session: Session, parsed: ParsedMessage,
                   relay_domain: str) -> tuple[int, str] | None:
    """(entry id, how it was found) for a reply, else None."""
    tokens = find_relay_tokens(all_recipient_addresses(parsed), relay_domain)
    for token in tokens:
        entry_id = entry_for_relay_token(session, token)
        if entry_id is not None:
            return entry_id, "relay-token"
    ids = list(parsed.in_reply_to) + list(reversed(parsed.references))
    if parsed.bounced_message_id:
        ids.insert(0, parsed.bounced_message_id)
    if ids:
        candidates = ids + [f"<{i}>" for i in ids]
        rows = session.execute(
            select(SentMessage.message_id, SentMessage.entry_id)
            .where(SentMessage.message_id.in_(candidates))
        ).all()
        by_id = {r.message_id.strip("<>"): r.entry_id for r in rows}
        for mid in ids:
            if mid in by_id:
                return by_id[mid], "in-reply-to"
    if parsed.record_tags:
        entry_id = session.scalar(
            select(Entry.id).where(Entry.record_number.in_(parsed.record_tags))
            .order_by(Entry.id).limit(1)
        )
        if entry_id is not None:
            return entry_id, "record-tag"
    return None


def _author(session: Session, entry_id: int, parsed: ParsedMessage,
            agency_addresses: Collection[str], verdict: Verdict | None = None,
            person: Address | None = None) -> str:
    # A relayed person's message is theirs, whatever machine markers the relay added.
    if verdict is not None or parsed.is_bounce or (parsed.auto_submitted and person is None):
        return "auto"
    who = person or parsed.from_
    sender = (who.address if who else "").strip().lower()
    if not sender or "@" not in sender:
        return "unknown"
    submitter_email = session.scalar(select(Submitter.email).where(Submitter.entry_id == entry_id))
    if submitter_email and submitter_email.strip().lower() == sender:
        return "submitter"
    agency_domains = {_domain(a) for a in agency_addresses if "@" in a}
    if _domain(sender) in agency_domains:
        return "agency"
    return "unknown"


def store_message(session: Session, raw: bytes, context: MailContext,
                  prepared: PreparedMail | None = None,
                  facts: BatchFacts | None = None) -> MailOutcome:
    """Store ``raw`` in the caller's transaction; raises when it cannot be stored.

    ``prepared``: :func:`prepare_mail` of these bytes, made beforehand (in a worker
    process); else made here, once the bytes are known not to be stored already.
    ``facts``: what the batch's transaction found of its messages (:class:`BatchFacts`);
    without them, each lookup is made here."""
    raw = bytes(raw)
    digest = prepared.digest if prepared is not None else hashlib.sha256(raw).hexdigest()
    known = _duplicate(session, digest) if facts is None or facts.may_be_stored(digest) else None
    if known is not None:
        _resolve_quarantine(session, digest, facts)
        return known
    if prepared is None:
        prepared = prepare_mail(raw, context)
    if prepared.error is not None:
        raise _NotStorable(prepared.error)
    parsed = prepared.parsed
    assert parsed is not None  # noqa: S101 - prepare_mail gives a parse or an error
    verdict = prepared.verdict
    if verdict is not None and verdict.category == BOUNCE and context.undeliverable_key:
        marked = automail.mark_undeliverable(session, context.undeliverable_key,
                                             bounce_facts(raw, parsed, prepared.headers))
        if marked:
            after_commit(session, partial(
                log.info, "bounce marks the submitter address of entries %s undeliverable",
                marked))

    target = _thread_target(session, parsed, context.relay_domain)
    related: str | None = None
    if target is not None:
        entry_id, via = target
        author = _author(session, entry_id, parsed, context.agency_addresses, verdict,
                         prepared.person)
        if author != "unknown" or via == "relay-token":
            outcome = _store_reply(session, raw, digest, parsed, entry_id, via, author, context,
                                   verdict)
            _resolve_quarantine(session, digest, facts)
            return outcome
        related = session.scalar(select(Entry.record_number).where(Entry.id == entry_id))
    outcome = _store_entry(session, raw, prepared, context, related)
    _resolve_quarantine(session, digest, facts)
    return outcome


# -- the pure part: parsing, classifying, the PII scan ---------------------------------


def _resolve_quarantine(session: Session, digest: str, facts: BatchFacts | None = None) -> None:
    """A message that once failed and now stored: its quarantine row is resolved."""
    if facts is not None and not facts.may_be_quarantined(digest):
        return
    session.connection().execute(_RESOLVE_QUARANTINE, {"digest": digest, "now": utcnow()})


def _store_entry(session: Session, raw: bytes, prepared: PreparedMail, context: MailContext,
                 related: str | None) -> MailOutcome:
    verdict = prepared.verdict
    item: NewSubmission | ScannedSubmission
    if related is None and prepared.entry is not None:
        item, auto_submitted = prepared.entry, prepared.auto_submitted
    else:
        # An unknown sender's reply to a record: a new entry that names the record.
        parsed = cast(ParsedMessage, prepared.parsed)
        item, auto_submitted = _entry_submission(raw, prepared.digest, parsed, context,
                                                 related, verdict, prepared.person)
    recorded = record_submissions(session, [item], record_prefix=context.record_prefix,
                                  pii_key=context.pii_key,
                                  originals_key=context.originals_key)[0]
    if recorded.created:
        if verdict is not None:
            automail.record_automatic(session, recorded.entry_id, verdict)
        after_commit(session, partial(
            log.info, "mail stored as entry %s (mailbox %s)%s", recorded.entry_id,
            context.mailbox, f", automatic ({verdict.category})" if verdict is not None else ""))
    return MailOutcome(STORED if recorded.created else DUPLICATE, prepared.digest,
                       entry_id=recorded.entry_id, record_number=recorded.record_number,
                       auto_submitted=auto_submitted,
                       auto_category=verdict.category if verdict is not None else None)


def _store_reply(session: Session, raw: bytes, digest: str, parsed: ParsedMessage,
                 entry_id: int, via: str, author: str, context: MailContext,
                 verdict: Verdict | None = None) -> MailOutcome:
    record_number = session.scalar(select(Entry.record_number).where(Entry.id == entry_id))
    key = f"sha256:{digest}"
    # Like an entry's: the P6 values only in the raw bytes, sealed under the entry's key.
    texts = {"subject": parsed.subject, "body": parsed.text}
    found = detect_places(texts, context.pii_key) if context.pii_key is not None else {}
    at_rest = {place: redact_at_rest(text, found.get(place, ())) for place, text in texts.items()}
    seal = entry_sealer(session, entry_id, context.originals_key)
    try:
        with session.begin_nested():
            message = ThreadMessage(
                entry_id=entry_id, direction="in", author_kind=author, author_id=None,
                subject=at_rest["subject"].text, body=at_rest["body"].text,
                raw=seal(raw, digest),
                sha256=digest, message_id=parsed.message_id, idempotency_key=key, at=utcnow(),
            )
            session.add(message)
            session.flush()
    except IntegrityError:
        # A concurrent poller stored the same bytes first.
        known = _duplicate(session, digest)
        if known is None:
            raise
        return known
    attachments = _attachments(parsed)
    batch = InsertBatch()
    batch.add(ATTACHMENT_INSERT, attachment_rows(
        entry_id, message.id, attachments,
        [None if a.content is None else seal(a.content, a.sha256) for a in attachments],
        utcnow()))
    relayed = author in ("submitter", "agency")
    kind = "auto-reply-received" if author == "auto" else "reply-received"
    session.add(Event(entry_id=entry_id, kind=kind, at=utcnow(), detail={
        "thread_message_id": message.id, "via": via, "author": author,
        "mailbox": context.mailbox, "sha256": digest, "relayed": relayed,
        **({"auto_submitted": parsed.auto_submitted} if parsed.auto_submitted else {}),
        **({"auto_category": verdict.category} if verdict is not None else {}),
    }))
    if context.pii_key is not None:
        findings = {f"thread:{message.id}:{place}": list(at_rest[place].findings)
                    for place in found}
        findings.update(detect_places(_attachment_texts(parsed, f"thread:{message.id}:"),
                                      context.pii_key))
        store_findings(batch, [(entry_id, findings)])
    if relayed:
        enqueue_many(session, [("relay", f"relay:{message.id}", entry_id,
                                {"thread_message_id": message.id})], batch=batch)
    batch.run(session.connection())
    after_commit(session, partial(log.info, "mail joined entry %s as thread message %s (%s, %s)",
                                  entry_id, message.id, via, author))
    return MailOutcome(THREAD_REPLY, digest, entry_id=entry_id, record_number=record_number,
                       thread_message_id=message.id, via=via, author=author,
                       auto_submitted=parsed.auto_submitted,
                       auto_category=verdict.category if verdict is not None else None)


# -- the process pool -----------------------------------------------------------------


