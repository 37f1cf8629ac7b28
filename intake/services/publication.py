"""The public records: what is published, the publish gate, the records officers' actions.

- :func:`published_entries` is the ONE eligibility filter of everything the
  public sees (the listing, search, exports, a record's page): an entry is
  public only while its ``publications`` row says ``published``.
- :func:`public_page` / :func:`public_record` answer the portal.
- :func:`approve`, :func:`withhold`, :func:`lift_withhold`, :func:`unpublish`,
  :func:`add_mark`, :func:`release_attachment` and :func:`release_value` are the
  records officer's actions; each writes an event on the entry's timeline and a
  row in the access log (never the marked or released text itself: it may be
  personal data).
- :func:`release_value` releases ONE automatic redaction of the public rendition
  under a cited law: through the disclosure gate (``legal-obligation`` to the
  public, P9), so the ledger records it; only an allowed decision releases.
- :func:`schedule_auto_publish` (after routing) queues a ``publish`` work item
  for the day an ``auto_after`` rule allows publication; :func:`publish_due`
  performs it through the same decision (:func:`intake.core.publication.
  publish_decision`).

Services only flush; the caller commits.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path

import yaml
from sqlalchemy import Select, func, literal, literal_column, select, text, tuple_
from sqlalchemy.orm import Session

from intake.core.consent import Purpose
from intake.core.disclosure import Decision, Recipient
from intake.core.pii import SENSITIVE_KINDS
from intake.core.publication import (
    Mark,
    PublishDecision,
    PublishFacts,
    PublishMode,
    RecordsConfig,
    RecordsConfigError,
    check_mark,
    load_records_config,
    publish_decision,
)
from intake.core.rendition import (
    RELEASABLE_KINDS,
    RELEASED,
    Release,
    Rendition,
    Segment,
    email_pattern,
)
from intake.db.base import UTCDateTime
from intake.db.models import (
    Attachment,
    Disclosure,
    Entry,
    Event,
    PiiFinding,
    WorkItem,
    utcnow,
)
from intake.db.publication_models import AttachmentRelease, Publication, RedactionMark
from intake.db.staff_models import StaffAccount
from intake.services import automail
from intake.services.gate import DisclosureRequest, disclose
from intake.services.inbox import actor_of, log_access
from intake.services.renditions import (
    Audience,
    entry_values,
    render_entry,
    render_many_subjects,
)
from intake.services.work import enqueue
from intake.settings import Settings

__all__ = [
    "PUBLISHED",
    "UNPUBLISHED",
    "WITHHELD",
    "PublicQuery",
    "PublicRecord",
    "PublicRow",
    "ReviewError",
    "add_mark",
    "approve",
    "load_records",
    "publication_of",
    "public_page",
    "public_record",
    "published_entries",
    "release_attachment",
    "release_value",
    "review_queue",
    "schedule_auto_publish",
    "unpublish",
    "withhold",
]

PUBLISHED = "published"
WITHHELD = "withheld"
UNPUBLISHED = "unpublished"
DESTROYED = "destroyed"  # retention destroyed the entry's personal data (services/retention)
PUBLISH_WORK = "publish"
PAGE_SIZE = 20
EXPORT_LIMIT = 1000
MAX_COMMENT = 2000
MAX_QUERY = 200
_WORD = re.compile(r"\w+")


class ReviewError(ValueError):
    """An action that cannot be done as asked; the message is shown to the officer."""


# -- the configuration ----------------------------------------------------------------------


def packaged_records_path() -> Path:
    return Path(str(resources.files("intake") / "defaults" / "records.yaml"))


def load_records_file(path: Path) -> RecordsConfig:
    """Read and validate a records file; :class:`RecordsConfigError` with file:line errors."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordsConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise RecordsConfigError([f"{where}: not valid YAML "
                                  f"({getattr(exc, 'problem', None) or 'syntax'})"]) from None
    return load_records_config(data, str(path))


def load_records(settings: Settings) -> RecordsConfig:
    return load_records_file(settings.records_path or packaged_records_path())


# -- the one eligibility filter -------------------------------------------------------------


def published_entries() -> Select[Publication]:
    """The entries the public may see: every public query starts here."""
    return select(Publication).where(Publication.state == PUBLISHED)


# -- the public listing ---------------------------------------------------------------------


