"""Recording submissions: the durable-first step every channel goes through.

A web form, a polled e-mail and an ingested ``.eml`` all end here: one
transaction writes the entry, the submitter's personal data (apart), the
sealed original bytes with their SHA-256, the "received" event and the
"route" work item. Only after that commit does anything else happen.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from intake.core.pii import Finding
from intake.db import allocate_record_number, insert_or_nothing, release_record_number
from intake.db.models import Entry, EntryStatus, Event, Original, Submitter, utcnow
from intake.jobs.workitems import enqueue
from intake.services.privacy import detect_places, store_findings

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


def _clean_line(text: str, limit: int) -> str:
    """A one-line field: no CR/LF or other control characters, bounded length."""
    cleaned = "".join(" " if (ord(c) < 32 or c == "\x7f") else c for c in text)
    return " ".join(cleaned.split())[:limit]


def stored_texts(submission: NewSubmission) -> dict[str, str]:
    """Subject and body exactly as the entry will store them (PII offsets refer to these)."""
    return {"subject": _clean_line(submission.subject, MAX_SUBJECT),
            "body": submission.body[:MAX_BODY]}


def record_submission(
    session: Session, submission: NewSubmission, record_prefix: str,
    *, pii_key: bytes | None = None,
    findings: Mapping[str, Sequence[Finding]] | None = None,
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
    """
    digest = hashlib.sha256(submission.raw).hexdigest()
    key = submission.idempotency_key or f"sha256:{digest}"
    received_at = submission.received_at or utcnow()
    texts = stored_texts(submission)
    conn = session.connection()
    record_number = allocate_record_number(conn, record_prefix, received_at)
    entry_id = conn.execute(_INSERT_ENTRY[conn.dialect.name], {
        "record_number": record_number, "channel": submission.channel,
        "kind": submission.kind, "form_slug": submission.form_slug,
        "received_at": received_at, "subject": texts["subject"], "body": texts["body"],
        "fields": submission.fields, "status": EntryStatus.NEW, "idempotency_key": key,
        "tags": [],
    }).scalar_one_or_none()
    if entry_id is None:
        # Stored before (a double click, a re-fetched message, a concurrent writer).
        release_record_number(conn, record_number)
        row = conn.execute(_ENTRY_BY_KEY, {"k": key}).one()
        return Recorded(row.id, row.record_number, created=False)

    if findings is None and pii_key is not None:
        findings = detect_places(texts, pii_key)
    who = submission.submitter
    if not who.is_empty():
        conn.execute(_INSERT_SUBMITTER, {
            "entry_id": entry_id, "name": who.name, "email": who.email, "phone": who.phone,
            "postal_address": who.postal_address})
    conn.execute(_INSERT_ORIGINAL, {
        "entry_id": entry_id, "content_type": submission.content_type, "raw": submission.raw,
        "sha256": digest, "size": len(submission.raw), "received_at": received_at})
    conn.execute(_INSERT_EVENT, {
        "entry_id": entry_id, "kind": "received", "at": received_at, "actor": "system",
        "detail": {"channel": submission.channel, "kind": submission.kind,
                   "form": submission.form_slug, "sha256": digest}})
    if findings:
        store_findings(session, entry_id, findings)
    enqueue(session, "route", dedupe_key=f"route:{entry_id}", entry_id=entry_id, connection=conn)
    log.info("entry %s recorded (%s, %s)", entry_id, submission.channel, submission.kind)
    return Recorded(entry_id, record_number, created=True)


# Built once: constructing a statement per call costs more than running it.
_ENTRIES = cast(Table, Entry.__table__)
_INSERT_ENTRY = {dialect: insert_or_nothing(dialect, _ENTRIES, "idempotency_key")
                 .returning(_ENTRIES.c.id) for dialect in ("sqlite", "postgresql")}
_ENTRY_BY_KEY = select(_ENTRIES.c.id, _ENTRIES.c.record_number).where(
    _ENTRIES.c.idempotency_key == bindparam("k"))
_INSERT_SUBMITTER = insert(Submitter)
_INSERT_ORIGINAL = insert(Original)
_INSERT_EVENT = insert(Event)
