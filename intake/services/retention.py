"""Retention: the schedule applied to the record store, legal holds, the disposition log.

What a run does (the schedule's series are :mod:`intake.core.retention`):

- :func:`plan` reads, never writes: every entry whose period has ended and
  that no run has handled yet, by series, with the held ones counted apart.
- :func:`apply_schedule` does it, ``batch`` entries a transaction. Each batch
  locks its entries and decides afresh (a hold placed meanwhile wins), so an
  interrupted run leaves whole batches done and the next run does the rest;
  an entry handled once (a row in ``disposition_log``) is never handled again.
- ``destroy`` is crypto-shredding (:func:`destroy_entries`): the entry's data
  key is deleted (its sealed original, attachments and replies no longer open)
  and every text derived from them is blanked; the record number, dates,
  agency, status, tags, the timeline, the disclosure ledger and both hash
  chains stay as they were, so ``intake audit verify`` still passes.
- ``archive`` marks the entry archived (a log row and a timeline event) and
  keeps it as it is; ``review`` lists it for the records officers, who destroy
  it or keep it (:func:`decide_review`).

Legal holds (:func:`place_hold`, :func:`release_hold`) name the entries they
hold when placed, a search included: entries that match the search later are
not held by it. A held entry is never disposed of, by a run or on review.
Every hold and release is an event on each entry's timeline and a row in the
access log.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from intake.core.retention import (
    Disposition,
    EntryFacts,
    RetentionDecision,
    Schedule,
    Series,
    decide,
    latest_start,
)
from intake.db import Database
from intake.db.append_only import guard_lifted
from intake.db.models import (
    Attachment,
    Entry,
    EntryKey,
    EntryStatus,
    Event,
    Original,
    PiiFinding,
    RoutingDecision,
    Submitter,
    ThreadMessage,
    utcnow,
)
from intake.db.retention_models import (
    DispositionLogEntry,
    DispositionRun,
    LegalHold,
    LegalHoldEntry,
)
from intake.db.staff_models import AccessLogEntry, StaffAccount
from intake.services import chat, publication
from intake.services.inbox import RECORDS_ROLES, InboxFilter, access_for, search_entry_ids

log = logging.getLogger("intake.retention")

#: Entries a run handles per transaction.
BATCH = 200
#: Entries read per query while planning.
PAGE = 1000
#: The most entries one hold may name (a search matching more must be narrowed).
MAX_HOLD_ENTRIES = 10_000
MAX_REASON = 2000
MAX_CASE = 200

# What the log says was done, by disposition.
ACTION_OF = {Disposition.DESTROY: "destroyed", Disposition.ARCHIVE: "archived",
             Disposition.REVIEW: "review"}
KEPT = "kept"
#: The attachment name left after a destroy (the column may not be empty).
DESTROYED_FILENAME = "attachment"


class RetentionActionError(ValueError):
    """A hold, release or review decision that cannot be done as asked (shown to the user).

    ``template`` with ``params`` (``%(name)s``) is the message, so a page can translate it.
    """

    def __init__(self, template: str, **params: Any) -> None:
        self.template, self.params = template, params
        super().__init__(template % params if params else template)


# -- what the schedule asks for -----------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """An entry whose period has ended: what the run will do to it."""

    entry_id: int
    record_number: str
    series: str
    disposition: Disposition
    due_at: datetime


@dataclass
class SeriesPlan:
    series: Series
    due: list[Due] = field(default_factory=list)
    held: int = 0  # due but under a legal hold: kept


@dataclass(frozen=True)
class Plan:
    as_of: datetime
    schedule_sha256: str
    series: list[SeriesPlan]
    complete: bool = True  # False: the time budget ran out; the counts are a lower bound

    @property
    def due(self) -> list[Due]:
        return [d for s in self.series for d in s.due]

    @property
    def held(self) -> int:
        return sum(s.held for s in self.series)


_HANDLED = exists().where(DispositionLogEntry.entry_id == Entry.id)
_ACTIVE_HOLD = and_(LegalHoldEntry.hold_id == LegalHold.id, LegalHold.released_at.is_(None))


def plan(session: Session, schedule: Schedule, now: datetime, *, page: int = PAGE,
         budget_seconds: float | None = None) -> Plan:
    """What a run at ``now`` would do, series by series; writes nothing. With a
    ``budget_seconds`` (a web page) it stops after the first page that ends past it,
    and says the plan is not ``complete`` (its counts are then a lower bound)."""
    per_series = {s.id: SeriesPlan(s) for s in schedule.series}
    started = time.monotonic()
    for decisions in _decided_pages(session, schedule, now, page):
        _add(per_series, decisions)
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            return Plan(now, schedule.sha256, list(per_series.values()), complete=False)
    return Plan(now, schedule.sha256, list(per_series.values()))


def _add(per_series: dict[str, SeriesPlan],
         decisions: Sequence[tuple[EntryFacts, str, RetentionDecision]]) -> None:
    for facts, number, decision in decisions:
        if decision.series is None:
            continue
        if decision.due:
            assert decision.due_at is not None
            per_series[decision.series.id].due.append(Due(
                facts.entry_id, number, decision.series.id, decision.series.disposition,
                decision.due_at))
        elif decision.reason == "held":
            per_series[decision.series.id].held += 1


_FACTS = (Entry.id, Entry.record_number, Entry.agency_id, Entry.form_slug, Entry.channel,
          Entry.tags, Entry.received_at, Entry.status)


def _decided_pages(session: Session, schedule: Schedule, now: datetime, page: int
                   ) -> Iterator[list[tuple[EntryFacts, str, RetentionDecision]]]:
    """The not yet handled entries that may be due, ``page`` at a time, each decided."""
    if not schedule.series:
        return
    bound = max(latest_start(s, now) for s in schedule.series)
    after = 0
    while True:
        rows = session.execute(
            select(*_FACTS).where(Entry.id > after, Entry.received_at <= bound, ~_HANDLED)
            .order_by(Entry.id).limit(page)).all()
        if not rows:
            return
        after = rows[-1].id
        yield _decide_rows(session, schedule, now, rows)


def _decide_entries(session: Session, schedule: Schedule, now: datetime,
                    ids: Sequence[int], *, lock: bool = False
                    ) -> list[tuple[EntryFacts, str, RetentionDecision]]:
    """Decide ``ids`` (those not handled yet) from their facts as stored now; with ``lock``
    their entry rows are locked first (PostgreSQL), so no hold can be added to them
    until the transaction ends: a hold's row references the entry's, which waits."""
    query = select(*_FACTS).where(Entry.id.in_(ids), ~_HANDLED).order_by(Entry.id)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Entry)
    return _decide_rows(session, schedule, now, session.execute(query).all())


def _decide_rows(session: Session, schedule: Schedule, now: datetime, rows: Sequence[Any]
                 ) -> list[tuple[EntryFacts, str, RetentionDecision]]:
    closed = _closed_at(session, [r.id for r in rows if r.status == EntryStatus.CLOSED])
    held = held_entry_ids(session, [r.id for r in rows])
    out = []
    for r in rows:
        facts = EntryFacts(entry_id=r.id, agency_id=r.agency_id, form_slug=r.form_slug,
                           channel=r.channel, tags=frozenset(r.tags or ()),
                           received_at=r.received_at, closed_at=closed.get(r.id),
                           held=r.id in held)
        out.append((facts, r.record_number, decide(schedule, facts, now)))
    return out


def _closed_at(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    """When each of these closed entries was last closed (its last status change to
    "closed"). One closed with no such event has no closing time and is kept."""
    closed: dict[int, datetime] = {}
    if not ids:
        return closed
    for entry_id, at, detail in session.execute(
            select(Event.entry_id, Event.at, Event.detail)
            .where(Event.entry_id.in_(ids), Event.kind == "status-changed")
            .order_by(Event.id)):
        if (detail or {}).get("to") == EntryStatus.CLOSED:
            closed[entry_id] = at
    return closed


def held_entry_ids(session: Session, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` are under an active legal hold."""
    if not ids:
        return set()
    # By range, not a long IN list: a page of a run is a range of ids, and holds are few.
    wanted = set(ids)
    return wanted & set(session.scalars(
        select(LegalHoldEntry.entry_id).join(LegalHold, _ACTIVE_HOLD)
        .where(LegalHoldEntry.entry_id.between(min(wanted), max(wanted))).distinct()))