@dataclass(frozen=True)
class PublicQuery:
    q: str = ""
    agency: str | None = None
    channel: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class PublicRow:
    record_number: str
    received_at: datetime
    channel: str
    agency_id: str | None
    subject: str


def _encode_cursor(received_at: datetime, entry_id: int) -> str:
    raw = f"{received_at.astimezone(UTC).isoformat()}|{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        parsed = datetime.fromisoformat(when)
        return (parsed.astimezone(UTC), int(ident)) if parsed.tzinfo is not None else None
    except (ValueError, UnicodeDecodeError):
        return None


def _fts5_query(query: str) -> str | None:
    words = _WORD.findall(query)[:16]
    return " ".join('"' + w + '"' for w in words) if words else None


def _filtered(session: Session, query: PublicQuery) -> Select[Publication] | None:
    """The published entries matching ``query`` (None: a search that cannot match)."""
    stmt = published_entries()
    if query.agency:
        stmt = stmt.where(Publication.agency_id == query.agency)
    if query.channel:
        stmt = stmt.where(Publication.channel == query.channel)
    if query.date_from:
        stmt = stmt.where(Publication.received_at >= datetime.combine(query.date_from, time.min,
                                                                      tzinfo=UTC))
    if query.date_to and query.date_to < date.max:
        stmt = stmt.where(Publication.received_at < datetime.combine(
            query.date_to + timedelta(days=1), time.min, tzinfo=UTC))
    q = query.q.strip()[:MAX_QUERY]
    if q:
        if not _WORD.search(q):
            return None
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.where(literal_column("publications.search_vector").op("@@")(
                func.websearch_to_tsquery("english", q)))
        else:
            match = _fts5_query(q)
            if match is None:
                return None
            stmt = stmt.where(text(
                "publications.entry_id IN (SELECT rowid FROM publications_fts "
                "WHERE publications_fts MATCH :fts)").bindparams(fts=match))
    return stmt


def _row(p: Publication) -> PublicRow:
    return PublicRow(p.record_number, p.received_at, p.channel, p.agency_id, p.public_subject)


def public_page(session: Session, query: PublicQuery, limit: int = PAGE_SIZE
                ) -> tuple[list[PublicRow], str | None]:
    """One page of published entries, newest first, and the cursor of the next page."""
    stmt = _filtered(session, query)
    if stmt is None:
        return [], None
    if query.cursor:
        after = _decode_cursor(query.cursor)
        if after is not None:
            when, ident = after
            # A row comparison: PostgreSQL seeks the index with it (an OR of the two
            # columns is a filter, read from the top of the index down to the cursor).
            stmt = stmt.where(tuple_(Publication.received_at, Publication.entry_id)
                              < tuple_(literal(when, UTCDateTime()), literal(ident)))
    stmt = stmt.order_by(Publication.state, Publication.received_at.desc(),
                         Publication.entry_id.desc()).limit(limit + 1)
    found = list(session.scalars(stmt))
    rows = [_row(p) for p in found[:limit]]
    cursor = _encode_cursor(found[limit - 1].received_at, found[limit - 1].entry_id) \
        if len(found) > limit else None
    return rows, cursor


def public_export(session: Session, query: PublicQuery, limit: int = EXPORT_LIMIT
                  ) -> tuple[list[PublicRow], str | None]:
    """What :func:`public_page` lists, ``limit`` rows at a time (the exports)."""
    return public_page(session, query, limit)


# -- one public record ----------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineStep:
    what: str  # received | routed | answered | closed
    at: datetime
    agency_id: str | None = None


@dataclass(frozen=True)
class PublicRecord:
    record_number: str
    received_at: datetime
    channel: str
    agency_id: str | None
    rendition: Rendition
    timeline: tuple[TimelineStep, ...]
    attachments: tuple[tuple[int, str, int], ...]  # (id, filename as marked, size)


def _marks(session: Session, entry_id: int) -> list[Mark]:
    return [Mark(m.how, m.pattern, m.reason_code, m.place, m.start, m.end)
            for m in session.scalars(select(RedactionMark).where(
                RedactionMark.entry_id == entry_id).order_by(RedactionMark.id))]


def _attachment_names(session: Session, entry_id: int, released_only: bool
                      ) -> dict[str, str]:
    stmt = select(Attachment.id, Attachment.filename).where(Attachment.entry_id == entry_id)
    if released_only:
        stmt = stmt.join(AttachmentRelease, AttachmentRelease.attachment_id == Attachment.id)
    return {f"attachment:{a}": name for a, name in session.execute(stmt.order_by(Attachment.id))}


