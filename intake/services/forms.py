"""Public form submissions: configuration loading and the one durable write.

:func:`load_forms` reads ``forms.yaml`` and the survey files it names (the
decisions about them are in :mod:`intake.core.forms`). :func:`submit_form`
turns a validated submission into the entry (through
:func:`intake.services.records.record_submission`), its attachments, the
consent event the person ticked and the private status link, all in the
caller's one transaction: the web page answers only after it commits.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.core.forms import ConsentText, FormConfig, FormsConfig, FormsConfigError
from intake.core.forms import load_forms_config as parse_forms_config
from intake.core.pii import Finding
from intake.db import PING_AFTER_IDLE_SECONDS, Database, WriterQueue
from intake.db.group import GroupCommit, Job
from intake.db.models import Attachment, Channel, utcnow
from intake.db.prepared import InsertBatch
from intake.services import privacy
from intake.services.privacy import detect_places
from intake.services.records import (
    NewSubmission,
    Recorded,
    SubmitterData,
    entry_sealer,
    record_submission,
    record_submissions,
    stored_texts,
)
from intake.services.records_at_once import (
    AtOnceInput,
    at_once_input,
    can_record_at_once,
    record_at_once,
)
from intake.settings import Settings

log = logging.getLogger("intake.forms")

__all__ = [
    "Confirmation",
    "FormSubmission",
    "Upload",
    "load_forms",
    "load_forms_file",
    "packaged_forms_path",
    "PendingSubmission",
    "FormWriter",
    "form_writer",
    "submit_form",
    "submit_forms",
]


def packaged_forms_path() -> Path:
    return Path(str(resources.files("intake") / "defaults" / "forms.yaml"))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FormsConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormsConfigError([f"{path}: not valid YAML ({type(exc).__name__})"]) from None


def load_forms_file(path: Path) -> FormsConfig:
    """A forms file and the survey files it names (relative to it)."""
    data = _read_yaml(path)
    surveys: dict[str, Any] = {}
    if isinstance(data, dict):
        for form in data.get("forms") or []:
            name = form.get("survey") if isinstance(form, dict) else None
            if isinstance(name, str):
                survey_path = (path.parent / name).resolve()
                if survey_path.is_file():
                    surveys[name] = _read_yaml(survey_path)
    return parse_forms_config(data, str(path), surveys)


def load_forms(settings: Settings) -> FormsConfig:
    return load_forms_file(settings.forms_path or packaged_forms_path())


@dataclass(frozen=True)
class Upload:
    """An attachment that passed the form's policy (type sniffed from its content)."""

    filename: str  # sanitised name as sent
    declared_type: str
    sniffed_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class FormSubmission:
    form: FormConfig
    raw: bytes  # the exact request body
    content_type: str
    subject: str
    body: str
    fields: dict[str, Any]
    submitter: SubmitterData = field(default_factory=SubmitterData)
    uploads: tuple[Upload, ...] = ()
    # The consent the person ticked (None: not ticked), with the bytes that prove it.
    consent: ConsentText | None = None
    consent_evidence: bytes = b""


@dataclass(frozen=True)
class Confirmation:
    entry_id: int
    record_number: str
    status_token: str
    created: bool


def new_submission(submission: FormSubmission) -> NewSubmission:
    """What the record store receives for a form submission."""
    fields = dict(submission.fields)
    if submission.uploads:
        # Routing conditions may test attachment names (`attachments` field).
        fields["_attachments"] = [u.filename for u in submission.uploads]
    return NewSubmission(
        channel=Channel.WEB.value,
        kind=submission.form.kind,
        raw=submission.raw,
        content_type=submission.content_type,
        subject=submission.subject,
        body=submission.body,
        form_slug=submission.form.slug,
        fields=fields,
        submitter=submission.submitter,
    )


