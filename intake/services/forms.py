"""Public form submissions: the forms configuration, and the process's form writer.

:func:`load_forms` reads ``forms.yaml`` and the survey files it names (the
decisions about them are in :mod:`intake.core.forms`). A validated
submission becomes a :class:`~intake.services.records.NewSubmission`
(:func:`new_submission`: with its uploads, the consent the person ticked and
a status link) that the form writer (:func:`form_writer`) stores with the
record store, the one way in; the page answers only once it is committed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from intake.core.forms import ConsentText, FormConfig, FormsConfig, FormsConfigError
from intake.core.forms import load_forms_config as parse_forms_config
from intake.core.pii import Finding
from intake.core.pii.model import SENSITIVE_KINDS
from intake.core.pii.redact import redact
from intake.db import Database, WriterQueue
from intake.db.models import Channel
from intake.db.writer import GroupCommit
from intake.services.findings import detect_places
from intake.services.records import (
    GivenConsent,
    NewAttachment,
    NewSubmission,
    Recorded,
    SubmitterData,
    record_submissions,
    stored_texts,
)
from intake.settings import Settings

__all__ = [
    "FormSubmission",
    "FormWriter",
    "form_writer",
    "load_forms",
    "load_forms_file",
    "new_submission",
    "packaged_forms_path",
    "scan",
    "without_sensitive",
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
class FormSubmission:
    form: FormConfig
    raw: bytes  # the exact request body
    content_type: str
    subject: str
    body: str
    fields: dict[str, Any]
    submitter: SubmitterData = field(default_factory=SubmitterData)
    uploads: tuple[NewAttachment, ...] = ()  # passed the form's policy; type sniffed
    # The consent the person ticked (None: not ticked), with the bytes that prove it.
    consent: ConsentText | None = None
    consent_evidence: bytes = b""
    # The language the person used the form in: every later page and message uses it.
    language: str = "en"


def new_submission(submission: FormSubmission,
                   findings: Mapping[str, Sequence[Finding]] | None = None) -> NewSubmission:
    """What the record store receives for a form submission (``findings``: :func:`scan`'s),
    with a status link for the page that answers it."""
    fields = dict(submission.fields)
    if submission.uploads:
        # Routing conditions may test attachment names (`attachments` field).
        fields["_attachments"] = [u.filename for u in submission.uploads]
    consent = submission.consent
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
        attachments=submission.uploads,
        consent=None if consent is None else GivenConsent(
            consent.version, consent.text, submission.consent_evidence),
        findings=findings,
        status_link=True,
        language=submission.language,
    )


def scan(submission: FormSubmission, pii_key: bytes) -> dict[str, list[Finding]]:
    """PII findings in the texts as they will be stored: one scan serves both the
    sensitive-data warning and the stored findings (re-based once the P6 values are
    replaced by their markers: :func:`intake.services.records.record_submissions`)."""
    return detect_places(stored_texts(new_submission(submission)), pii_key)


#: What stands where a removed number was ("remove the numbers and send"), by language.
REMOVED_MARK = {"en": "[removed]", "es": "[eliminado]"}


def without_sensitive(submission: FormSubmission, findings: Mapping[str, Sequence[Finding]]
                      ) -> FormSubmission:
    """The submission with what people are asked not to send (the P6 findings) removed,
    for the person who chose "remove the numbers and send".

    Removed everywhere, the sealed original included: the texts hold a "[removed]" mark
    where each value was, the form answers likewise, and what is sealed as the original
    (and as the consent's evidence) is the submission as confirmed (a JSON document of
    the cleaned subject, body and answers), not the request's bytes, which held them.
    """
    mark = REMOVED_MARK.get(submission.language, REMOVED_MARK["en"])
    texts = stored_texts(new_submission(submission))
    cleaned: dict[str, str] = {}
    removed: list[tuple[str, str]] = []
    for place, text in texts.items():
        sensitive = [f for f in findings.get(place, ()) if f.kind in SENSITIVE_KINDS]
        out, last = [], 0
        for r in redact(text, sensitive).redactions:
            out.append(text[last:r.start])
            out.append(mark)
            removed.append((text[r.start:r.end], r.kind))
            last = r.end
        out.append(text[last:])
        cleaned[place] = "".join(out)
    fields = _without(submission.fields, [value for value, _ in removed], mark)
    raw = json.dumps({"subject": cleaned["subject"], "body": cleaned["body"],
                      "fields": fields, "sensitive": "removed"},
                     ensure_ascii=False, sort_keys=True).encode("utf-8")
    return replace(submission, subject=cleaned["subject"], body=cleaned["body"],
                   fields=fields, raw=raw, content_type="application/json",
                   consent_evidence=raw if submission.consent is not None else b"")


def _without(value: Any, found: Sequence[str], mark: str) -> Any:
    """``value`` (form answers, a JSON document) with each of ``found`` replaced by ``mark``."""
    if isinstance(value, str):
        for text in sorted(found, key=len, reverse=True):
            if text:
                value = value.replace(text, mark)
        return value
    if isinstance(value, Mapping):
        return {k: _without(v, found, mark) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without(v, found, mark) for v in value]
    return value


#: The process's one writer of form submissions (see :func:`form_writer`).
FormWriter = GroupCommit[NewSubmission, Recorded]


def form_writer(db: Database, *, record_prefix: str, originals_key: bytes,
                turn_lock: Path | None = None) -> FormWriter:
    """The process's one writer of form submissions: concurrent ones share a commit.

    It stores batches with :func:`record_submissions`. On PostgreSQL every form
    write waits for the record counter's row lock, held by whichever process
    writes: ``turn_lock`` (a file) makes the processes of one host wait for each
    other on it instead, before each takes its batch, so that batch holds
    everyone who queued meanwhile (SQLite's writer turn does the same).
    Correctness never depends on it: the row lock still serialises writers of
    other hosts. It writes on a connection of its own: :meth:`GroupCommit.close`
    gives it back.
    """
    queue = None
    if turn_lock is not None and db.writers is None:
        with suppress(OSError):  # if it cannot be made, WriterQueue says so and goes without
            turn_lock.parent.mkdir(parents=True, exist_ok=True)
        queue = WriterQueue(turn_lock)
    return GroupCommit(db, lambda session, batch: record_submissions(
        session, batch, record_prefix=record_prefix, originals_key=originals_key),
        turn=queue.turn if queue is not None else None, keep_connection=True)