RELEASE_EVENT = "value-released"
RELEASE_NATURE = "records-release"


def public_recipient(record_number: str) -> Recipient:
    """The recipient of a release under law: the public, on the record's portal page."""
    return Recipient(kind="public", id="public-records-portal",
                     name="The public (public records portal)",
                     address=f"/records/{record_number}")


def _releases(session: Session, entry_id: int) -> list[Release]:
    """The values released under law for this entry: each a ``value-released`` event (where,
    which kind; never the value) whose ledger row is an allowed legal-obligation
    disclosure to the public."""
    found = {int(e.detail["disclosure_id"]): e.detail for e in session.scalars(
        select(Event).where(Event.entry_id == entry_id, Event.kind == RELEASE_EVENT)
        .order_by(Event.id)) if isinstance(e.detail.get("disclosure_id"), int)}
    if not found:
        return []
    ledger = {row.id: row for row in session.scalars(select(Disclosure).where(
        Disclosure.id.in_(list(found)), Disclosure.entry_id == entry_id,
        Disclosure.allowed.is_(True), Disclosure.purpose == Purpose.LEGAL.value,
        Disclosure.recipient_kind == "public", Disclosure.nature == RELEASE_NATURE))}
    releases: list[Release] = []
    for disclosure_id, detail in found.items():
        row = ledger.get(disclosure_id)
        place, kind = detail.get("place"), detail.get("kind")
        start, end = detail.get("start"), detail.get("end")
        if row is None or not isinstance(place, str) or not isinstance(kind, str) \
                or not isinstance(start, int) or not isinstance(end, int):
            continue
        releases.append(Release(place, start, end, kind))
    return releases


def public_rendition(session: Session, entry: Entry, relay_domain: str,
                     extra: Mapping[str, str] | None = None,
                     releases: Sequence[Release] | None = None) -> Rendition:
    """The entry as the public sees it: every finding, contact trace and mark removed,
    but the values released under law. ``extra``: more texts by place (the released
    attachments' names); ``releases``: instead of the recorded ones (a trial)."""
    return render_entry(session, entry, Audience.PUBLIC, agency_id=None,
                        relay_domain=relay_domain, thread=False, extra=extra,
                        marks=_marks(session, entry.id),
                        releases=_releases(session, entry.id) if releases is None
                        else releases)


def _public_timeline(session: Session, entry: Entry) -> tuple[TimelineStep, ...]:
    steps: list[TimelineStep] = []
    answered = False
    for event in session.scalars(select(Event).where(Event.entry_id == entry.id)
                                 .order_by(Event.id)):
        if event.kind == "received":
            steps.append(TimelineStep("received", event.at))
        elif event.kind in ("routed", "rerouted"):
            steps.append(TimelineStep("routed", event.at, str(event.detail.get("agency") or "")))
        elif event.kind == "reply-written" and event.detail.get("allowed") and not answered:
            answered = True
            steps.append(TimelineStep("answered", event.at))
        elif event.kind == "status-changed" and event.detail.get("to") == "closed":
            steps.append(TimelineStep("closed", event.at))
    return tuple(steps)


def _released_attachments(session: Session, entry_id: int
                          ) -> list[tuple[Attachment, AttachmentRelease]]:
    return [(a, r) for a, r in session.execute(
        select(Attachment, AttachmentRelease)
        .join(AttachmentRelease, AttachmentRelease.attachment_id == Attachment.id)
        .where(AttachmentRelease.entry_id == entry_id).order_by(Attachment.id))]


def public_record(session: Session, record_number: str, relay_domain: str
                  ) -> PublicRecord | None:
    """The published entry with this number; None for unknown, unpublished and withheld."""
    if len(record_number) > 32:
        return None
    publication = session.scalar(published_entries().where(
        Publication.record_number == record_number))
    if publication is None:
        return None
    entry = session.get(Entry, publication.entry_id)
    if entry is None:
        return None
    released = _released_attachments(session, entry.id)
    rendition = public_rendition(session, entry, relay_domain, extra={
        f"attachment:{a.id}": a.filename for a, _ in released})
    attachments = tuple((a.id, rendition.text(f"attachment:{a.id}") or "attachment", a.size)
                        for a, _ in released)
    return PublicRecord(entry.record_number, entry.received_at, entry.channel,
                        entry.agency_id, rendition, _public_timeline(session, entry),
                        attachments)


