"""What a submission is, before it is stored: the record store's input values and the part
of storing one that is pure (the PII scan and what follows from it).

No database here (nor anything importing it): the mail intake's worker processes
(:class:`intake.services.mail_prepare.MailPool`) import this module and nothing heavier.
:mod:`intake.services.records` stores what this describes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from intake.core.pii import Finding, detect
from intake.core.pii.at_rest import redact_at_rest, redact_values
from intake.core.rendition import EntryValues, search_text


def detect_places(places: Mapping[str, str], key: bytes) -> dict[str, list[Finding]]:
    """The PII detector's findings in each named text (``{"subject": ..., "body": ...}``)."""
    return {place: detect(text, key=key) for place, text in places.items() if text}


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
class NewAttachment:
    """A file that came with a submission: a form upload or an e-mail part.

    ``content`` is None when it was over the size cap (the sealed original keeps
    it); ``sniffed_type`` comes from the content, never from the name."""

    filename: str
    declared_type: str
    sniffed_type: str
    content: bytes | None
    size: int
    sha256: str
    inline: bool = False
    content_id: str | None = None

    @classmethod
    def of(cls, filename: str, declared_type: str, sniffed_type: str,
           content: bytes) -> NewAttachment:
        return cls(filename, declared_type, sniffed_type, content, len(content),
                   hashlib.sha256(content).hexdigest())


@dataclass(frozen=True)
class GivenConsent:
    """The consent the person ticked: the policy text as shown, and the bytes that prove it."""

    version: str
    text: str
    evidence: bytes


@dataclass(frozen=True)
class NewSubmission:
    """One inbound item, whatever its channel, as the record store takes it."""

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
    attachments: tuple[NewAttachment, ...] = ()
    consent: GivenConsent | None = None
    # The PII detector's findings in :func:`stored_texts` when the caller has scanned them
    # already (the web form does, to warn); else the store scans them.
    findings: Mapping[str, Sequence[Finding]] | None = None
    # Texts scanned for PII but not stored as the entry's (an attachment's text): place ->
    # text. Their findings are stored with the entry's.
    scanned_too: Mapping[str, str] = field(default_factory=dict)
    # Issue the submitter a private status link (shown once: ``Recorded.status_token``).
    status_link: bool = False
    # The submitter's language ("en" or "es"): every later page and message uses it.
    language: str = "en"


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _clean_line(text: str, limit: int) -> str:
    """A one-line field: no CR/LF or other control characters, bounded length."""
    return " ".join(_CONTROL_CHARS.sub(" ", text).split())[:limit]


def stored_texts(submission: NewSubmission) -> dict[str, str]:
    """Subject and body as the PII detector scans them: as the entry stores them but for
    the P6 values, which the store replaces by their markers (re-basing the findings)."""
    return {"subject": _clean_line(submission.subject, MAX_SUBJECT),
            "body": submission.body[:MAX_BODY]}


@dataclass(frozen=True)
class ScannedSubmission:
    """A submission with its PII scan and what follows from it, all of it pure (no
    database, no key but the PII key): :func:`scan_submission` makes it, in a process
    pool if the caller has one (the mail intake does, for a fetched batch), and
    :func:`record_submissions` takes it in place of the submission."""

    submission: NewSubmission
    digest: str
    texts: dict[str, str]  # as stored: the P6 values replaced by their markers
    fields: dict[str, Any]  # likewise
    findings: dict[str, list[Finding]]  # re-based onto ``texts``
    search_text: str  # what the staff search may find it by (no personal data)
    scanned_with_key: bool  # scanned for PII (with a PII key), or not at all


def scan_submission(submission: NewSubmission, pii_key: bytes | None) -> ScannedSubmission:
    """The PII scan of ``submission`` (unless it carries its ``findings``) and the texts,
    fields and search text the entry stores: everything of storing it that is pure."""
    digest = hashlib.sha256(submission.raw).hexdigest()
    findings = submission.findings
    if findings is None:
        findings = detect_places(stored_texts(submission), pii_key) if pii_key else {}
    texts: dict[str, str] = {}
    rebased = {place: list(found) for place, found in findings.items()}
    removed: list[tuple[str, str]] = []
    for place, text in stored_texts(submission).items():
        at_rest = redact_at_rest(text, findings.get(place, ()))
        texts[place] = at_rest.text
        if place in rebased:
            rebased[place] = list(at_rest.findings)
        removed.extend(at_rest.removed)
    who = submission.submitter
    searchable = search_text(
        EntryValues(texts=texts, name=who.name, email=who.email, phone=who.phone,
                    postal_address=who.postal_address),
        # A place never scanned (no key given) is scanned by the renderer.
        {place: rebased[place] for place in texts if place in rebased})
    if submission.scanned_too and pii_key:
        rebased.update(detect_places(submission.scanned_too, pii_key))
    return ScannedSubmission(submission, digest, texts,
                             redact_values(submission.fields, removed), rebased, searchable,
                             pii_key is not None)


