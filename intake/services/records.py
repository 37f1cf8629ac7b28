"""Recording submissions: the durable-first step every channel goes through.

A web form, a polled e-mail and an ingested ``.eml`` all end here: one
transaction writes the entry, the submitter's personal data (apart), the
sealed original bytes with their SHA-256, the "received" event and the
"route" work item. Only after that commit does anything else happen.

What people are asked not to send (the P6 kinds) is kept only in the sealed
original, encrypted under the entry's own key (:mod:`intake.core.sealing`):
the entry's texts and form answers hold their markers instead
(:func:`intake.core.pii.at_rest.redact_at_rest`), and so does the full-text
index made from them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from intake.core import sealing
from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.core.pii import Finding
from intake.db import (
    after_commit,
    allocate_record_numbers,
    format_record_number,
    release_record_numbers,
)
from intake.db.inserts import InsertBatch, PreparedInsert, execute
from intake.db.models import (
    Attachment,
    Entry,
    EntryKey,
    EntryStatus,
    Event,
    Original,
    Submitter,
    ThreadMessage,
    utcnow,
)
from intake.services.consent import ensure_policy_text, record_consent
from intake.services.findings import store_findings
from intake.services.links import create_access_links_in
from intake.services.submissions import MAX_BODY as MAX_BODY
from intake.services.submissions import MAX_SUBJECT as MAX_SUBJECT
from intake.services.submissions import (
    GivenConsent,
    NewAttachment,
    NewSubmission,
    ScannedSubmission,
    scan_submission,
)
from intake.services.submissions import SubmitterData as SubmitterData
from intake.services.submissions import stored_texts as stored_texts
from intake.services.work import enqueue_many

# What a submission is (no database) lives in intake.services.submissions; the record
# store's callers import it from here too.

log = logging.getLogger("intake.records")


@dataclass(frozen=True)
class Recorded:
    entry_id: int
    record_number: str
    created: bool  # False when the submission was a duplicate of an earlier one
    status_token: str | None = None  # with ``NewSubmission.status_link``


@dataclass(frozen=True)
class _Prepared:
    """A submission with everything computed that needs no database: made before the
    writer's turn is taken."""

    submission: NewSubmission
    digest: str
    key: str
    received_at: datetime
    texts: dict[str, str]  # as stored: the P6 values replaced by their markers
    fields: dict[str, Any]  # likewise
    findings: dict[str, list[Finding]]  # re-based onto ``texts``
    sealed_raw: bytes  # the raw bytes encrypted under the entry's new data key
    wrapped_key: bytes  # that key, encrypted under the key-encryption key
    sealed_attachments: tuple[bytes | None, ...]  # their contents, under the same key
    search_text: str  # what the staff search may find it by (no personal data)

    @classmethod
    def of(cls, item: NewSubmission | ScannedSubmission, pii_key: bytes | None,
           originals_key: bytes) -> _Prepared:
        scanned = item if isinstance(item, ScannedSubmission) else scan_submission(item, pii_key)
        if scanned.scanned_with_key != (pii_key is not None):
            # Scanned without the key the caller stores with (or the other way round).
            scanned = scan_submission(scanned.submission, pii_key)
        submission, digest = scanned.submission, scanned.digest
        data_key = sealing.new_data_key()
        return cls(submission, digest, submission.idempotency_key or f"sha256:{digest}",
                   submission.received_at or utcnow(), scanned.texts, scanned.fields,
                   scanned.findings,
                   sealing.seal(data_key, submission.raw, sealing.original_context(digest)),
                   sealing.wrap_key(originals_key, data_key),
                   tuple(None if a.content is None else sealing.seal(
                       data_key, a.content, sealing.original_context(a.sha256))
                       for a in submission.attachments),
                   scanned.search_text)

    def entry_row(self, record_number: str) -> dict[str, Any]:
        s = self.submission
        return {"record_number": record_number, "channel": s.channel, "kind": s.kind,
                "form_slug": s.form_slug, "received_at": self.received_at,
                "subject": self.texts["subject"], "body": self.texts["body"],
                "search_text": self.search_text,
                "fields": self.fields, "status": EntryStatus.NEW, "idempotency_key": self.key,
                "tags": [], "language": s.language}

    def submitter_row(self, entry_id: int) -> dict[str, Any] | None:
        who = self.submission.submitter
        if who.is_empty():
            return None
        return {"entry_id": entry_id, "name": who.name, "email": who.email, "phone": who.phone,
                "postal_address": who.postal_address}

    def original_row(self, entry_id: int) -> dict[str, Any]:
        s = self.submission
        return {"entry_id": entry_id, "content_type": s.content_type, "raw": self.sealed_raw,
                "sha256": self.digest, "size": len(s.raw), "received_at": self.received_at}

    def key_row(self, entry_id: int) -> dict[str, Any]:
        return {"entry_id": entry_id, "wrapped_key": self.wrapped_key,
                "created_at": self.received_at}

    def event_row(self, entry_id: int) -> dict[str, Any]:
        s = self.submission
        return {"entry_id": entry_id, "kind": "received", "at": self.received_at,
                "actor": "system", "detail": {"channel": s.channel, "kind": s.kind,
                                              "form": s.form_slug, "sha256": self.digest}}

    def attachment_rows(self, entry_id: int) -> list[dict[str, Any]]:
        return attachment_rows(entry_id, None, self.submission.attachments,
                               self.sealed_attachments, self.received_at)


