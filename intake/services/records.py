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
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from intake.core import sealing
from intake.core.pii import Finding
from intake.core.pii.at_rest import redact_at_rest, redact_values
from intake.core.rendition import EntryValues, search_text
from intake.db import (
    allocate_record_number,
    allocate_record_numbers,
    release_record_number,
)
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
from intake.db.prepared import InsertBatch, PreparedInsert, execute
from intake.services.privacy import detect_places, store_findings_in
from intake.services.work import enqueue_many_in, pending_sends

log = logging.getLogger("intake.records")

# Upper bounds that keep one submission from filling the database.
MAX_SUBJECT = 1_000
MAX_BODY = 1_000_000


@dataclass(frozen=True)
class SubmitterData:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    postal_address: str | None = None

    def is_empty(self) -> bool:
        return not any((self.name, self.email, self.phone, self.postal_address))


@dataclass(frozen=True)
class NewSubmission:
    channel: str  # Channel value
    kind: str  # EntryKind value
    raw: bytes  # the exact bytes received
    content_type: str  # of ``raw``
    subject: str = ""
    body: str = ""
    form_slug: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    submitter: SubmitterData = field(default_factory=SubmitterData)
    received_at: datetime | None = None
    # Defaults to the SHA-256 of ``raw``: the same bytes twice are one entry.
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Recorded:
    entry_id: int
    record_number: str
    created: bool  # False when the submission was a duplicate of an earlier one


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _clean_line(text: str, limit: int) -> str:
    """A one-line field: no CR/LF or other control characters, bounded length."""
    return " ".join(_CONTROL_CHARS.sub(" ", text).split())[:limit]


def stored_texts(submission: NewSubmission) -> dict[str, str]:
    """Subject and body as the PII detector scans them: as the entry stores them but for
    the P6 values, which :func:`prepare` replaces by their markers (re-basing the findings)."""
    return {"subject": _clean_line(submission.subject, MAX_SUBJECT),
            "body": submission.body[:MAX_BODY]}


@dataclass(frozen=True)
class _Prepared:
    """A submission with what every path computes before writing it."""

    submission: NewSubmission
    digest: str
    key: str
    received_at: datetime
    texts: dict[str, str]  # as stored: the P6 values replaced by their markers
    fields: dict[str, Any]  # likewise
    findings: dict[str, list[Finding]]  # re-based onto ``texts``
    sealed_raw: bytes  # the raw bytes encrypted under the entry's new data key
    wrapped_key: bytes  # that key, encrypted under the key-encryption key
    search_text: str  # what the staff search may find it by (no personal data)

    @classmethod
    def of(cls, submission: NewSubmission, findings: Mapping[str, Sequence[Finding]],
           originals_key: bytes) -> _Prepared:
        digest = hashlib.sha256(submission.raw).hexdigest()
        texts: dict[str, str] = {}
        rebased = {place: list(found) for place, found in findings.items()}
        removed: list[tuple[str, str]] = []
        for place, text in stored_texts(submission).items():
            at_rest = redact_at_rest(text, findings.get(place, ()))
            texts[place] = at_rest.text
            if place in rebased:
                rebased[place] = list(at_rest.findings)
            removed.extend(at_rest.removed)
        data_key = sealing.new_data_key()
        who = submission.submitter
        searchable = search_text(
            EntryValues(texts=texts, name=who.name, email=who.email, phone=who.phone,
                        postal_address=who.postal_address),
            # A place never scanned (no key given) is scanned by the renderer.
            {place: rebased[place] for place in texts if place in rebased})
        return cls(submission, digest, submission.idempotency_key or f"sha256:{digest}",
                   submission.received_at or utcnow(), texts,
                   redact_values(submission.fields, removed), rebased,
                   sealing.seal(data_key, submission.raw, sealing.original_context(digest)),
                   sealing.wrap_key(originals_key, data_key),
                   searchable)

    def entry_row(self, record_number: str) -> dict[str, Any]:
        s = self.submission
        return {"record_number": record_number, "channel": s.channel, "kind": s.kind,
                "form_slug": s.form_slug, "received_at": self.received_at,
                "subject": self.texts["subject"], "body": self.texts["body"],
                "search_text": self.search_text,
                "fields": self.fields, "status": EntryStatus.NEW, "idempotency_key": self.key,
                "tags": []}

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