def released_attachment(session: Session, record_number: str, attachment_id: int,
                        relay_domain: str) -> tuple[int, str] | None:
    """``(entry id, public name)`` of a released attachment of a published entry; None
    otherwise (unknown, unpublished, withheld, not released: the same answer)."""
    publication = session.scalar(published_entries().where(
        Publication.record_number == record_number))
    if publication is None:
        return None
    entry = session.get(Entry, publication.entry_id)
    names = _attachment_names(session, publication.entry_id, released_only=True)
    place = f"attachment:{attachment_id}"
    if entry is None or place not in names:
        return None
    name = public_rendition(session, entry, relay_domain, extra={place: names[place]}
                            ).text(place)
    return entry.id, name or "attachment"


# -- the publish gate -----------------------------------------------------------------------


def publication_of(session: Session, entry_id: int) -> Publication | None:
    return session.get(Publication, entry_id)


def facts_for(session: Session, entry: Entry, config: RecordsConfig, *,
              reviewed: bool = False) -> PublishFacts:
    publication = publication_of(session, entry.id)
    high = session.scalar(select(func.count()).select_from(PiiFinding).where(
        PiiFinding.entry_id == entry.id, PiiFinding.severity == "high")) or 0
    attachments = session.scalar(select(func.count()).select_from(Attachment).where(
        Attachment.entry_id == entry.id)) or 0
    return PublishFacts(
        rule=config.rule_for(form_slug=entry.form_slug, agency_id=entry.agency_id,
                             channel=entry.channel),
        received_at=entry.received_at,
        reviewed=reviewed or (publication is not None and publication.reviewed_at is not None
                              and publication.state == PUBLISHED),
        withheld=publication is not None and publication.state == WITHHELD,
        destroyed=publication is not None and publication.state == DESTROYED,
        high_findings=int(high), attachments=int(attachments),
        automatic=automail.is_automatic(session, entry.id))


def forget(session: Session, entry_ids: Sequence[int], now: datetime | None = None) -> None:
    """Retention destroyed these entries' personal data: take them off the portal for good.

    The public copy (subject and words, and with them the search index), the marks'
    patterns and comments (a literal mark may be a name) and the attachment releases go;
    the state becomes ``destroyed``, which the publish gate refuses, so neither an officer
    nor an ``auto_after`` item can publish the blanked entry again.
    """
    ids = sorted(set(entry_ids))
    if not ids:
        return
    now = now or utcnow()
    for entry in session.scalars(select(Entry).where(Entry.id.in_(ids))):
        publication = _upsert(session, entry, DESTROYED, now)
        publication.public_subject = publication.public_text = ""
        publication.published_at = None
    for mark in session.scalars(select(RedactionMark).where(RedactionMark.entry_id.in_(ids))):
        mark.pattern = mark.comment = ""
    for release in session.scalars(select(AttachmentRelease)
                                   .where(AttachmentRelease.entry_id.in_(ids))):
        session.delete(release)
    session.flush()


def _public_words(rendition: Rendition) -> str:
    words = [seg.text for place in ("subject", "body")
             for seg in rendition.segments.get(place, ()) if not seg.removed]
    return " ".join(" ".join(words).split())


def _upsert(session: Session, entry: Entry, state: str, now: datetime) -> Publication:
    publication = publication_of(session, entry.id)
    if publication is None:
        publication = Publication(entry_id=entry.id, record_number=entry.record_number,
                                  received_at=entry.received_at, channel=entry.channel,
                                  public_subject="", public_text="", state=state,
                                  updated_at=now)
        session.add(publication)
    publication.state = state
    publication.agency_id = entry.agency_id
    publication.updated_at = now
    return publication


def _publish(session: Session, entry: Entry, actor: str, relay_domain: str, now: datetime,
             reason: str, *, reviewed: bool) -> None:
    publication = _upsert(session, entry, PUBLISHED, now)
    rendition = public_rendition(session, entry, relay_domain)
    publication.public_subject = rendition.subject
    publication.public_text = _public_words(rendition)
    publication.published_at = now
    publication.reason_code = publication.citation = None
    if reviewed:
        publication.reviewed_at, publication.reviewed_by = now, actor
    session.add(Event(entry_id=entry.id, kind="published", at=now, actor=actor,
                      detail={"reason": reason}))