# -- running it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    run_id: int | None  # None: nothing was due, so no run was recorded
    done: dict[str, int]  # series id -> entries handled
    held: int  # due but held, left alone
    unsealed: int  # due for destruction but stored before sealing: left, see destroy_entries

    @property
    def total(self) -> int:
        return sum(self.done.values())


def apply_schedule(db: Database, schedule: Schedule, now: datetime, *, actor: str,
                   batch: int = BATCH, progress: Callable[[int, int], None] | None = None
                   ) -> RunReport:
    """Do what :func:`plan` says, ``batch`` entries a transaction (see the module). With
    nothing due it writes nothing at all (no run is recorded)."""
    done: dict[str, int] = {s.id: 0 for s in schedule.series}
    with db.session() as session:
        planned = plan(session, schedule, now)
        due = planned.due
        if not due:
            return RunReport(None, done, planned.held, 0)
        run = DispositionRun(actor=actor[:128], as_of=now, schedule_sha256=schedule.sha256,
                             started_at=utcnow())
        session.add(run)
        session.flush()
        run_id = run.id
    held, unsealed, handled = planned.held, 0, 0
    for start in range(0, len(due), batch):
        chunk = due[start:start + batch]
        with db.session() as session:
            _take_turn(session)
            decided = _decide_entries(session, schedule, now, [d.entry_id for d in chunk],
                                      lock=True)
            todo: dict[Disposition, list[tuple[int, str, str, datetime | None]]] = {}
            for facts, number, decision in decided:
                if decision.series is None or not decision.due:
                    held += decision.reason == "held"
                    continue
                todo.setdefault(decision.series.disposition, []).append(
                    (facts.entry_id, number, decision.series.id, decision.due_at))
            for disposition, items in todo.items():
                kept = _dispose(session, disposition, items, run_id=run_id, actor=actor)
                unsealed += len(items) - len(kept)
                for series_id in kept:
                    done[series_id] += 1
        handled += len(chunk)
        if progress:
            progress(handled, len(due))
    with db.session() as session:
        session.execute(update(DispositionRun).where(DispositionRun.id == run_id)
                        .values(finished_at=utcnow()))
    log.info("retention run %s: %d entries handled, %d held, %d unsealed", run_id,
             sum(done.values()), held, unsealed)
    return RunReport(run_id, done, held, unsealed)