def scan(submission: FormSubmission, pii_key: bytes) -> dict[str, list[Finding]]:
    """PII findings in the texts as they will be stored: one scan serves both the
    sensitive-data warning and the stored findings (re-based once the P6 values are
    replaced by their markers: :func:`intake.services.records.prepare`)."""
    return detect_places(stored_texts(new_submission(submission)), pii_key)


@dataclass(frozen=True)
class PendingSubmission:
    """A validated submission and its PII findings, waiting for a group commit.

    ``at_once``: its part of a one-statement batch on PostgreSQL, with its
    status-link ``token``, made by :meth:`FormWriter.write` before it queues.
    """

    submission: FormSubmission
    findings: Mapping[str, Sequence[Finding]]
    at_once: AtOnceInput | None = None
    token: str | None = None


def submit_forms(session: Session | Connection, pending: Sequence[PendingSubmission], *,
                 record_prefix: str, pii_key: bytes, originals_key: bytes,
                 sends: list[tuple[int, datetime]] | None = None) -> list[Confirmation]:
    """:func:`submit_form` for each, in order, in the caller's one transaction.

    Several at once are written with one statement a table
    (:func:`record_submissions`); attachments and consents follow one by one.
    (:class:`FormWriter` writes most batches on PostgreSQL in one statement
    instead, without a session.) On a connection (submissions without
    attachments or consent), ``sends`` collects the new work items' messages.
    """
    if len(pending) == 1:
        only = pending[0]
        return [submit_form(session, only.submission, record_prefix=record_prefix,
                            pii_key=pii_key, originals_key=originals_key,
                            findings=only.findings, sends=sends)]
    # The new entries' rows and the status links: one statement on PostgreSQL.
    batch = InsertBatch()
    recorded = record_submissions(session, [new_submission(p.submission) for p in pending],
                                  record_prefix, [p.findings for p in pending], batch,
                                  sends=sends, originals_key=originals_key)
    tokens = privacy.create_access_links_in(batch, [rec.entry_id for rec in recorded])
    _finish(session, batch)
    for p, rec in zip(pending, recorded, strict=True):
        if rec.created:
            _store_extras(session, rec.entry_id, p.submission, originals_key)
    return [_confirmed(p.submission, rec, token)
            for p, rec, token in zip(pending, recorded, tokens, strict=True)]


def _finish(db: Session | Connection, batch: InsertBatch) -> None:
    if isinstance(db, Connection):
        batch.run(db)
    else:
        batch.run(db.connection())
        db.flush()


def _can_go_at_once(pending: PendingSubmission) -> bool:
    # Attachments and consents are ORM objects (rare); everything else can go at once.
    return not pending.submission.uploads and pending.submission.consent is None


def _at_once_part(dialect: Dialect, pending: PendingSubmission,
                  originals_key: bytes) -> PendingSubmission:
    """``pending`` with its part of a one-statement batch and its status-link token."""
    token = privacy.new_access_tokens(1)[0]
    return replace(pending, token=token, at_once=at_once_input(
        dialect, new_submission(pending.submission), pending.findings,
        privacy.access_token_digest(token), utcnow(), originals_key=originals_key))


#: What the form writer calls with the new "route" work items (id, due) of a batch it
#: committed without a session (:meth:`intake.jobs.system.JobSystem.committed`).
SendCommitted = Callable[[Sequence[tuple[int, datetime]]], None]