def _refresh(session: Session, entry: Entry, relay_domain: str) -> None:
    """Make the stored public words follow the entry's marks, if it is published."""
    publication = publication_of(session, entry.id)
    if publication is None or publication.state != PUBLISHED:
        return
    rendition = public_rendition(session, entry, relay_domain)
    publication.public_subject = rendition.subject
    publication.public_text = _public_words(rendition)
    publication.agency_id = entry.agency_id
    publication.updated_at = utcnow()


def approve(session: Session, user: StaffAccount, entry: Entry, config: RecordsConfig,
            relay_domain: str, now: datetime | None = None) -> PublishDecision:
    """Review and publish the entry if the gate allows it; the decision either way."""
    now = now or utcnow()
    decision = publish_decision(facts_for(session, entry, config, reviewed=True), now)
    log_access(session, user, entry.id, "review:publish",
               {"allowed": str(decision.allowed), "reason": decision.reason})
    if not decision.allowed:
        return decision
    _publish(session, entry, actor_of(user), relay_domain, now, decision.reason,
             reviewed=True)
    return decision


def _comment(comment: str) -> str:
    comment = comment.strip()
    if not comment:
        raise ReviewError("A comment is required.")
    if len(comment) > MAX_COMMENT:
        raise ReviewError(f"The comment is longer than {MAX_COMMENT} characters.")
    return comment


def withhold(session: Session, user: StaffAccount, entry: Entry, config: RecordsConfig,
             reason_code: str, comment: str) -> None:
    """Withhold the entry from the public under the reason code's citation."""
    reason = config.reasons.get(reason_code)
    if reason is None:
        raise ReviewError("Choose a reason.")
    comment = _comment(comment)
    now = utcnow()
    publication = _upsert(session, entry, WITHHELD, now)
    publication.reason_code, publication.citation = reason.code, reason.citation
    publication.public_subject = publication.public_text = ""
    publication.published_at = None
    session.add(Event(entry_id=entry.id, kind="withheld", at=now, actor=actor_of(user),
                      detail={"reason_code": reason.code, "citation": reason.citation}))
    log_access(session, user, entry.id, "review:withhold",
               {"reason_code": reason.code, "citation": reason.citation, "comment": comment})


def lift_withhold(session: Session, user: StaffAccount, entry: Entry, comment: str) -> None:
    publication = publication_of(session, entry.id)
    if publication is None or publication.state != WITHHELD:
        raise ReviewError("The entry is not withheld.")
    comment = _comment(comment)
    now = utcnow()
    publication.state, publication.updated_at = UNPUBLISHED, now
    session.add(Event(entry_id=entry.id, kind="withhold-lifted", at=now, actor=actor_of(user),
                      detail={"reason_code": publication.reason_code}))
    log_access(session, user, entry.id, "review:lift-withhold", {"comment": comment})


def unpublish(session: Session, user: StaffAccount, entry: Entry, comment: str) -> None:
    publication = publication_of(session, entry.id)
    if publication is None or publication.state != PUBLISHED:
        raise ReviewError("The entry is not published.")
    comment = _comment(comment)
    now = utcnow()
    publication.state, publication.updated_at = UNPUBLISHED, now
    publication.public_subject = publication.public_text = ""
    publication.published_at = None
    session.add(Event(entry_id=entry.id, kind="unpublished", at=now, actor=actor_of(user),
                      detail={}))
    log_access(session, user, entry.id, "review:unpublish", {"comment": comment})


def entry_places(session: Session, entry: Entry) -> dict[str, str]:
    """The texts a mark may cover, by place (as stored: span offsets refer to them)."""
    values = entry_values(session, entry, thread=False)
    places = dict(values.texts)
    places.update(_attachment_names(session, entry.id, released_only=False))
    for name, raw in values.fields.items():
        if isinstance(name, str) and not name.startswith("_") and isinstance(raw, str):
            places[f"field:{name}"] = raw
    return places