def record_submissions(
    session: Session, submissions: Sequence[NewSubmission | ScannedSubmission], *,
    record_prefix: str, originals_key: bytes, pii_key: bytes | None = None,
) -> list[Recorded]:
    """Store submissions durably in the caller's transaction: the one way in.

    Every channel comes here with a list (of one, ordinarily; a web-form group
    commit gives many). For each new entry it writes, with one INSERT a table
    (one statement for all of them on PostgreSQL, :class:`InsertBatch`): the
    entry, its submitter's personal data (apart), the original sealed under a
    new key of the entry's (wrapped with ``originals_key``), its attachments
    under the same key, the "received" event, the PII findings (kind, place,
    keyed hash; never the value: the caller's scan or one with ``pii_key``) and
    the "route" work item, whose message the job system sends once the
    transaction commits. The P6 values the findings locate are kept only in the
    sealed original. Then the consent the person ticked, and a status link
    where asked for.

    Idempotent on the idempotency key (by default the raw bytes' SHA-256): a
    submission stored before, or earlier in the list, is answered with that
    entry (``created=False``) and nothing of it is written again but its
    status link. New entries get consecutive record numbers with no gap: the
    counter row is moved first, which locks it until the transaction ends; the
    entries are inserted with ``ON CONFLICT DO NOTHING`` (a concurrent writer
    of the same bytes held that lock, so it has committed by then and its
    entry is found); only when some were duplicates are they looked up, the
    new ones renumbered consecutively and the numbers left over given back
    while the lock is still held.

    A submission may come scanned already (:func:`scan_submission`, with the same
    ``pii_key``): then only the sealing and the writes are left for here.
    """
    prepared = [_Prepared.of(s, pii_key, originals_key) for s in submissions]
    conn = session.connection()
    firsts: dict[str, _Prepared] = {}
    for p in prepared:
        firsts.setdefault(p.key, p)
    numbers, inserted = _number_and_insert(conn, list(firsts.values()), record_prefix)
    known: dict[str, Recorded] = {}
    if len(inserted) < len(firsts):
        # Stored before (a double click, a re-fetched message, a concurrent writer, who
        # held the counter's lock and so has committed): answered with that entry.
        known = {str(key): Recorded(int(entry_id), str(number), created=False)
                 for entry_id, number, key in _entries_by_keys(
                     conn, [key for key in firsts if key not in inserted])}
        numbers = _close_gaps(conn, record_prefix, numbers, inserted)
    known.update((key, Recorded(entry_id, numbers[key], created=True))
                 for key, entry_id in inserted.items())
    new = [(p, inserted[p.key]) for p in firsts.values() if p.key in inserted]
    batch = InsertBatch()
    _add_dependents(batch, session, new)
    tokens = iter(create_access_links_in(batch, [
        known[p.key].entry_id for p in prepared if p.submission.status_link]))
    batch.run(conn)
    for p, entry_id in new:
        _record_given_consent(session, entry_id, p.submission.consent)
        # Logged once it is committed (a rolled-back savepoint or batch takes it back).
        after_commit(session, partial(log.info, "entry %s recorded (%s, %s)", entry_id,
                                      p.submission.channel, p.submission.kind))
    return _answers(prepared, known, tokens)


