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
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.core.pii import Finding
from intake.db import allocate_record_number
from intake.db.models import Entry, EntryStatus, Event, Original, Submitter, utcnow
from intake.jobs.workitems import add_work_item
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
    """
    digest = hashlib.sha256(submission.raw).hexdigest()
    key = submission.idempotency_key or f"sha256:{digest}"
    existing = session.execute(
        select(Entry.id, Entry.record_number).where(Entry.idempotency_key == key)
    ).first()
    if existing is not None:
        return Recorded(existing.id, existing.record_number, created=False)

    received_at = submission.received_at or utcnow()
    texts = stored_texts(submission)
    if findings is None and pii_key is not None:
        findings = detect_places(texts, pii_key)
    try:
        with session.begin_nested():
            entry = Entry(
                record_number=allocate_record_number(session, record_prefix, received_at),
                channel=submission.channel,
                kind=submission.kind,
                form_slug=submission.form_slug,
                received_at=received_at,
                subject=texts["subject"],
                body=texts["body"],
                fields=submission.fields,
                status=EntryStatus.NEW,
                idempotency_key=key,
                tags=[],
            )
            session.add(entry)
            session.flush()
            if not submission.submitter.is_empty():
                session.add(Submitter(
                    entry_id=entry.id,
                    name=submission.submitter.name,
                    email=submission.submitter.email,
                    phone=submission.submitter.phone,
                    postal_address=submission.submitter.postal_address,
                ))
            session.add(Original(
                entry_id=entry.id,
                content_type=submission.content_type,
                raw=submission.raw,
                sha256=digest,
                size=len(submission.raw),
                received_at=received_at,
            ))
            session.add(Event(
                entry_id=entry.id,
                kind="received",
                at=received_at,
                detail={"channel": submission.channel, "kind": submission.kind,
                        "form": submission.form_slug, "sha256": digest},
            ))
            if findings:
                store_findings(session, entry.id, findings)
            add_work_item(session, "route", dedupe_key=f"route:{entry.id}", entry_id=entry.id)
    except IntegrityError:
        # A concurrent writer stored the same submission first.
        row = session.execute(
            select(Entry.id, Entry.record_number).where(Entry.idempotency_key == key)
        ).first()
        if row is None:
            raise
        return Recorded(row.id, row.record_number, created=False)
    log.info("entry %s recorded (%s, %s)", entry.id, submission.channel, submission.kind)
    return Recorded(entry.id, entry.record_number, created=True)