def prepare(submission: NewSubmission, findings: Mapping[str, Sequence[Finding]],
            originals_key: bytes) -> _Prepared:
    """A submission with its digest, idempotency key, time, stored texts and answers, its
    PII ``findings`` (a scan of :func:`stored_texts`) re-based onto them, and its original
    sealed under a new data key (wrapped with ``originals_key``)."""
    return _Prepared.of(submission, findings, originals_key)


def _writing(db: Session | Connection, sends: list[tuple[int, datetime]] | None
             ) -> tuple[Connection, list[tuple[int, datetime]]]:
    """The connection to write on, and where the new work items' messages go: a
    session's :func:`pending_sends` unless the caller gives a list (it must, with a
    connection: it sends them once it has committed)."""
    if isinstance(db, Connection):
        if sends is None:
            raise TypeError("writing on a connection: give the list of sends")
        return db, sends
    return db.connection(), sends if sends is not None else pending_sends(db)


def record_submission(
    session: Session | Connection, submission: NewSubmission, record_prefix: str,
    *, originals_key: bytes, pii_key: bytes | None = None,
    findings: Mapping[str, Sequence[Finding]] | None = None,
    batch: InsertBatch | None = None,
    sends: list[tuple[int, datetime]] | None = None,
) -> Recorded:
    """Store a submission durably in the caller's transaction (idempotent).

    The PII detector's findings in subject and body are stored too (kind,
    place, keyed hash; never the value): ``findings`` when the caller has
    already scanned :func:`stored_texts` (the web form does, to warn), else a
    scan with ``pii_key``. The P6 values they find are stored only in the
    original, sealed with a new key of the entry's, wrapped with ``originals_key``.

    Every submission comes through here, so it is written with a handful of
    plain INSERTs (no ORM unit of work). The entry is inserted with ``ON
    CONFLICT (idempotency_key) DO NOTHING``: the same bytes sent again, even
    by a concurrent writer, are one entry, and the record number drawn for
    the duplicate is given back (the counter row is still locked by this
    transaction), so numbers keep no gaps.

    With ``batch``, the rows that come with a new entry are added to it (see
    :class:`InsertBatch`) and the caller runs it in this transaction. On a
    connection instead of a session, ``sends`` collects the new work items'
    messages for the caller to send once it has committed.
    """
    if findings is None:
        findings = detect_places(stored_texts(submission), pii_key) if pii_key else {}
    p = prepare(submission, findings, originals_key)
    conn, sends = _writing(session, sends)
    record_number = allocate_record_number(conn, record_prefix, p.received_at)
    inserted = _INSERT_ENTRY_OR_NOTHING.run(conn, [p.entry_row(record_number)])
    if not inserted:
        # Stored before (a double click, a re-fetched message, a concurrent writer).
        release_record_number(conn, record_number)
        row = conn.execute(_ENTRY_BY_KEY, {"k": p.key}).one()
        return Recorded(row.id, row.record_number, created=False)
    entry_id = int(inserted[0][0])
    _write_dependents(conn, sends, [p], [entry_id], batch)
    log.info("entry %s recorded (%s, %s)", entry_id, submission.channel, submission.kind)
    return Recorded(entry_id, record_number, created=True)


def _write_dependents(conn: Connection, sends: list[tuple[int, datetime]],
                      prepared: Sequence[_Prepared],
                      ids: Sequence[int], batch: InsertBatch | None = None) -> None:
    """What a new entry comes with: submitter, original and its key, "received" event, PII
    findings and the "route" work item; one INSERT a table for all of ``prepared``, all run
    together (one statement on PostgreSQL), in ``batch`` if given (the caller runs it)."""
    own = batch is None
    batch = InsertBatch() if batch is None else batch
    pairs = list(zip(prepared, ids, strict=True))
    batch.add(SUBMITTER_INSERT, [row for p, i in pairs
                                 if (row := p.submitter_row(i)) is not None])
    batch.add(ORIGINAL_INSERT, [p.original_row(i) for p, i in pairs])
    batch.add(KEY_INSERT, [p.key_row(i) for p, i in pairs])
    batch.add(EVENT_INSERT, [p.event_row(i) for p, i in pairs])
    store_findings_in(batch, [(i, p.findings) for p, i in pairs])
    enqueue_many_in(batch, sends, [("route", f"route:{i}", i) for i in ids])
    if own:
        batch.run(conn)