def _answers(prepared: Sequence[_Prepared], stored: Mapping[str, Recorded],
             tokens: Iterator[str]) -> list[Recorded]:
    """Each submission's entry, in order: new only for the first of the same bytes."""
    answered: set[str] = set()
    out = []
    for p in prepared:
        entry = stored[p.key]
        out.append(Recorded(entry.entry_id, entry.record_number,
                            created=entry.created and p.key not in answered,
                            status_token=next(tokens) if p.submission.status_link else None))
        answered.add(p.key)
    return out


def _number_and_insert(conn: Connection, fresh: Sequence[_Prepared], record_prefix: str
                       ) -> tuple[dict[str, str], dict[str, int]]:
    """Draw a record number for each submission and insert the entries with
    ``ON CONFLICT DO NOTHING``: the numbers drawn and the ids of the entries inserted,
    by idempotency key (the others are stored already).

    On PostgreSQL, for submissions of one year, both are one statement: the
    counter's upsert is a data-modifying ``WITH`` query the entries' numbers are
    computed from (it runs once and locks the counter's row like the UPDATE
    does); each statement a form submission saves is a round trip and the
    client's and server's work on it. Elsewhere: the counter's UPDATE, then the
    INSERT.
    """
    years = {p.received_at.year for p in fresh}
    if conn.dialect.name != "postgresql" or len(years) != 1:
        numbers = dict(zip((p.key for p in fresh), allocate_record_numbers(
            conn, record_prefix, [p.received_at for p in fresh]), strict=True))
        inserted = {str(key): int(entry_id) for entry_id, key in ENTRY_INSERT.run(
            conn, [p.entry_row(numbers[p.key]) for p in fresh])}
        return numbers, inserted
    year = years.pop()
    count = len(fresh)
    head = f"{record_prefix}-{year}-"
    params: list[Any] = [record_prefix, year, count]
    for p in fresh:
        params.append(head)
        params.extend(ENTRY_INSERT.bind(conn.dialect, p.entry_row(""))[1:])  # but the number
    returned = execute(conn, _numbered_entries_sql(conn, count), params)
    inserted = {str(key): int(entry_id) for entry_id, key, _ in returned}
    if returned:
        _, key, number = returned[0]
        last = int(number.rpartition("-")[2]) + count - 1 - next(
            i for i, p in enumerate(fresh) if p.key == key)
    else:  # all stored before; the counter's row is ours until the transaction ends
        last = int(execute(conn, _COUNTER_VALUE, [record_prefix, year])[0][0])
    numbers = {p.key: format_record_number(record_prefix, year, last - count + 1 + i)
               for i, p in enumerate(fresh)}
    return numbers, inserted


def _numbered_entries_sql(conn: Connection, count: int) -> str:
    sql = _NUMBERED_SQL.get(count)
    if sql is None:
        others = ", ".join(["%s"] * (len(_ENTRY_COLUMNS) - 1))
        values = ", ".join(
            f"((SELECT %s || lpad((c.last_value - {k})::text, "
            f"greatest(6, length((c.last_value - {k})::text)), '0') FROM c), {others})"
            for k in range(count - 1, -1, -1))
        columns = ", ".join(f'"{c}"' for c in _ENTRY_COLUMNS)
        sql = (_NUMBERED_HEAD + f"({columns}) "
               f"VALUES {values} ON CONFLICT (idempotency_key) DO NOTHING "
               "RETURNING id, idempotency_key, record_number")
        if count <= 64:
            _NUMBERED_SQL[count] = sql
    return sql