def add_mark(session: Session, user: StaffAccount, entry: Entry, config: RecordsConfig,
             relay_domain: str, *, how: str, pattern: str, reason_code: str, comment: str,
             place: str | None = None, start: int | None = None, end: int | None = None,
             attachment_id: int | None = None) -> RedactionMark:
    """Add a redaction mark (entry texts, or an attachment's public name)."""
    comment = _comment(comment)
    if reason_code not in config.reasons:
        raise ReviewError("Choose a reason.")
    if attachment_id is not None:
        # An attachment's mark covers its name (what the record's page shows of it).
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.entry_id != entry.id:
            raise ReviewError("No such attachment.")
        place = f"attachment:{attachment_id}"
    elif place and place.startswith("attachment:"):
        raise ReviewError("Choose the attachment scope to mark an attachment.")
    value = Mark(how, pattern, reason_code, place or None, start, end)
    problem = check_mark(value, entry_places(session, entry), config.reasons)
    if problem is not None:
        raise ReviewError(MARK_PROBLEMS.get(problem, problem))
    mark = RedactionMark(entry_id=entry.id,
                         scope="attachment" if attachment_id is not None else "entry",
                         attachment_id=attachment_id, how=how,
                         pattern=pattern if how != "span" else "",
                         place=place or None, start=start, end=end,
                         reason_code=reason_code, comment=comment,
                         created_by=actor_of(user), created_at=utcnow())
    session.add(mark)
    session.flush()
    # The event names the mark, never the text it covers (it may be personal data).
    session.add(Event(entry_id=entry.id, kind="redaction-marked", actor=actor_of(user),
                      detail={"mark_id": mark.id, "scope": mark.scope, "how": mark.how,
                              "place": mark.place, "reason_code": reason_code}))
    log_access(session, user, entry.id, "review:mark",
               {"mark_id": str(mark.id), "reason_code": reason_code, "comment": comment})
    _refresh(session, entry, relay_domain)
    return mark


MARK_PROBLEMS = {
    "unknown-reason": "Choose a reason.",
    "unknown-kind": "Choose literal text, a regular expression or a span.",
    "unknown-place": "That part of the entry does not exist.",
    "span-out-of-range": "The span's start and end must lie inside that text, start before end.",
    "pattern-length": "Give the text or expression to mark (at most 200 characters).",
    "invalid-regex": "That regular expression is not valid.",
    "regex-matches-empty": "That regular expression matches empty text.",
    "no-match": "Nothing in the entry matches; no mark added.",
}


def release_attachment(session: Session, user: StaffAccount, entry: Entry,
                       attachment_id: int, comment: str) -> None:
    """Release an attachment to the public (shown on the record's page once published)."""
    comment = _comment(comment)
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.entry_id != entry.id:
        raise ReviewError("No such attachment.")
    if session.get(AttachmentRelease, attachment_id) is not None:
        raise ReviewError("The attachment is already released.")
    session.add(AttachmentRelease(attachment_id=attachment_id, entry_id=entry.id,
                                  released_by=actor_of(user), released_at=utcnow()))
    session.add(Event(entry_id=entry.id, kind="attachment-released", actor=actor_of(user),
                      detail={"attachment_id": attachment_id}))
    log_access(session, user, entry.id, "review:release", {"attachment_id": str(attachment_id),
                                                            "comment": comment})


# -- a release of personal information under law (P9) ---------------------------------------


@dataclass(frozen=True)
class ReleaseCandidate:
    """One automatic removal of the public texts, with the public words around it."""

    place: str
    start: int
    end: int
    kind: str
    reason: str
    before: str
    marker: str
    after: str

    @property
    def key(self) -> str:
        return f"{self.place}:{self.start}:{self.end}"


def release_candidates(session: Session, entry: Entry, relay_domain: str
                       ) -> list[ReleaseCandidate]:
    """The automatic removals of the public subject and body (not the officers' marks),
    each with the public text around it (no value: the officer reviews without a reveal)."""
    rendition = public_rendition(session, entry, relay_domain)
    found: list[ReleaseCandidate] = []
    for place in ("subject", "body"):
        segments: tuple[Segment, ...] = tuple(rendition.segments.get(place, ()))
        removals = iter([r for r in rendition.removals if r.place == place])
        for i, seg in enumerate(segments):
            if not seg.removed:
                continue
            removal = next(removals, None)
            if removal is None or removal.start < 0 or removal.reason.startswith("mark:") \
                    or removal.reason == "redaction-failed":
                continue
            before = "".join(s.text for s in segments[:i])[-40:]
            after = "".join(s.text for s in segments[i + 1:])[:40]
            found.append(ReleaseCandidate(place, removal.start, removal.end, removal.kind,
                                          removal.reason, before, seg.text, after))
    return found


def _released_count(rendition: Rendition, place: str) -> int:
    return sum(1 for seg in rendition.segments.get(place, ()) if seg.reason == RELEASED)