def record_submissions(
    session: Session | Connection, submissions: Sequence[NewSubmission], record_prefix: str,
    findings: Sequence[Mapping[str, Sequence[Finding]]],
    batch: InsertBatch | None = None,
    sends: list[tuple[int, datetime]] | None = None,
    *, originals_key: bytes,
) -> list[Recorded]:
    """:func:`record_submission` for many at once (a group commit): one statement a table.

    ``findings`` are the caller's scans, one per submission. Duplicates of
    stored entries, or of one earlier in the list, are found first and answer
    with that entry; the new ones get consecutive record numbers. A concurrent
    writer storing the same bytes in between makes the entries' INSERT fail
    (IntegrityError): the caller then stores them one at a time
    (:func:`record_submission` handles that race). ``batch``, ``sends``,
    ``originals_key``: as for :func:`record_submission`.
    """
    prepared = [prepare(s, f, originals_key)
                for s, f in zip(submissions, findings, strict=True)]
    conn, sends = _writing(session, sends)
    known = {key: Recorded(int(entry_id), number, created=False)
             for entry_id, number, key in _entries_by_keys(conn, [p.key for p in prepared])}
    new: dict[str, int] = {}  # key -> index in prepared, first occurrence
    for index, p in enumerate(prepared):
        if p.key not in known and p.key not in new:
            new[p.key] = index
    fresh = [prepared[i] for i in new.values()]
    numbers = allocate_record_numbers(conn, record_prefix, [p.received_at for p in fresh])
    ids: list[int] = []
    if fresh:
        rows = [p.entry_row(n) for p, n in zip(fresh, numbers, strict=True)]
        # Plain INSERT: a key stored by a concurrent writer since the SELECT fails it.
        by_key = {key: int(entry_id) for entry_id, key in ENTRY_INSERT.run(conn, rows)}
        ids = [by_key[p.key] for p in fresh]
        _write_dependents(conn, sends, fresh, ids, batch)
    for key, entry_id, number in zip(new, ids, numbers, strict=True):
        known[key] = Recorded(entry_id, number, created=True)
        log.info("entry %s recorded (%s, %s)", entry_id, prepared[new[key]].submission.channel,
                 prepared[new[key]].submission.kind)
    first_use = {index: key for key, index in new.items()}
    return [known[p.key] if first_use.get(index) == p.key
            else Recorded(known[p.key].entry_id, known[p.key].record_number, created=False)
            for index, p in enumerate(prepared)]


# Built once: constructing a statement per call costs more than running it.
_ENTRIES = cast(Table, Entry.__table__)
_ENTRY_COLUMNS = ("record_number", "channel", "kind", "form_slug", "received_at", "subject",
                  "body", "search_text", "fields", "status", "idempotency_key", "tags")
ENTRY_INSERT = PreparedInsert(_ENTRIES, _ENTRY_COLUMNS, returning=("id", "idempotency_key"))
_INSERT_ENTRY_OR_NOTHING = PreparedInsert(_ENTRIES, _ENTRY_COLUMNS, returning=("id",),
                                          on_conflict_nothing=("idempotency_key",))
_ENTRY_BY_KEY = select(_ENTRIES.c.id, _ENTRIES.c.record_number).where(
    _ENTRIES.c.idempotency_key == bindparam("k"))
_ENTRIES_BY_KEYS_HEAD = ("SELECT id, record_number, idempotency_key FROM entries "
                         "WHERE idempotency_key IN ")


def _entries_by_keys(conn: Connection, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """(id, record_number, idempotency_key) of the stored entries among ``keys``.

    On the DB-API cursor: a group commit runs it for every batch, and an expanding
    ``IN`` makes SQLAlchemy compile the statement anew for each execution. ``keys``
    is a group commit's batch (at most ``GroupCommit.max_batch``, far under either
    database's limit on parameters).
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
