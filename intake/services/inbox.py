"""The staff inbox: per-agency queries, the entry view, and the actions staff take.

Isolation is decided here, once: an entry is visible to a user when it is
routed to the user's agency, or when that agency holds a copy of it (``entry_copies``:
the cc of the entry's latest routing decision, or a reroute's "keep a copy"), read
only but for notes. Everything else is "not found".

The inbox (the agency's entries and its copies, marked) pages with a keyset
(``received_at``, ``id``), newest first, so a deep page costs the same as the first
one. A search finds an entry by its record number (exact), by words with stemming
(PostgreSQL ``english`` ``tsvector``, SQLite FTS5 ``porter``, over
``entries.search_text``: no personal data, migrations 0011, 0019), and by the
citizen's name or e-mail address only where the searcher's rendition shows that
name or address (:func:`_contact_matches`): otherwise a search would be an oracle
for data the searcher may not see. Snippets are cut from the searcher's rendition.

Actions write the entry, an event on its timeline (ids and codes only, never
text people typed), and, when something leaves the system (reroute, reply),
go through the one disclosure gate, :func:`intake.services.gate.disclose`.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import TextClause

from intake.core.consent import Purpose
from intake.core.disclosure import Recipient, valid_citation
from intake.core.routing import Decision, RuleSet
from intake.core.snippets import snippet
from intake.db.copy_models import EntryCopy
from intake.db.models import (
    Attachment,
    Entry,
    EntryStatus,
    Event,
    RoutingDecision,
    Submitter,
    ThreadMessage,
    WorkItem,
    WorkState,
    utcnow,
)
from intake.db.staff_models import (
    AccessLogEntry,
    EntryAssignment,
    ReadMarker,
    StaffAccount,
)
from intake.services import automail, gate, renditions
from intake.services.delivery import ASSIGNMENT_NOTICE
from intake.services.renditions import Audience
from intake.services.routing import apply_decision

PAGE_SIZE = 50
RECORDS_ROLES = ("records_officer", "system_admin")
STATUSES = tuple(s.value for s in EntryStatus)
MAX_NOTE = 20_000
MAX_TAGS = 20
_TAG = re.compile(r"^[\w][\w .:/-]{0,39}$")
_WORD = re.compile(r"\w+")
# A record number as the app shows it (PREFIX-YEAR-NUMBER), also as "#..." or "[#...]".
_RECORD_NUMBER = re.compile(r"^\[?#?([A-Za-z0-9]{1,16}-\d{4}-\d{1,12})\]?$")
#: How many entries a name or address search looks at before the rendition check.
CONTACT_CANDIDATES = 500


class ActionError(ValueError):
    """An action that cannot be done as asked; the message is shown to the user."""


def actor_of(user: StaffAccount) -> str:
    return f"staff:{user.id}"


# -- visibility ---------------------------------------------------------------------


def latest_decision(session: Session, entry_id: int) -> RoutingDecision | None:
    return session.scalar(
        select(RoutingDecision).where(RoutingDecision.entry_id == entry_id)
        .order_by(RoutingDecision.id.desc()).limit(1)
    )


@dataclass(frozen=True)
class Access:
    entry: Entry
    owner: bool  # routed to the user's agency (may act), else cc only (may read)


def access_for(session: Session, user: StaffAccount, entry_id: int) -> Access | None:
    """The entry if the user's agency may see it; None means "not found"."""
    entry = session.get(Entry, entry_id)
    if entry is None:
        return None
    if entry.agency_id is not None and entry.agency_id == user.agency_id:
        return Access(entry, True)
    if session.get(EntryCopy, (entry_id, user.agency_id)) is not None:
        return Access(entry, False)
    return None


def copies_of(session: Session, entry_id: int) -> list[str]:
    """The agencies that hold a read-only copy of the entry (ids, in order)."""
    return list(session.scalars(select(EntryCopy.agency_id)
                                .where(EntryCopy.entry_id == entry_id)
                                .order_by(EntryCopy.agency_id)))