def release_value(session: Session, user: StaffAccount, entry: Entry, relay_domain: str, *,
                  place: str, start: int, end: int, citation: str, comment: str) -> Decision:
    """Release ONE automatic redaction of the public rendition under a cited law.

    The disclosure gate decides (``legal-obligation`` to the public: allowed only
    with a valid citation) and writes the ledger row, allowed or refused; only an
    allowed decision adds the ``value-released`` event (where, which kind, the
    citation; never the value) and refreshes the stored public words. The access log
    has the attempt either way. :class:`ReviewError` (nothing written) for what can
    never be released: a P6 value (a marker at rest), the submitter's own e-mail
    address (P5), an officer's mark, a span that is not one automatic removal.
    """
    comment = _comment(comment)
    publication = publication_of(session, entry.id)
    if publication is not None and publication.state == DESTROYED:
        raise ReviewError("Its personal data was destroyed under its retention schedule.")
    releases = _releases(session, entry.id)
    if any((r.place, r.start, r.end) == (place, start, end) for r in releases):
        raise ReviewError("That value is already released.")
    current = public_rendition(session, entry, relay_domain, releases=releases)
    removal = next((r for r in current.removals
                    if (r.place, r.start, r.end) == (place, start, end)), None)
    if removal is None or place not in ("subject", "body"):
        raise ReviewError("Choose one of the automatic redactions of the subject or message.")
    if removal.reason.startswith("mark:"):
        raise ReviewError("That is a records officer's mark, not an automatic redaction.")
    if removal.kind in SENSITIVE_KINDS:
        raise ReviewError("That value (a Social Security, card or bank number, or other "
                          "information people are asked not to send) is kept only as a "
                          "marker, never in clear: it cannot be released.")
    if removal.kind not in RELEASABLE_KINDS:
        raise ReviewError("Only a name, a phone number, a street address or an e-mail "
                          "address can be released.")
    values = entry_values(session, entry, thread=False)
    value = values.texts.get(place, "")[start:end]
    submitter_email = email_pattern(values.email)
    if removal.kind == "email" and submitter_email is not None \
            and submitter_email.search(value):
        raise ReviewError("The submitter's own e-mail address is never released to the "
                          "public.")
    trial = [*releases, Release(place, start, end, removal.kind)]
    if _released_count(public_rendition(session, entry, relay_domain, releases=trial),
                       place) != _released_count(current, place) + 1:
        raise ReviewError("That redaction overlaps another one or is not one the public "
                          "rendition can release on its own.")
    [result] = disclose(session, [DisclosureRequest(
        entry_id=entry.id, recipient=public_recipient(entry.record_number),
        purpose=Purpose.LEGAL, nature=RELEASE_NATURE, citation=citation,
        actor=actor_of(user))])
    decision = result.decision
    log_access(session, user, entry.id, "review:release-value", {
        "allowed": str(decision.allowed), "reason": decision.reason, "place": place,
        "start": str(start), "end": str(end), "kind": removal.kind,
        "citation": decision.citation or "", "comment": comment,
        "disclosure_seq": str(result.seq)})
    if not decision.allowed:
        return decision
    session.add(Event(entry_id=entry.id, kind=RELEASE_EVENT, actor=actor_of(user),
                      detail={"disclosure_id": result.disclosure_id,
                              "disclosure_seq": result.seq, "place": place, "start": start,
                              "end": end, "kind": removal.kind,
                              "citation": decision.citation}))
    session.flush()
    _refresh(session, entry, relay_domain)
    return decision


# -- the records officer's queue and entry ----------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    entry_id: int
    record_number: str
    received_at: datetime
    subject: str
    rule: str
    decision: PublishDecision


def review_queue(session: Session, user: StaffAccount, config: RecordsConfig,
                 relay_domain: str, limit: int = 50) -> list[QueueRow]:
    """Entries of the officer's agency with no publication decision yet, newest first,
    each with what the gate would say on approval."""
    stmt = (select(Entry).outerjoin(Publication, Publication.entry_id == Entry.id)
            .where(Publication.entry_id.is_(None), Entry.agency_id == user.agency_id)
            .order_by(Entry.received_at.desc(), Entry.id.desc()).limit(limit))
    now = utcnow()
    entries = list(session.scalars(stmt))
    # The subjects as a records officer sees them (contact data withheld), one query a table.
    subjects = render_many_subjects(
        session, [(e.id, e.subject) for e in entries],
        {e.id: (Audience.RECORDS_OFFICER, None) for e in entries}, relay_domain)
    rows: list[QueueRow] = []
    for entry in entries:
        facts = facts_for(session, entry, config, reviewed=True)
        rows.append(QueueRow(entry.id, entry.record_number, entry.received_at,
                             subjects[entry.id], facts.rule.describe(),
                             publish_decision(facts, now)))
    return rows