#: The PostgreSQL advisory lock the batches of concurrent runs (and review decisions) take
#: turns on; any constant, used by nothing else.
_RUN_LOCK = 0x1D5_0016


def _take_turn(session: Session) -> None:
    """Wait for any other run's batch to commit, so this one sees what it did (its log
    rows) and leaves those entries alone. SQLite's transactions take turns already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_RUN_LOCK)))


def _dispose(session: Session, disposition: Disposition,
             items: Sequence[tuple[int, str, str, datetime | None]], *, run_id: int | None,
             actor: str) -> list[str]:
    """Dispose of ``items`` (entry id, record number, series id, due at) and log it; the
    series ids of those done (an unsealed entry is not destroyed)."""
    ids = [i[0] for i in items]
    if disposition is Disposition.DESTROY:
        destroyed = set(destroy_entries(session, ids))
        items = [i for i in items if i[0] in destroyed]
    _log(session, items, ACTION_OF[disposition], run_id=run_id, actor=actor)
    return [i[2] for i in items]


def _log(session: Session, items: Sequence[tuple[int, str, str, datetime | None]],
         action: str, *, run_id: int | None, actor: str) -> None:
    """A log row and a timeline event for each item, stamped with the real time (the
    run keeps the moment it went by, ``as_of``)."""
    if not items:
        return
    now = utcnow()
    session.add_all(DispositionLogEntry(entry_id=entry_id, record_number=number, series=series,
                                        action=action, run_id=run_id, actor=actor[:128],
                                        due_at=due_at, at=now)
                    for entry_id, number, series, due_at in items)
    session.add_all(Event(entry_id=entry_id, kind=f"retention-{action}", at=now,
                          actor=actor[:128],
                          detail={"series": series,
                                  **({"run": run_id} if run_id is not None else {})})
                    for entry_id, _number, series, _due in items)
    session.flush()


# -- destroying an entry's personal data ---------------------------------------------------


_THREADS = cast(Table, ThreadMessage.__table__)
_ATTACHMENTS = cast(Table, Attachment.__table__)
_DECISIONS = cast(Table, RoutingDecision.__table__)


def destroy_entries(session: Session, entry_ids: Sequence[int]) -> list[int]:
    """Crypto-shred these entries in the session's transaction; the ids destroyed.

    Deletes each entry's data key (the sealed original, attachments and inbound
    replies can no longer be opened) and blanks what was derived from them: the
    subject, body, form answers' texts and search text, the submitter's contact
    data, the replies' and notes' texts, the attachments' names, the PII
    findings' keyed hashes (which would let a guess be tested) and the routing
    trace's reasons (which may quote the text). The append-only tables among
    them have their guard lifted for this transaction only.

    An entry with bytes stored before sealing began (their SHA-256 is their own:
    ``intake db seal --apply`` has not been run) is left alone, since deleting
    its key would not destroy them; it is not in the answer.
    """
    ids = sorted(set(entry_ids) - _unsealed(session, entry_ids))
    if not ids:
        return []
    conn = session.connection()
    conn.execute(delete(EntryKey).where(EntryKey.entry_id.in_(ids)))
    fields = {row[0]: row[1] for row in session.execute(
        select(Entry.id, Entry.fields).where(Entry.id.in_(ids)))}
    conn.execute(update(Entry).where(Entry.id == bindparam("eid")).values(
        subject="", body="", search_text="", fields=bindparam("blank")),
        [{"eid": i, "blank": _blank_fields(fields.get(i) or {})} for i in ids])
    conn.execute(update(Submitter).where(Submitter.entry_id.in_(ids)).values(
        name=None, email=None, phone=None, postal_address=None))
    conn.execute(update(PiiFinding).where(PiiFinding.entry_id.in_(ids)).values(value_hash=""))
    traces = session.execute(select(RoutingDecision.id, RoutingDecision.trace)
                             .where(RoutingDecision.entry_id.in_(ids))).all()
    lifted = [name for name, present in (
        ("thread_messages", _any(session, ThreadMessage.entry_id, ids)),
        ("attachments", _any(session, Attachment.entry_id, ids)),
        ("routing_decisions", bool(traces))) if present]
    with guard_lifted(conn, tuple(lifted)):
        if "thread_messages" in lifted:
            conn.execute(update(_THREADS).where(_THREADS.c.entry_id.in_(ids))
                         .values(subject="", body=""))
        if "attachments" in lifted:
            conn.execute(update(_ATTACHMENTS).where(_ATTACHMENTS.c.entry_id.in_(ids))
                         .values(filename=DESTROYED_FILENAME))
        if traces:
            conn.execute(update(_DECISIONS).where(_DECISIONS.c.id == bindparam("rid"))
                         .values(trace=bindparam("blank")),
                         [{"rid": rid, "blank": [{k: v for k, v in step.items() if k != "reason"}
                                                 for step in (trace or [])]}
                          for rid, trace in traces])
    publication.forget(session, ids)
    chat.forget(session, ids)  # a Live Help transcript's chat keeps nothing either
    session.expire_all()
    log.info("destroyed the personal data of %d entries", len(ids))
    return ids


def _any(session: Session, column: Any, ids: Sequence[int]) -> bool:
    return session.scalar(select(func.count()).where(column.in_(ids))) != 0


def _blank_fields(value: Any) -> Any:
    """Form answers with every text blanked; numbers, booleans and the keys stay."""
    if isinstance(value, dict):
        return {k: _blank_fields(v) for k, v in value.items()}
    if isinstance(value, list):
        return [] if any(isinstance(v, str) for v in value) else [
            _blank_fields(v) for v in value]
    if isinstance(value, str):
        return ""
    return value


def _unsealed(session: Session, entry_ids: Iterable[int]) -> set[int]:
    """Entries with an original, reply or attachment still stored in plaintext."""
    ids = list(entry_ids)
    found: set[int] = set()
    for entry_col, data, digest in (
            (Original.entry_id, Original.raw, Original.sha256),
            (ThreadMessage.entry_id, ThreadMessage.raw, ThreadMessage.sha256),
            (Attachment.entry_id, Attachment.content, Attachment.sha256)):
        for entry_id, raw, sha in session.execute(
                select(entry_col, data, digest).where(entry_col.in_(ids), data.is_not(None))):
            if raw is not None and sha is not None \
                    and hashlib.sha256(bytes(raw)).hexdigest() == sha:
                found.add(entry_id)
    if found:
        log.warning("%d entries due for destruction were stored before sealing; run "
                    "`intake db seal --apply`", len(found))
    return found


# -- what is done: the log, the review list, the portal's exclusion -----------------------


def _of_agency(query: Any, agency_id: str | None) -> Any:
    if agency_id is None:
        return query
    return query.join(Entry, Entry.id == DispositionLogEntry.entry_id).where(
        Entry.agency_id == agency_id)


def disposition_log(session: Session, limit: int = 200, before_id: int | None = None, *,
                    agency_id: str | None = None) -> list[DispositionLogEntry]:
    """The newest ``limit`` rows of the disposition log (before ``before_id``; of the
    entries of ``agency_id`` when given)."""
    query = select(DispositionLogEntry).order_by(DispositionLogEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(DispositionLogEntry.id < before_id)
    return list(session.scalars(_of_agency(query, agency_id)))


def runs(session: Session, limit: int = 20) -> list[DispositionRun]:
    return list(session.scalars(select(DispositionRun).order_by(DispositionRun.id.desc())
                                .limit(limit)))


def destroyed_clause(entry_id: ColumnElement[int] | Any = Entry.id) -> ColumnElement[bool]:
    """True for an entry whose personal data retention destroyed: what the public portal
    leaves out (``.where(~destroyed_clause())``)."""
    return exists().where(DispositionLogEntry.entry_id == entry_id,
                          DispositionLogEntry.action == ACTION_OF[Disposition.DESTROY])


def disposed_entry_ids(session: Session) -> set[int]:
    """The entries whose personal data retention destroyed."""
    return set(session.scalars(select(DispositionLogEntry.entry_id).where(
        DispositionLogEntry.action == ACTION_OF[Disposition.DESTROY])))


def awaiting_review(session: Session, limit: int = 200, *, agency_id: str | None = None
                    ) -> list[DispositionLogEntry]:
    """Entries a ``review`` series listed and no officer has decided on yet, oldest first
    (of the entries of ``agency_id`` when given)."""
    decided = (select(DispositionLogEntry.entry_id)
               .where(DispositionLogEntry.action.in_(("destroyed", KEPT))))
    return list(session.scalars(_of_agency(
        select(DispositionLogEntry)
        .where(DispositionLogEntry.action == "review",
               DispositionLogEntry.entry_id.not_in(decided))
        .order_by(DispositionLogEntry.id).limit(limit), agency_id)))


def decide_review(session: Session, user: StaffAccount, log_id: int, decision: str) -> str:
    """A records officer's decision on an entry listed for review: ``destroy`` (never a
    held one) or ``keep``. Returns the entry's record number."""
    _require_officer(user)
    _take_turn(session)
    listed = session.get(DispositionLogEntry, log_id)
    if listed is None or listed.action != "review" or access_for(
            session, user, listed.entry_id) is None:
        raise RetentionActionError("No such entry awaits review.")
    if session.scalar(select(func.count()).where(
            DispositionLogEntry.entry_id == listed.entry_id,
            DispositionLogEntry.action.in_(("destroyed", KEPT)))):
        raise RetentionActionError("That entry was decided on already.")
    actor = _actor(user)
    item = [(listed.entry_id, listed.record_number, listed.series, listed.due_at)]
    if decision == "destroy":
        if held_entry_ids(session, [listed.entry_id]):
            raise RetentionActionError("The entry is under a legal hold; release the hold "
                                       "first.")
        if not destroy_entries(session, [listed.entry_id]):
            raise RetentionActionError("The entry was stored before sealing; run "
                                       "`intake db seal --apply` first.")
        _log(session, item, "destroyed", run_id=None, actor=actor)
    elif decision == "keep":
        _log(session, item, KEPT, run_id=None, actor=actor)
    else:
        raise RetentionActionError("Choose to destroy or to keep the entry.")
    _log_access(session, user, [listed.entry_id], f"retention-{decision}",
                {"series": listed.series})
    return listed.record_number