# -- the inbox list ---------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    status: str | None = None
    channel: str | None = None
    form: str | None = None
    tag: str | None = None
    assignee: str | None = None  # "me", "none", or an account id
    date_from: date | None = None
    date_to: date | None = None
    query: str | None = None
    scope: str | None = None  # "own": the agency's own entries, "copies": its copies


@dataclass(frozen=True)
class InboxRow:
    id: int
    record_number: str
    subject: str
    received_at: datetime
    status: str
    channel: str
    form_slug: str | None
    tags: list[str]
    assignee: str | None
    unread: bool
    copy: bool = False  # a copy (cc or kept copy) of another agency's entry: read only
    snippet: tuple[tuple[str, bool], ...] = ()  # (text, marked) from the viewer's rendition


@dataclass
class InboxPage:
    rows: list[InboxRow]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)


def encode_cursor(received_at: datetime, entry_id: int) -> str:
    raw = f"{received_at.astimezone(UTC).isoformat()}|{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            return None
        return parsed.astimezone(UTC), int(ident)
    except (ValueError, UnicodeDecodeError):
        return None


def fts5_query(query: str) -> str | None:
    """A safe FTS5 MATCH string: every word quoted, all required."""
    words = _WORD.findall(query)[:16]
    if not words:
        return None
    return " ".join('"' + w.replace('"', "") + '"' for w in words)


Condition = ColumnElement[bool] | TextClause


def _search_condition(session: Session, user: StaffAccount, query: str,
                      scope: str | None, relay_domain: str | None) -> Condition | None:
    """Entries matching ``query`` by record number, by stemmed words, or by the citizen's
    name or address where the user may see them; None when it can match nothing."""
    parts: list[Condition] = []
    number = _RECORD_NUMBER.match(query.strip())
    if number is not None:
        value = number.group(1)
        parts.append(Entry.record_number.in_(sorted({value, value.upper()})))
    words = _words_condition(session, query)
    if words is not None:
        parts.append(words)
    found = _contact_matches(session, user, query, scope, relay_domain) \
        if relay_domain else []
    if found:
        parts.append(Entry.id.in_(found))
    if not parts:
        return None
    return or_(*parts) if len(parts) > 1 else parts[0]