class FormWriter(GroupCommit[PendingSubmission, Confirmation]):
    """The process's one writer of form submissions (see :func:`form_writer`).

    A batch of submissions without attachments or consent is written without
    an ORM session. On PostgreSQL it is one statement
    (:func:`intake.services.records_at_once.record_at_once`) on the writer's
    own connection in autocommit mode: what the statement takes of each
    submission is made by :meth:`write` before the submission queues, so the
    writer holding everyone's turn only joins the parts and sends them. A
    batch the statement cannot write (a duplicate of a stored entry, New Year
    inside the batch) is written by :func:`submit_forms` in a session,
    statement a step. On SQLite it is :func:`submit_forms` on a Core
    connection. Either way the new work items' messages go to
    ``send_committed`` once the batch is committed and the turn released.
    """

    def __init__(self, db: Database, *, record_prefix: str, pii_key: bytes,
                 originals_key: bytes, turn_queue: WriterQueue | None = None,
                 send_committed: SendCommitted | None = None) -> None:
        super().__init__(db, lambda session, pending: submit_forms(
            session, pending, record_prefix=record_prefix, pii_key=pii_key,
            originals_key=originals_key),
            turn=turn_queue.turn if turn_queue is not None else None)
        self.record_prefix = record_prefix
        self.pii_key = pii_key
        self.originals_key = originals_key
        self.turn_queue = turn_queue
        self.send_committed = send_committed
        self._at_once = db.dialect == "postgresql"
        self._conn: Connection | None = None
        self._conn_used = 0.0

    def write(self, item: PendingSubmission) -> Confirmation:
        # What a one-statement batch takes of the submission is made here, before it
        # queues: not by the writer that holds everyone's turn.
        if self._at_once and _can_go_at_once(item):
            item = _at_once_part(self.db.engine.dialect, item, self.originals_key)
        return super().write(item)

    def _commit_once(self, batch: list[Job[PendingSubmission, Confirmation]]) -> None:
        if not all(_can_go_at_once(job.item) for job in batch):
            super()._commit_once(batch)  # attachments, consents: ORM rows, in a session
            return
        if not self._at_once:
            self._commit_on_connection(batch)
            return
        parts = [job.item.at_once for job in batch if job.item.at_once is not None]
        if len(parts) != len(batch) or not can_record_at_once(self.db.dialect, parts):
            super()._commit_once(batch)
            return
        outcomes = record_at_once(self._connection(), parts, self.record_prefix)
        if outcomes is None:  # the steps write it (and answer a duplicate with its entry)
            super()._commit_once(batch)
            return
        self._done(batch, [_confirmed(job.item.submission, o.recorded, job.item.token or "")
                           for job, o in zip(batch, outcomes, strict=True)])
        now = utcnow()
        self._send([(o.work_item_id, now) for o in outcomes if o.work_item_id is not None])

    def _commit_on_connection(self, batch: list[Job[PendingSubmission, Confirmation]]) -> None:
        """SQLite: the batch statement a step, in a transaction of the writer's own Core
        connection (the database's writer turn is held: see :class:`GroupCommit`), without
        an ORM session."""
        sends: list[tuple[int, datetime]] = []
        with self._connection().begin() as transaction:  # BEGIN IMMEDIATE
            results = submit_forms(transaction.connection, [job.item for job in batch],
                                   record_prefix=self.record_prefix, pii_key=self.pii_key,
                                   originals_key=self.originals_key, sends=sends)
        self._done(batch, results)
        self._send(sends)

    def _send(self, sends: list[tuple[int, datetime]]) -> None:
        """Hand the committed work items' messages on, once the turn is released: the
        next writer need not wait for the broker."""
        if not sends or self.send_committed is None:
            return
        send = self.send_committed
        turns = self.turn_queue if self.turn_queue is not None else self.db.writers
        if turns is not None:
            turns.after_turn(lambda: send(sends))
        else:
            send(sends)

    def _connection(self) -> Connection:
        """The writer's own connection (in autocommit mode on PostgreSQL): only the leader
        of a batch uses it. One idle for a while goes back to the pool, which tests it
        before it is used again (see :func:`intake.db.make_engine`); one that failed is
        replaced."""
        conn, now = self._conn, time.monotonic()
        if conn is not None and (conn.invalidated or conn.closed or conn.in_transaction()
                                 or now - self._conn_used >= PING_AFTER_IDLE_SECONDS):
            conn.close()
            conn = None
        if conn is None:
            conn = self.db.engine.connect()
            if self._at_once:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        self._conn_used = now
        return conn

    def close(self) -> None:
        """Give the writer's connection back to the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def form_writer(db: Database, *, record_prefix: str, pii_key: bytes, originals_key: bytes,
                turn_lock: Path | None = None,
                send_committed: SendCommitted | None = None) -> FormWriter:
    """The process's one writer of form submissions: concurrent ones share a commit.

    On PostgreSQL every form write waits for the record counter's row lock, held
    by whichever process writes: ``turn_lock`` (a file) makes the processes of
    one host wait for each other on it instead, before each takes its batch, so
    that batch holds everyone who queued meanwhile (SQLite's writer turn does the
    same). Correctness never depends on it: the row lock still serialises writers
    of other hosts. ``send_committed`` sends the messages of the work items that
    a batch written without a session created (see :class:`FormWriter`); without
    it those items wait in the database for the sweeper.
    """
    queue = None
    if turn_lock is not None and db.writers is None:
        with suppress(OSError):  # if it cannot be made, WriterQueue says so and goes without
            turn_lock.parent.mkdir(parents=True, exist_ok=True)
        queue = WriterQueue(turn_lock)
    return FormWriter(db, record_prefix=record_prefix, pii_key=pii_key,
                      originals_key=originals_key, turn_queue=queue,
                      send_committed=send_committed)


def submit_form(session: Session | Connection, submission: FormSubmission, *,
                record_prefix: str, pii_key: bytes, originals_key: bytes,
                findings: Mapping[str, Sequence[Finding]] | None = None,
                sends: list[tuple[int, datetime]] | None = None) -> Confirmation:
    """Store everything about one form submission in the caller's transaction.

    Idempotent on the raw bytes: the same page sent twice (a double click, a
    reload) is one entry; consent and attachments are stored once, and a new
    status link is issued for the page being answered. ``sends``: as for
    :func:`submit_forms`.
    """
    batch = InsertBatch()
    recorded = record_submission(session, new_submission(submission), record_prefix,
                                 pii_key=pii_key, originals_key=originals_key,
                                 findings=findings, batch=batch, sends=sends)
    token = privacy.create_access_links_in(batch, [recorded.entry_id])[0]
    _finish(session, batch)
    if recorded.created:
        _store_extras(session, recorded.entry_id, submission, originals_key)
    return _confirmed(submission, recorded, token)


def _store_extras(db: Session | Connection, entry_id: int, submission: FormSubmission,
                  originals_key: bytes) -> None:
    """A new entry's attachments, sealed under its key, and the consent the person ticked
    (ORM rows: in a session only; after the entry's key row is written)."""
    if not submission.uploads and submission.consent is None:
        return
    if not isinstance(db, Session):
        raise TypeError("attachments and consents are written in a session")
    session = db
    if submission.uploads:
        seal = entry_sealer(session, entry_id, originals_key)
        for upload in submission.uploads:
            session.add(Attachment(
                entry_id=entry_id, filename=upload.filename,
                declared_type=upload.declared_type[:128], sniffed_type=upload.sniffed_type,
                size=len(upload.data), sha256=upload.sha256,
                content=seal(upload.data, upload.sha256),
            ))
    if submission.consent is not None:
        privacy.ensure_policy_text(session, submission.consent.version,
                                   submission.consent.text)
        privacy.record_consent(
            session, entry_id=entry_id, action=ConsentAction.GRANT,
            purpose=Purpose.SHARE_IDENTITY, recipient_class="agency",
            policy_version=submission.consent.version, method=ConsentMethod.WEB_CHECKBOX,
            evidence=submission.consent_evidence,
        )


def _confirmed(submission: FormSubmission, recorded: Recorded, token: str) -> Confirmation:
    log.info("form %s: entry %s %s", submission.form.slug, recorded.entry_id,
             "recorded" if recorded.created else "was already recorded")
    return Confirmation(recorded.entry_id, recorded.record_number, token, recorded.created)