# -- legal holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldSummary:
    id: int
    reason: str
    case_reference: str
    scope: dict[str, Any]
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None
    entries: int


def _actor(user: StaffAccount) -> str:
    return f"staff:{user.id}"


def _require_officer(user: StaffAccount) -> None:
    if user.role not in RECORDS_ROLES:
        raise RetentionActionError("Only records officers manage retention and legal holds.")


def _clean(text: str, limit: int, missing: str) -> str:
    value = " ".join(text.split())[:limit]
    if not value:
        raise RetentionActionError(missing)
    return value


def entry_ids_for_numbers(session: Session, user: StaffAccount | None,
                          record_numbers: Sequence[str]) -> list[int]:
    """The entries of these record numbers (that ``user``'s agency may see, when given);
    an unknown number is an error naming it."""
    wanted = list(dict.fromkeys(n.strip().upper() for n in record_numbers if n.strip()))
    if not wanted:
        raise RetentionActionError("Give at least one record number.")
    if len(wanted) > MAX_HOLD_ENTRIES:
        raise RetentionActionError("At most %(max)s record numbers at once.",
                                   max=MAX_HOLD_ENTRIES)
    found = {row[0]: row[1] for row in session.execute(
        select(Entry.record_number, Entry.id).where(Entry.record_number.in_(wanted)))}
    if user is not None:
        found = {n: i for n, i in found.items() if access_for(session, user, i) is not None}
    missing = [n for n in wanted if n not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise RetentionActionError("Unknown record number(s): %(numbers)s", numbers=shown)
    return [found[n] for n in wanted]


def entry_ids_for_search(session: Session, user: StaffAccount, filters: InboxFilter
                         ) -> list[int]:
    """The entries the user's staff search finds now (all pages)."""
    ids = search_entry_ids(session, user, filters, MAX_HOLD_ENTRIES + 1)
    if not ids:
        raise RetentionActionError("The search finds no entries.")
    if len(ids) > MAX_HOLD_ENTRIES:
        raise RetentionActionError("The search finds more than %(max)s entries; narrow it.",
                                   max=MAX_HOLD_ENTRIES)
    return ids


def place_hold(session: Session, user: StaffAccount, *, reason: str, case_reference: str,
               entry_ids: Sequence[int], scope: dict[str, Any]) -> int:
    """Put a legal hold on ``entry_ids`` (fixed now); an event and an access-log row for
    each. Returns the hold's id."""
    _require_officer(user)
    reason = _clean(reason, MAX_REASON, "Give the reason for the hold.")
    case = _clean(case_reference, MAX_CASE, "Give the case reference.")
    ids = list(dict.fromkeys(entry_ids))
    if not ids:
        raise RetentionActionError("The hold names no entries.")
    actor = _actor(user)
    hold = LegalHold(reason=reason, case_reference=case, scope=scope, created_at=utcnow(),
                     created_by=actor)
    session.add(hold)
    session.flush()
    session.add_all(LegalHoldEntry(hold_id=hold.id, entry_id=i) for i in ids)
    _hold_events(session, ids, "legal-hold", actor, hold.id, case)
    _log_access(session, user, ids, "legal-hold", {"hold": str(hold.id), "case": case})
    session.flush()
    log.info("legal hold %s placed on %d entries by %s", hold.id, len(ids), actor)
    return hold.id


def release_hold(session: Session, user: StaffAccount, hold_id: int, reason: str) -> int:
    """Release a hold (its entries may be disposed of again unless another hold holds
    them); an event and an access-log row for each. Returns how many entries it held."""
    _require_officer(user)
    why = _clean(reason, MAX_REASON, "Give the reason for the release.")
    hold = session.get(LegalHold, hold_id, with_for_update=True)
    if hold is None:
        raise RetentionActionError("No such hold.")
    if hold.released_at is not None:
        raise RetentionActionError("The hold was released already.")
    actor = _actor(user)
    hold.released_at, hold.released_by, hold.release_reason = utcnow(), actor, why
    ids = list(session.scalars(select(LegalHoldEntry.entry_id)
                               .where(LegalHoldEntry.hold_id == hold_id)))
    _hold_events(session, ids, "legal-hold-released", actor, hold.id, hold.case_reference)
    _log_access(session, user, ids, "legal-hold-released",
                {"hold": str(hold.id), "case": hold.case_reference})
    session.flush()
    log.info("legal hold %s released by %s", hold.id, actor)
    return len(ids)


def _hold_events(session: Session, ids: Sequence[int], kind: str, actor: str, hold_id: int,
                 case: str) -> None:
    now = utcnow()
    session.add_all(Event(entry_id=i, kind=kind, at=now, actor=actor,
                          detail={"hold": hold_id, "case": case}) for i in ids)


def _log_access(session: Session, user: StaffAccount, ids: Sequence[int], what: str,
                detail: dict[str, str]) -> None:
    now = utcnow()
    session.add_all(AccessLogEntry(staff_id=user.id, entry_id=i, what=what[:32], at=now,
                                   detail=detail) for i in ids)


def holds(session: Session, *, active_only: bool = False) -> list[HoldSummary]:
    """The legal holds, newest first, with how many entries each names."""
    return _hold_summaries(session, LegalHold.released_at.is_(None) if active_only else None)


def _hold_summaries(session: Session, condition: ColumnElement[bool] | None
                    ) -> list[HoldSummary]:
    counts = (select(LegalHoldEntry.hold_id, func.count().label("n"))
              .group_by(LegalHoldEntry.hold_id).subquery())
    query = (select(LegalHold, counts.c.n).outerjoin(counts, counts.c.hold_id == LegalHold.id)
             .order_by(LegalHold.id.desc()))
    if condition is not None:
        query = query.where(condition)
    return [HoldSummary(h.id, h.reason, h.case_reference, dict(h.scope or {}), h.created_at,
                        h.created_by, h.released_at, h.released_by, h.release_reason, n or 0)
            for h, n in session.execute(query)]


def hold(session: Session, hold_id: int) -> HoldSummary | None:
    """One legal hold, or None."""
    return next((h for h in _hold_summaries(session, LegalHold.id == hold_id)), None)


def hold_record_numbers(session: Session, hold_id: int, limit: int = 500) -> list[str]:
    return list(session.scalars(
        select(Entry.record_number).join(LegalHoldEntry, LegalHoldEntry.entry_id == Entry.id)
        .where(LegalHoldEntry.hold_id == hold_id).order_by(Entry.id).limit(limit)))


def officer_by_email(session: Session, email: str) -> StaffAccount:
    """The records officer (or system administrator) account with this e-mail address: who
    a hold made from the command line is made by."""
    account = session.scalar(select(StaffAccount).where(
        func.lower(StaffAccount.email) == email.strip().lower()))
    if account is None or account.disabled:
        raise RetentionActionError("No active staff account %(email)s.", email=repr(email))
    _require_officer(account)
    return account