def _words_condition(session: Session, query: str) -> Condition | None:
    """The full-text match (English stemming) over the index of ``search_text``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        if not _WORD.search(query):
            return None
        return literal_column("entries.search_vector").op("@@")(
            func.websearch_to_tsquery("english", query[:500])
        )
    match = fts5_query(query)
    if match is None:
        return None
    return text("entries.id IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH :fts)"
                ).bindparams(fts=match)


def _contact_matches(session: Session, user: StaffAccount, query: str,
                     scope: str | None, relay_domain: str) -> list[int]:
    """The user's entries whose citizen's e-mail address is ``query`` (any case) or whose
    name holds every word of it, kept only where the user's rendition SHOWS that address
    or name (the consent the citizen gave the user's agency). Anything else would let
    the search tell whether a hidden name or address belongs to an entry."""
    if user.role in RECORDS_ROLES:
        return []  # records officers see contact data only by a logged reveal
    wanted = " ".join(query.split()).lower()
    if "@" in wanted:
        if " " in wanted or len(wanted) > 320:
            return []
        kind, condition = "email", func.lower(Submitter.email) == wanted
    else:
        words = [w for w in _WORD.findall(wanted)[:6] if len(w) > 1]
        if not words:
            return []
        kind, condition = "name", and_(*[
            func.lower(Submitter.name).like(f"%{w.replace('_', '!_')}%", escape="!")
            for w in words])
    # The agency's own entries and its copies, each by its own index (as _page_ids).
    own = (select(Entry.id, Entry.agency_id).join(Submitter, Submitter.entry_id == Entry.id)
           .where(Entry.agency_id == user.agency_id, condition))
    copies = (select(Entry.id, Entry.agency_id)
              .join(EntryCopy, and_(EntryCopy.entry_id == Entry.id,
                                    EntryCopy.agency_id == user.agency_id))
              .join(Submitter, Submitter.entry_id == Entry.id).where(condition))
    parts = [own] if scope == "own" else [copies] if scope == "copies" else [own, copies]
    rows = [row for part in parts
            for row in session.execute(part.order_by(Entry.id.desc()).limit(CONTACT_CANDIDATES))]
    if not rows:
        return []
    shown = renditions.render_many(
        session, [(r.id, {}) for r in rows],
        {r.id: (audience_of(user, r.agency_id == user.agency_id), user.agency_id)
         for r in rows}, relay_domain)
    return [r.id for r in rows
            if getattr(shown[r.id], kind).state == "shown"]


def _tag_condition(session: Session, tag: str) -> Condition:
    if session.get_bind().dialect.name == "postgresql":
        return text("CAST(entries.tags AS jsonb) ? :tag").bindparams(tag=tag)
    return text("EXISTS (SELECT 1 FROM json_each(entries.tags) WHERE json_each.value = :tag)"
                ).bindparams(tag=tag)


def _as_utc_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def audience_of(user: StaffAccount, owner: bool) -> Audience:
    """Whose rendition a staff member sees: records roles review, agencies answer."""
    if user.role in RECORDS_ROLES:
        return Audience.RECORDS_OFFICER
    return Audience.AGENCY if owner else Audience.CC_AGENCY


def inbox_page(session: Session, user: StaffAccount, filters: InboxFilter,
               cursor: str | None = None, limit: int = PAGE_SIZE, *,
               relay_domain: str) -> InboxPage:
    """One page of the user's agency inbox (its entries and its copies), newest first,
    after ``cursor``.

    Subjects (and a search's snippets, from the body) are the user's rendition of
    each row: the agency's own for its entries, the copy agency's for copies.
    """
    conditions = _filter_conditions(session, user, filters, relay_domain=relay_domain)
    if conditions is None:
        return InboxPage([], None)
    after = decode_cursor(cursor) if cursor else None
    rows = _inbox_rows(session, user,
                       _page_ids(user, filters.scope, conditions, after, limit + 1), limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.received_at, last.id)
    query = filters.query or ""
    bodies = _bodies(session, [r.id for r in rows]) if query else {}
    rendered = renditions.render_many(
        session, [(r.id, {"subject": r.subject, **({"body": bodies[r.id]} if query else {})})
                  for r in rows],
        {r.id: (audience_of(user, not r.copy), user.agency_id) for r in rows}, relay_domain)
    return InboxPage([replace(r, subject=rendered[r.id].subject,
                              snippet=snippet(rendered[r.id].body, query) if query else ())
                      for r in rows], next_cursor)


def _bodies(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {row.id: row.body for row in session.execute(
        select(Entry.id, Entry.body).where(Entry.id.in_(ids)))}


def _visible(user: StaffAccount, scope: str | None) -> Condition:
    """The entries of the user's agency inbox: its own, its copies, or (no scope) both."""
    own = Entry.agency_id == user.agency_id
    copies = exists(select(EntryCopy.entry_id).where(EntryCopy.entry_id == Entry.id,
                                                     EntryCopy.agency_id == user.agency_id))
    if scope == "own":
        return own
    if scope == "copies":
        return copies
    return or_(own, copies)


def _page_ids(user: StaffAccount, scope: str | None, conditions: list[Condition],
              after: tuple[datetime, int] | None, limit: int) -> Select[tuple[int]]:
    """The ids of the first ``limit`` entries of the user's inbox matching ``conditions``
    after the keyset ``after``, newest first: the agency's own entries and its copies,
    each taken in the order of its own index (``ix_entries_agency_received_id``,
    ``ix_entry_copies_agency_received``) and merged, so a page costs the same with
    copies as without (an OR of the two would read and sort every entry of the agency)."""
    own = (select(Entry.id, Entry.received_at)
           .outerjoin(EntryAssignment, EntryAssignment.entry_id == Entry.id)
           .where(Entry.agency_id == user.agency_id, *conditions)
           .order_by(Entry.received_at.desc(), Entry.id.desc()).limit(limit))
    copies = (select(EntryCopy.entry_id.label("id"), EntryCopy.received_at)
              .join(Entry, Entry.id == EntryCopy.entry_id)
              .outerjoin(EntryAssignment, EntryAssignment.entry_id == EntryCopy.entry_id)
              .where(EntryCopy.agency_id == user.agency_id, *conditions)
              .order_by(EntryCopy.received_at.desc(), EntryCopy.entry_id.desc()).limit(limit))
    if after is not None:
        own = own.where(tuple_(Entry.received_at, Entry.id) < tuple_(after[0], after[1]))
        copies = copies.where(tuple_(EntryCopy.received_at, EntryCopy.entry_id)
                              < tuple_(after[0], after[1]))
    parts = [own] if scope == "own" else [copies] if scope == "copies" else [own, copies]
    merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
    return select(merged.c.id)


def _inbox_conditions(session: Session, user: StaffAccount, filters: InboxFilter, *,
                      relay_domain: str | None) -> list[Condition] | None:
    """The WHERE conditions of the user's agency inbox under ``filters`` (see
    :func:`_filter_conditions`), with the inbox itself (:func:`_visible`)."""
    conditions = _filter_conditions(session, user, filters, relay_domain=relay_domain)
    return None if conditions is None else [_visible(user, filters.scope), *conditions]


def _filter_conditions(session: Session, user: StaffAccount, filters: InboxFilter, *,
                       relay_domain: str | None) -> list[Condition] | None:
    """The WHERE conditions of ``filters`` on the user's inbox (whose entries they are is
    not among them); None when the filters can match nothing (a search without words, an
    assignee that is no number). Without ``relay_domain`` a search does not look at
    names and addresses."""
    # Automatic mail (auto-replies, bounces, bulk, spam) is listed at /staff/automatic.
    conditions: list[Condition] = [automail.not_automatic()]
    if filters.status:
        conditions.append(Entry.status == filters.status)
    if filters.channel:
        conditions.append(Entry.channel == filters.channel)
    if filters.form:
        conditions.append(Entry.form_slug == filters.form)
    if filters.tag:
        conditions.append(_tag_condition(session, filters.tag))
    if filters.date_from:
        conditions.append(Entry.received_at >= _as_utc_start(filters.date_from))
    if filters.date_to:
        conditions.append(Entry.received_at < _as_utc_start(filters.date_to + timedelta(days=1)))
    if filters.query:
        # PostgreSQL refuses a NUL character in any text parameter (a 500, not "no hit").
        query = filters.query.replace("\x00", " ")
        search = _search_condition(session, user, query, filters.scope, relay_domain)
        if search is None:
            return None
        conditions.append(search)
    if filters.assignee:
        # EntryAssignment is outer-joined in _inbox_rows: no row and a NULL staff_id both
        # mean "no one".
        if filters.assignee == "none":
            conditions.append(EntryAssignment.staff_id.is_(None))
        else:
            staff_id = user.id if filters.assignee == "me" else _int_or_none(filters.assignee)
            if staff_id is None:
                return None
            conditions.append(EntryAssignment.staff_id == staff_id)
    return conditions


def _inbox_rows(session: Session, user: StaffAccount, ids: Select[tuple[int]],
                limit: int) -> list[InboxRow]:
    """The inbox rows of the entries ``ids`` selects (up to ``limit``), newest first, with
    the assignee and whether ``user`` has read each (subjects as stored, not yet
    rendered)."""
    assignee = aliased(StaffAccount)
    query = (
        select(Entry.id, Entry.record_number, Entry.subject, Entry.received_at, Entry.status,
               Entry.channel, Entry.form_slug, Entry.tags, assignee.email.label("assignee"),
               ReadMarker.read_at, Entry.agency_id)
        .where(Entry.id.in_(ids))
        .outerjoin(EntryAssignment, EntryAssignment.entry_id == Entry.id)
        .outerjoin(assignee, assignee.id == EntryAssignment.staff_id)
        .outerjoin(ReadMarker, and_(ReadMarker.entry_id == Entry.id,
                                    ReadMarker.staff_id == user.id))
        .order_by(Entry.received_at.desc(), Entry.id.desc())
        .limit(limit)
    )
    return [
        InboxRow(id=r.id, record_number=r.record_number, subject=r.subject,
                 received_at=_utc(r.received_at), status=r.status, channel=r.channel,
                 form_slug=r.form_slug, tags=list(r.tags or []), assignee=r.assignee,
                 unread=r.read_at is None, copy=r.agency_id != user.agency_id)
        for r in session.execute(query)
    ]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def status_counts(session: Session, agency_id: str) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in session.execute(
        select(Entry.status, func.count())
        .where(Entry.agency_id == agency_id, automail.not_automatic())
        .group_by(Entry.status)
    ):
        counts[status] = n
    return counts


UNREAD_CAP = 1000


def unread_count(session: Session, user: StaffAccount) -> int:
    """Unread entries among the agency's new and open ones, counted up to UNREAD_CAP.

    The cap keeps the inbox page's cost flat on an agency with a large backlog
    (the page shows "1000+").
    """
    unread = (
        select(Entry.id).where(
            Entry.agency_id == user.agency_id, Entry.status.in_(("new", "open")),
            automail.not_automatic(),
            ~exists(select(ReadMarker.entry_id).where(ReadMarker.entry_id == Entry.id,
                                                     ReadMarker.staff_id == user.id)))
        .limit(UNREAD_CAP).subquery()
    )
    return session.scalar(select(func.count()).select_from(unread)) or 0


# -- the entry view ---------------------------------------------------------------------


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # "event", "message", "access"
    title: str
    detail: dict[str, Any] = field(default_factory=dict)
    message: ThreadMessage | None = None


def log_access(session: Session, user: StaffAccount, entry_id: int, what: str,
               reason: dict[str, str] | None = None) -> None:
    """Log a view; a reveal is logged with its stated reason and legal basis."""
    session.add(AccessLogEntry(staff_id=user.id, entry_id=entry_id, what=what, at=utcnow(),
                               detail=dict(reason) if reason is not None else None))


REVEAL_ROLES = RECORDS_ROLES
MAX_REASON = 500


@dataclass(frozen=True)
class RevealRequest:
    reason: str
    citation: str
    requester: str = ""  # set when the reveal answers an outside legal demand
    requester_address: str = ""


def reveal(session: Session, user: StaffAccount, entry: Entry, request: RevealRequest) -> None:
    """Check and log a reveal of the submitter's contact data (and disclose it, if asked).

    Only records officers and system administrators reveal: an agency sees a
    non-consenting citizen's address never (the consent text promises it), and
    a legal demand is answered by the records office. With a ``requester`` the
    reveal is a disclosure outside: a ledger row through the gate (purpose
    legal-obligation, with the citation), refused without a valid citation.
    """
    if user.role not in REVEAL_ROLES:
        raise ActionError("Only records officers can reveal contact details.")
    reason = " ".join(request.reason.split())[:MAX_REASON]
    if not reason:
        raise ActionError("Say why the contact details are needed.")
    citation = valid_citation(request.citation)
    if citation is None:
        raise ActionError("Cite the law or the legal demand (for example "
                          "\"Public Records Act s. 4(2)\" or a court order number).")
    requester = " ".join(request.requester.split())[:200]
    if requester:
        [result] = gate.disclose(session, [gate.DisclosureRequest(
            entry_id=entry.id, purpose=Purpose.LEGAL, citation=citation,
            recipient=Recipient(kind="third-party", id=f"requester:{requester[:100]}",
                                name=requester,
                                address=" ".join(request.requester_address.split())[:500]),
            nature="legal-demand", actor=actor_of(user))])
        if not result.decision.allowed:
            raise ActionError(f"The disclosure was refused ({result.decision.reason}).")
    log_access(session, user, entry.id, "reveal",
               {"reason": reason, "citation": citation,
                **({"disclosed_to": requester} if requester else {})})


def mark_read(session: Session, user: StaffAccount, entry_id: int) -> None:
    marker = session.get(ReadMarker, (user.id, entry_id))
    if marker is None:
        session.add(ReadMarker(staff_id=user.id, entry_id=entry_id, read_at=utcnow()))


def mark_unread(session: Session, user: StaffAccount, entry_id: int) -> None:
    marker = session.get(ReadMarker, (user.id, entry_id))
    if marker is not None:
        session.delete(marker)


def timeline(session: Session, entry_id: int, *, with_access_log: bool) -> list[TimelineItem]:
    items: list[TimelineItem] = []
    for ev in session.scalars(select(Event).where(Event.entry_id == entry_id)):
        items.append(TimelineItem(ev.at, "event", ev.kind, dict(ev.detail or {})))
    for msg in session.scalars(select(ThreadMessage).where(ThreadMessage.entry_id == entry_id)):
        items.append(TimelineItem(msg.at, "message", msg.direction, message=msg))
    if with_access_log:
        rows = session.execute(
            select(AccessLogEntry.at, AccessLogEntry.what, AccessLogEntry.detail,
                   StaffAccount.email)
            .join(StaffAccount, StaffAccount.id == AccessLogEntry.staff_id)
            .where(AccessLogEntry.entry_id == entry_id)
        )
        for at, what, detail, email in rows:
            items.append(TimelineItem(at, "access", what, {**(detail or {}), "by": email}))
    items.sort(key=lambda i: _utc(i.at))
    return items


def attachments_of(session: Session, entry_id: int) -> list[Attachment]:
    return list(session.scalars(select(Attachment).where(Attachment.entry_id == entry_id)
                                .order_by(Attachment.id)))


def submitter_of(session: Session, entry_id: int) -> Submitter | None:
    return session.scalar(select(Submitter).where(Submitter.entry_id == entry_id))


def assignment_of(session: Session, entry_id: int) -> StaffAccount | None:
    row = session.get(EntryAssignment, entry_id)
    if row is None or row.staff_id is None:
        return None
    return session.get(StaffAccount, row.staff_id)


# -- actions ----------------------------------------------------------------------------


def assign(session: Session, user: StaffAccount, entry: Entry, staff_id: int | None) -> None:
    """Assign the entry (or no one); a colleague who is newly assigned gets a notice."""
    target = None
    if staff_id is not None:
        target = session.get(StaffAccount, staff_id)
        if target is None or target.agency_id != entry.agency_id or target.disabled:
            raise ActionError("That person cannot be assigned to this entry.")
    row = session.get(EntryAssignment, entry.id)
    if target is not None and target.id != user.id and (row is None or row.staff_id != target.id):
        _assignment_notice(session, user, entry, target)
    if row is None:
        session.add(EntryAssignment(entry_id=entry.id, staff_id=staff_id, assigned_at=utcnow()))
    else:
        row.staff_id, row.assigned_at = staff_id, utcnow()
    session.add(Event(entry_id=entry.id, kind="assigned", actor=actor_of(user),
                      detail={"staff_id": staff_id}))


def _assignment_notice(session: Session, user: StaffAccount, entry: Entry,
                       target: StaffAccount) -> None:
    """Queue the e-mail that tells ``target`` an entry is theirs, through the gate.

    The mail (:class:`intake.services.delivery.Notices`) holds the record number and a
    link to the staff page, nothing of the citizen: no name, address or subject.
    """
    gate.disclose(session, [gate.DisclosureRequest(
        entry_id=entry.id,
        recipient=Recipient(kind="agency", id=str(entry.agency_id),
                            name=f"staff account {target.id}", address=target.email),
        purpose=Purpose.REDIRECT, nature="assignment-notice", personal=False,
        work_kind=ASSIGNMENT_NOTICE, work_payload={"staff_id": target.id},
        dedupe_key=f"{ASSIGNMENT_NOTICE}:{entry.id}:{uuid.uuid4().hex}",
        actor=actor_of(user))])


def set_status(session: Session, user: StaffAccount, entry: Entry, status: str) -> None:
    if status not in STATUSES:
        raise ActionError("Unknown status.")
    if status == entry.status:
        return
    previous, entry.status = entry.status, status
    session.add(Event(entry_id=entry.id, kind="status-changed", actor=actor_of(user),
                      detail={"from": previous, "to": status}))


def parse_tags(raw: str) -> list[str]:
    tags: list[str] = []
    for part in raw.split(","):
        tag = " ".join(part.split()).lower()
        if not tag:
            continue
        if not _TAG.match(tag):
            raise ActionError(
                "Tags are up to 40 letters, digits, spaces or . : / - _ and start with a "
                "letter or digit.")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ActionError(f"At most {MAX_TAGS} tags.")
    return tags


def set_tags(session: Session, user: StaffAccount, entry: Entry, tags: list[str]) -> None:
    previous = list(entry.tags or [])
    if previous == tags:
        return
    entry.tags = tags
    session.add(Event(entry_id=entry.id, kind="tags-changed", actor=actor_of(user),
                      detail={"added": [t for t in tags if t not in previous],
                              "removed": [t for t in previous if t not in tags]}))


def add_note(session: Session, user: StaffAccount, entry: Entry, body: str) -> ThreadMessage:
    body = body.strip()
    if not body:
        raise ActionError("The note is empty.")
    if len(body) > MAX_NOTE:
        raise ActionError(f"A note is at most {MAX_NOTE} characters.")
    note = ThreadMessage(entry_id=entry.id, direction="note", author_kind="staff",
                         author_id=str(user.id), subject="", body=body,
                         idempotency_key=f"note:{uuid.uuid4().hex}", at=utcnow())
    session.add(note)
    session.flush()
    session.add(Event(entry_id=entry.id, kind="note-added", actor=actor_of(user),
                      detail={"thread_message_id": note.id}))
    return note


def reply(session: Session, user: StaffAccount, entry: Entry, body: str
          ) -> gate.GateResult:
    """A reply to the submitter: a thread message, sent by the "reply" work through the gate."""
    body = body.strip()
    if not body:
        raise ActionError("The reply is empty.")
    if len(body) > MAX_NOTE:
        raise ActionError(f"A reply is at most {MAX_NOTE} characters.")
    submitter = submitter_of(session, entry.id)
    if submitter is None or not submitter.email:
        raise ActionError("This entry has no address to reply to.")
    subject = entry.subject if entry.subject.lower().startswith("re:") else \
        f"Re: {entry.subject}".strip()
    message = ThreadMessage(entry_id=entry.id, direction="out", author_kind="staff",
                            author_id=str(user.id), subject=subject[:1000], body=body,
                            idempotency_key=f"reply:{uuid.uuid4().hex}", at=utcnow())
    session.add(message)
    session.flush()
    [result] = gate.disclose(session, [gate.DisclosureRequest(
        entry_id=entry.id,
        recipient=Recipient(kind="submitter", id=f"entry:{entry.id}",
                            name=submitter.name or "", address=submitter.email),
        purpose=Purpose.RESPOND, nature="reply", work_kind="reply",
        # The agency answering now: the e-mail names it even if the entry is rerouted
        # before the reply goes out.
        work_payload={"thread_message_id": message.id, "agency_id": entry.agency_id},
        dedupe_key=f"reply:{message.id}",
        actor=actor_of(user),
    )])
    session.add(Event(entry_id=entry.id, kind="reply-written", actor=actor_of(user),
                      detail={"thread_message_id": message.id,
                              "allowed": result.decision.allowed,
                              "reason": result.decision.reason}))
    return result


def reroute(session: Session, user: StaffAccount, entry: Entry, rules: RuleSet,
            agency_id: str, reason: str, keep_copy: bool) -> gate.GateResult:
    """Send the entry to another agency; the reason is kept as an internal note.

    The first agency keeps read access only if ``keep_copy`` puts it in cc.
    """
    reason = reason.strip()
    if not reason:
        raise ActionError("Say why the entry is rerouted.")
    agency = rules.agencies.get(agency_id)
    if agency is None:
        raise ActionError("Unknown agency.")
    if agency_id == entry.agency_id:
        raise ActionError("The entry is already with that agency.")
    previous = entry.agency_id
    note = add_note(session, user, entry, f"Rerouted to {agency.name}: {reason}")
    cc = (previous,) if keep_copy and previous else ()
    decision = Decision(route_to=agency.id, cc=cc, tags=(), matched_rules=(),
                        decided_by=None, captures={}, trace=(), rules_sha256=rules.sha256,
                        route_reason=f"rerouted by staff (note {note.id})")
    decision_id = apply_decision(session, entry, decision, actor=actor_of(user),
                                 event_kind="rerouted")
    session.flush()
    entry.status = EntryStatus.NEW
    assignment = session.get(EntryAssignment, entry.id)
    if assignment is not None:
        assignment.staff_id, assignment.assigned_at = None, utcnow()
    [result] = gate.disclose(session, [gate.DisclosureRequest(
        entry_id=entry.id,
        recipient=Recipient(kind="agency", id=agency.id, name=agency.name,
                            address=agency.email or agency.webhook or ""),
        purpose=Purpose.REDIRECT, nature="reroute", rules_sha256=rules.sha256,
        work_kind="deliver", dedupe_key=f"deliver:{entry.id}:{agency.id}:{decision_id}",
        actor=actor_of(user),
    )])
    return result


# -- admin views -------------------------------------------------------------------------


def dead_letters(session: Session, user: StaffAccount, limit: int = 200
                 ) -> list[tuple[WorkItem, str | None]]:
    """Dead work items with their entry's record number; agency admins see their agency's."""
    query = (select(WorkItem, Entry.record_number)
             .outerjoin(Entry, Entry.id == WorkItem.entry_id)
             .where(WorkItem.state == WorkState.DEAD)
             .order_by(WorkItem.updated_at.desc()).limit(limit))
    if user.role != "system_admin":
        query = query.where(Entry.agency_id == user.agency_id)
    return [(item, number) for item, number in session.execute(query)]


def may_retry(session: Session, user: StaffAccount, item_id: int) -> bool:
    item = session.get(WorkItem, item_id)
    if item is None or item.state != WorkState.DEAD:
        return False
    if user.role == "system_admin":
        return True
    if item.entry_id is None:
        return False
    entry = session.get(Entry, item.entry_id)
    return entry is not None and entry.agency_id == user.agency_id


def access_log_count(session: Session, entry_id: int) -> int:
    return session.scalar(select(func.count()).select_from(AccessLogEntry)
                          .where(AccessLogEntry.entry_id == entry_id)) or 0


def search_entry_ids(session: Session, user: StaffAccount, filters: InboxFilter,
                     limit: int) -> list[int]:
    """The ids of up to ``limit`` entries of the user's inbox matching ``filters`` (the
    inbox's own search, all pages), newest first: what a legal hold on a search holds.
    Only the agency's own entries (a copy is held by its owner agency), and no name or
    address search."""
    conditions = _inbox_conditions(session, user, replace(filters, scope="own"),
                                   relay_domain=None)
    if conditions is None:
        return []
    query = (select(Entry.id).where(and_(*conditions))
             .outerjoin(EntryAssignment, EntryAssignment.entry_id == Entry.id)
             .order_by(Entry.received_at.desc(), Entry.id.desc()).limit(limit))
    return list(session.scalars(query))