def _close_gaps(conn: Connection, record_prefix: str, numbers: Mapping[str, str],
                inserted: Mapping[str, int]) -> dict[str, str]:
    """The record numbers of the entries inserted, made consecutive again from the first
    drawn in each year, and the numbers left over given back to the counter, which this
    transaction still locks: the numbers keep no gap when some were duplicates.

    Each entry moves down to a number that is free by then (never drawn by an entry,
    or left by one moved before it), so no unique check fails on the way."""
    per_year: dict[int, list[str]] = {}
    for key, number in numbers.items():
        per_year.setdefault(_year_of(number), []).append(key)
    kept: dict[str, str] = {}
    for year, keys in per_year.items():
        drawn = sorted(numbers[k] for k in keys)
        stored = sorted((k for k in keys if k in inserted), key=lambda k: numbers[k])
        for key, number in zip(stored, drawn, strict=False):
            if number != numbers[key]:
                conn.execute(_RENUMBER, {"entry": inserted[key], "to": number})
            kept[key] = number
        release_record_numbers(conn, record_prefix, year, len(keys) - len(stored))
    return kept


def _year_of(number: str) -> int:
    return int(number.rpartition("-")[0].rpartition("-")[2])


def _add_dependents(batch: InsertBatch, session: Session,
                    pairs: Sequence[tuple[_Prepared, int]]) -> None:
    """What a new entry comes with: submitter, original and its key, "received" event,
    attachments, PII findings and the "route" work item."""
    batch.add(SUBMITTER_INSERT, [row for p, i in pairs
                                 if (row := p.submitter_row(i)) is not None])
    batch.add(ORIGINAL_INSERT, [p.original_row(i) for p, i in pairs])
    batch.add(KEY_INSERT, [p.key_row(i) for p, i in pairs])
    batch.add(EVENT_INSERT, [p.event_row(i) for p, i in pairs])
    batch.add(ATTACHMENT_INSERT, [row for p, i in pairs for row in p.attachment_rows(i)])
    store_findings(batch, [(i, p.findings) for p, i in pairs])
    enqueue_many(session, [("route", f"route:{i}", i, None) for _, i in pairs], batch=batch)


def _record_given_consent(session: Session, entry_id: int, consent: GivenConsent | None
                          ) -> None:
    if consent is None:
        return
    ensure_policy_text(session, consent.version, consent.text)
    record_consent(session, entry_id=entry_id, action=ConsentAction.GRANT,
                   purpose=Purpose.SHARE_IDENTITY, recipient_class="agency",
                   policy_version=consent.version, method=ConsentMethod.WEB_CHECKBOX,
                   evidence=consent.evidence)


def attachment_rows(entry_id: int, thread_message_id: int | None,
                    attachments: Sequence[NewAttachment], sealed: Sequence[bytes | None],
                    now: datetime) -> list[dict[str, Any]]:
    """The ``attachments`` rows of an entry's or a thread message's files, their contents
    ``sealed`` under the entry's key (None: over the size cap, kept only in the original)."""
    return [{"entry_id": entry_id, "thread_message_id": thread_message_id,
             "filename": a.filename[:255] or "attachment",
             "declared_type": a.declared_type[:128], "sniffed_type": a.sniffed_type[:128],
             "size": a.size, "sha256": a.sha256, "content": content, "inline": a.inline,
             "content_id": a.content_id[:255] if a.content_id else None, "created_at": now}
            for a, content in zip(attachments, sealed, strict=True)]


# Built once: constructing a statement per call costs more than running it.
_ENTRIES = cast(Table, Entry.__table__)
_ENTRY_COLUMNS = ("record_number", "channel", "kind", "form_slug", "received_at", "subject",
                  "body", "search_text", "fields", "status", "idempotency_key", "tags",
                  "language")
