"""Recording submissions: the durable-first step every channel goes through.

A web form, a polled e-mail and an ingested ``.eml`` all end here: one
transaction writes the entry, the submitter's personal data (apart), the
sealed original bytes with their SHA-256, the "received" event and the
"route" work item. Only after that commit does anything else happen.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from intake.core.pii import Finding
from intake.db import (
    allocate_record_number,
    allocate_record_numbers,
    release_record_number,
)
from intake.db.models import Entry, EntryStatus, Event, Original, Submitter, utcnow
from intake.db.prepared import InsertBatch, PreparedInsert, execute
from intake.jobs.workitems import enqueue_many_in, pending_sends
from intake.services.privacy import detect_places, store_findings_in

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
    """Subject and body exactly as the entry will store them (PII offsets refer to these)."""
    return {"subject": _clean_line(submission.subject, MAX_SUBJECT),
            "body": submission.body[:MAX_BODY]}


@dataclass(frozen=True)
class _Prepared:
    """A submission with what every path computes before writing it."""

    submission: NewSubmission
    digest: str
    key: str
    received_at: datetime
    texts: dict[str, str]

    @classmethod
    def of(cls, submission: NewSubmission) -> _Prepared:
        digest = hashlib.sha256(submission.raw).hexdigest()
        return cls(submission, digest, submission.idempotency_key or f"sha256:{digest}",
                   submission.received_at or utcnow(), stored_texts(submission))

    def entry_row(self, record_number: str) -> dict[str, Any]:
        s = self.submission
        return {"record_number": record_number, "channel": s.channel, "kind": s.kind,
                "form_slug": s.form_slug, "received_at": self.received_at,
                "subject": self.texts["subject"], "body": self.texts["body"],
                "fields": s.fields, "status": EntryStatus.NEW, "idempotency_key": self.key,
                "tags": []}

    def submitter_row(self, entry_id: int) -> dict[str, Any] | None:
        who = self.submission.submitter
        if who.is_empty():
            return None
        return {"entry_id": entry_id, "name": who.name, "email": who.email, "phone": who.phone,
                "postal_address": who.postal_address}

    def original_row(self, entry_id: int) -> dict[str, Any]:
        s = self.submission
        return {"entry_id": entry_id, "content_type": s.content_type, "raw": s.raw,
                "sha256": self.digest, "size": len(s.raw), "received_at": self.received_at}

    def event_row(self, entry_id: int) -> dict[str, Any]:
        s = self.submission
        return {"entry_id": entry_id, "kind": "received", "at": self.received_at,
                "actor": "system", "detail": {"channel": s.channel, "kind": s.kind,
                                              "form": s.form_slug, "sha256": self.digest}}


def prepare(submission: NewSubmission) -> _Prepared:
    """A submission with its digest, idempotency key, time and stored texts."""
    return _Prepared.of(submission)


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
    *, pii_key: bytes | None = None,
    findings: Mapping[str, Sequence[Finding]] | None = None,
    batch: InsertBatch | None = None,
    sends: list[tuple[int, datetime]] | None = None,
) -> Recorded:
    """Store a submission durably in the caller's transaction (idempotent).

    The PII detector's findings in subject and body are stored too (kind,
    place, keyed hash; never the value): ``findings`` when the caller has
    already scanned :func:`stored_texts` (the web form does, to warn), else a
    scan with ``pii_key``.

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
    p = prepare(submission)
    conn, sends = _writing(session, sends)
    record_number = allocate_record_number(conn, record_prefix, p.received_at)
    inserted = _INSERT_ENTRY_OR_NOTHING.run(conn, [p.entry_row(record_number)])
    if not inserted:
        # Stored before (a double click, a re-fetched message, a concurrent writer).
        release_record_number(conn, record_number)
        row = conn.execute(_ENTRY_BY_KEY, {"k": p.key}).one()
        return Recorded(row.id, row.record_number, created=False)
    entry_id = int(inserted[0][0])
    if findings is None and pii_key is not None:
        findings = detect_places(p.texts, pii_key)
    _write_dependents(conn, sends, [p], [entry_id], [findings or {}], batch)
    log.info("entry %s recorded (%s, %s)", entry_id, submission.channel, submission.kind)
    return Recorded(entry_id, record_number, created=True)


def _write_dependents(conn: Connection, sends: list[tuple[int, datetime]],
                      prepared: Sequence[_Prepared],
                      ids: Sequence[int], findings: Sequence[Mapping[str, Sequence[Finding]]],
                      batch: InsertBatch | None = None) -> None:
    """What a new entry comes with: submitter, original, "received" event, PII findings
    and the "route" work item; one INSERT a table for all of ``prepared``, all run
    together (one statement on PostgreSQL), in ``batch`` if given (the caller runs it)."""
    own = batch is None
    batch = InsertBatch() if batch is None else batch
    pairs = list(zip(prepared, ids, strict=True))
    batch.add(SUBMITTER_INSERT, [row for p, i in pairs
                                 if (row := p.submitter_row(i)) is not None])
    batch.add(ORIGINAL_INSERT, [p.original_row(i) for p, i in pairs])
    batch.add(EVENT_INSERT, [p.event_row(i) for p, i in pairs])
    store_findings_in(batch, list(zip(ids, findings, strict=True)))
    enqueue_many_in(batch, sends, [("route", f"route:{i}", i) for i in ids])
    if own:
        batch.run(conn)


def record_submissions(
    session: Session | Connection, submissions: Sequence[NewSubmission], record_prefix: str,
    findings: Sequence[Mapping[str, Sequence[Finding]]],
    batch: InsertBatch | None = None,
    sends: list[tuple[int, datetime]] | None = None,
) -> list[Recorded]:
    """:func:`record_submission` for many at once (a group commit): one statement a table.

    ``findings`` are the caller's scans, one per submission. Duplicates of
    stored entries, or of one earlier in the list, are found first and answer
    with that entry; the new ones get consecutive record numbers. A concurrent
    writer storing the same bytes in between makes the entries' INSERT fail
    (IntegrityError): the caller then stores them one at a time
    (:func:`record_submission` handles that race). ``batch``, ``sends``: as for
    :func:`record_submission`.
    """
    prepared = [prepare(s) for s in submissions]
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
        _write_dependents(conn, sends, fresh, ids, [findings[i] for i in new.values()],
                          batch)
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
                  "body", "fields", "status", "idempotency_key", "tags")
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
EVENT_INSERT = PreparedInsert(cast(Table, Event.__table__),
                              ("entry_id", "kind", "at", "actor", "detail"))