def decided(session: Session, user: StaffAccount, limit: int = 50) -> list[Publication]:
    """The officer's agency's publication decisions, newest change first."""
    return list(session.scalars(select(Publication).where(
        Publication.agency_id == user.agency_id)
        .order_by(Publication.updated_at.desc()).limit(limit)))


def marks_of(session: Session, entry_id: int) -> list[RedactionMark]:
    return list(session.scalars(select(RedactionMark).where(RedactionMark.entry_id == entry_id)
                                .order_by(RedactionMark.id)))


def attachments_of(session: Session, entry_id: int) -> list[tuple[Attachment, bool]]:
    released = set(session.scalars(select(AttachmentRelease.attachment_id).where(
        AttachmentRelease.entry_id == entry_id)))
    return [(a, a.id in released) for a in session.scalars(
        select(Attachment).where(Attachment.entry_id == entry_id).order_by(Attachment.id))]


def officer_rendition(session: Session, entry: Entry, relay_domain: str) -> Rendition:
    """What the records officer reviews: the public texts with every removal and its reason."""
    return render_entry(session, entry, Audience.RECORDS_OFFICER, agency_id=None,
                        relay_domain=relay_domain, thread=False,
                        marks=_marks(session, entry.id),
                        releases=_releases(session, entry.id))


def high_findings(session: Session, entry_id: int) -> dict[str, int]:
    """High-severity findings by kind (sensitive kinds first); never their values."""
    counts: dict[str, int] = {}
    for kind, n in session.execute(
            select(PiiFinding.kind, func.count()).where(
                PiiFinding.entry_id == entry_id, PiiFinding.severity == "high")
            .group_by(PiiFinding.kind)):
        counts[str(kind)] = int(n)
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] not in SENSITIVE_KINDS, kv[0])))


# -- auto_after -------------------------------------------------------------------------------


def schedule_auto_publish(session: Session, config: RecordsConfig,
                          entry_ids: Sequence[int]) -> None:
    """Queue a ``publish`` work item for each routed entry whose rule is ``auto_after``,
    due when the rule allows publication (a re-route keeps the first item)."""
    if not entry_ids:
        return
    for entry_id, form_slug, agency_id, channel, received_at in session.execute(
            select(Entry.id, Entry.form_slug, Entry.agency_id, Entry.channel,
                   Entry.received_at).where(Entry.id.in_(list(entry_ids)))):
        rule = config.rule_for(form_slug=form_slug, agency_id=agency_id, channel=channel)
        if rule.mode is PublishMode.AUTO_AFTER and rule.after is not None:
            enqueue(session, PUBLISH_WORK, dedupe_key=f"publish:{entry_id}", entry_id=entry_id,
                    not_before=received_at + rule.after)


def make_publish_handler(config: RecordsConfig, relay_domain: str
                         ) -> Callable[[Session, WorkItem], None]:
    """The ``publish`` work: publish the entry if the gate allows it now and no records
    officer has decided about it (an unpublished or withheld entry stays so)."""

    def publish_due(session: Session, item: WorkItem) -> None:
        entry = session.get(Entry, item.entry_id) if item.entry_id is not None else None
        if entry is None or publication_of(session, entry.id) is not None:
            return
        decision = publish_decision(facts_for(session, entry, config), utcnow())
        if decision.allowed:
            _publish(session, entry, "system:auto-after", relay_domain, utcnow(),
                     decision.reason, reviewed=False)
        else:
            session.add(Event(entry_id=entry.id, kind="publish-skipped",
                              detail={"reason": decision.reason}))

    return publish_due


def publication_state(session: Session, entry_id: int) -> str | None:
    """``published`` if the public may see the entry now (the one filter), else its
    state (``withheld``, ``unpublished``) or None when nobody has decided yet."""
    if session.scalar(published_entries().where(Publication.entry_id == entry_id)
                      .with_only_columns(Publication.entry_id)) is not None:
        return PUBLISHED
    found = publication_of(session, entry_id)
    return None if found is None else (UNPUBLISHED if found.state == PUBLISHED else found.state)