ENTRY_INSERT = PreparedInsert(_ENTRIES, _ENTRY_COLUMNS, returning=("id", "idempotency_key"),
                              on_conflict_nothing=("idempotency_key",))
# PostgreSQL: the counter's upsert and the entries' INSERT as one statement.
_NUMBERED_HEAD = (
    "WITH c AS (INSERT INTO record_counters (prefix, year, last_value) VALUES (%s, %s, %s) "
    "ON CONFLICT (prefix, year) DO UPDATE "
    "SET last_value = record_counters.last_value + excluded.last_value "
    "RETURNING last_value) INSERT INTO entries ")
_NUMBERED_SQL: dict[int, str] = {}
_COUNTER_VALUE = "SELECT last_value FROM record_counters WHERE prefix = ? AND year = ?"
_RENUMBER = update(_ENTRIES).where(_ENTRIES.c.id == bindparam("entry")).values(
    record_number=bindparam("to"))
_ENTRIES_BY_KEYS_HEAD = ("SELECT id, record_number, idempotency_key FROM entries "
                         "WHERE idempotency_key IN ")


def _entries_by_keys(conn: Connection, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """(id, record_number, idempotency_key) of the stored entries among ``keys``.

    On the DB-API cursor: every submission runs it, and an expanding ``IN`` makes
    SQLAlchemy compile the statement anew for each execution. ``keys`` is at most a
    group commit's batch, far under either database's limit on parameters.
    """
    if not keys:
        return []
    return execute(conn, _ENTRIES_BY_KEYS_HEAD + "(" + ", ".join("?" * len(keys)) + ")", keys)


SUBMITTER_INSERT = PreparedInsert(cast(Table, Submitter.__table__),
                                  ("entry_id", "name", "email", "phone", "postal_address"))
ORIGINAL_INSERT = PreparedInsert(cast(Table, Original.__table__),
                                 ("entry_id", "content_type", "raw", "sha256", "size",
                                  "received_at"))
KEY_INSERT = PreparedInsert(cast(Table, EntryKey.__table__),
                            ("entry_id", "wrapped_key", "created_at"))
_INSERT_KEY_OR_NOTHING = PreparedInsert(cast(Table, EntryKey.__table__),
                                        ("entry_id", "wrapped_key", "created_at"),
                                        on_conflict_nothing=("entry_id",))
EVENT_INSERT = PreparedInsert(cast(Table, Event.__table__),
                              ("entry_id", "kind", "at", "actor", "detail"))
ATTACHMENT_INSERT = PreparedInsert(cast(Table, Attachment.__table__), (
    "entry_id", "thread_message_id", "filename", "declared_type", "sniffed_type", "size",
    "sha256", "content", "inline", "content_id", "created_at"))


# -- the sealed originals -----------------------------------------------------------------


class OriginalUnavailable(LookupError):
    """The original cannot be read: none stored, or its entry's key was destroyed."""


_KEY_OF = select(EntryKey.wrapped_key).where(EntryKey.entry_id == bindparam("e"))
_ORIGINAL_OF = select(Original.raw, Original.sha256).where(Original.entry_id == bindparam("e"))
_THREAD_RAW_OF = select(ThreadMessage.entry_id, ThreadMessage.raw, ThreadMessage.sha256).where(
    ThreadMessage.id == bindparam("m"))


def _data_key(db: Session | Connection, entry_id: int, originals_key: bytes) -> bytes:
    wrapped = db.execute(_KEY_OF, {"e": entry_id}).scalar()
    if wrapped is None:
        raise OriginalUnavailable(f"entry {entry_id}: no key (destroyed, or stored before 0008)")
    return sealing.unwrap_key(originals_key, wrapped)


def open_original(db: Session | Connection, entry_id: int, originals_key: bytes) -> bytes:
    """The exact bytes an entry was received as (its sealed original, decrypted).

    Raises :class:`OriginalUnavailable` without one or without the entry's key, and
    :class:`intake.core.sealing.SealError` when it does not open (another key, a blob
    moved from another row)."""
    row = db.execute(_ORIGINAL_OF, {"e": entry_id}).first()
    if row is None:
        raise OriginalUnavailable(f"entry {entry_id}: no original")
    return open_sealed(db, entry_id, originals_key, row.raw, row.sha256)


def entry_sealer(db: Session | Connection, entry_id: int, originals_key: bytes
                 ) -> Callable[[bytes, str], bytes]:
    """A function sealing bytes (with their SHA-256) under the entry's key, which is read
    and unwrapped once, for all of a message's attachments.

    An entry stored before its originals were sealed (revision 0008) is given a key now.
    """
    conn = db.connection() if isinstance(db, Session) else db
    wrapped = conn.execute(_KEY_OF, {"e": entry_id}).scalar()
    if wrapped is None:
        _INSERT_KEY_OR_NOTHING.run(conn, [{
            "entry_id": entry_id, "created_at": utcnow(),
            "wrapped_key": sealing.wrap_key(originals_key, sealing.new_data_key())}])
        # ON CONFLICT DO NOTHING: a concurrent writer's key may be the one that stays.
        wrapped = conn.execute(_KEY_OF, {"e": entry_id}).scalar_one()
    data_key = sealing.unwrap_key(originals_key, wrapped)

    def seal(raw: bytes, digest: str) -> bytes:
        return sealing.seal(data_key, raw, sealing.original_context(digest))

    return seal


def seal_for_entry(db: Session | Connection, entry_id: int, originals_key: bytes,
                   raw: bytes, digest: str) -> bytes:
    """``raw`` (with SHA-256 ``digest``) sealed under the entry's key: a reply's raw bytes,
    an attachment's content (:func:`entry_sealer` for several)."""
    return entry_sealer(db, entry_id, originals_key)(raw, digest)


def open_thread_message(db: Session | Connection, message_id: int,
                        originals_key: bytes) -> bytes:
    """The exact bytes a thread reply was received as (see :func:`open_original`)."""
    row = db.execute(_THREAD_RAW_OF, {"m": message_id}).first()
    if row is None or row.raw is None or row.sha256 is None:
        raise OriginalUnavailable(f"thread message {message_id}: no raw bytes")
    return open_sealed(db, row.entry_id, originals_key, row.raw, row.sha256)


def open_sealed(db: Session | Connection, entry_id: int, originals_key: bytes,
                sealed: bytes, digest: str) -> bytes:
    """The plaintext of :func:`seal_for_entry`'s ``sealed`` (see :func:`open_original`).

    Bytes stored before sealing began (revisions 0008 and 0010) are their own
    plaintext: their SHA-256 is ``digest``, which no ciphertext's can be. They are
    returned as they are, so an upgrade loses no pending forward or download.
    """
    if hashlib.sha256(bytes(sealed)).hexdigest() == digest:
        return bytes(sealed)
    return sealing.unseal(_data_key(db, entry_id, originals_key), sealed,
                          sealing.original_context(digest))


@dataclass(frozen=True)
class OpenedAttachment:
    filename: str
    sniffed_type: str
    content: bytes


_ATTACHMENT_OF = select(Attachment.filename, Attachment.sniffed_type, Attachment.content,
                        Attachment.sha256).where(Attachment.id == bindparam("a"),
                                                 Attachment.entry_id == bindparam("e"))


def open_attachment(db: Session | Connection, entry_id: int, attachment_id: int,
                    originals_key: bytes) -> OpenedAttachment | None:
    """An entry's attachment with its content decrypted; None when the entry has no such
    attachment or its content was not kept (over the size cap).

    Raises :class:`OriginalUnavailable` when the entry's key was destroyed and
    :class:`intake.core.sealing.SealError` when the content does not open."""
    row = db.execute(_ATTACHMENT_OF, {"a": attachment_id, "e": entry_id}).first()
    if row is None or row.content is None:
        return None
    return OpenedAttachment(row.filename, row.sniffed_type,
                            open_sealed(db, entry_id, originals_key, row.content, row.sha256))
