"""Routing: applying the YAML rules to stored entries, and replaying them.

The rule engine is pure (``intake.core.routing``); this module loads the
rules file (reloading it when it changes, never replacing the last good rules
with a broken file), turns an entry into the engine's ``Submission``, stores
each decision with the SHA-256 of the file that made it (and, with it, the
agencies that hold a copy: ``entry_copies``), explains the routing of one
stored entry, and replays stored entries against a candidate file.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from intake.core.routing import Decision, RulesError, RuleSet, Submission, load_rules_file
from intake.db.copy_models import EntryCopy
from intake.db.models import Entry, Event, RoutingDecision, Submitter, WorkItem, utcnow

log = logging.getLogger("intake.routing")


class RulesProvider:
    """The current rule set, reloaded when the file changes.

    An invalid file never replaces the last valid one: routing goes on with
    the last good rules, and :attr:`error` (shown by ``/healthz``) says why
    the new file was refused.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rules: RuleSet | None = None
        self._stamp: tuple[int, int] | None = None
        self.error: str | None = None
        self.loaded_at: datetime | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def load(self) -> RuleSet:
        """Load now; raises :class:`RulesError` if the file is invalid."""
        with self._lock:
            stamp = self._stat()
            rules = load_rules_file(self.path)
            self._rules, self._stamp = rules, stamp
            self.error, self.loaded_at = None, utcnow()
            return rules

    def current(self) -> RuleSet:
        stamp = self._stat()
        with self._lock:
            if self._rules is not None and (stamp == self._stamp or stamp is None):
                if stamp is None and self.error is None:
                    self.error = f"{self.path}: file missing; routing with the last good rules"
                    log.error("rules file missing; routing with the last good rules")
                return self._rules
            try:
                rules = load_rules_file(self.path)
            except RulesError as exc:
                self._stamp = stamp  # don't re-parse the same broken file on every call
                self.error = str(exc).splitlines()[0] if str(exc) else "invalid rules file"
                log.error("rules file refused, keeping the last good rules: %s", self.error)
                if self._rules is None:
                    raise
                return self._rules
            if self._rules is not None and rules.sha256 != self._rules.sha256:
                log.info("rules file reloaded (sha256 %s)", rules.sha256[:12])
            self._rules, self._stamp = rules, stamp
            self.error, self.loaded_at = None, utcnow()
            return rules

    def status(self) -> dict[str, Any]:
        try:
            rules = self.current()
        except RulesError as exc:
            return {"ok": False, "path": str(self.path), "error": str(exc).splitlines()[0]}
        return {
            "ok": self.error is None,
            "path": str(self.path),
            "sha256": rules.sha256,
            "rules": len(rules.rule_ids),
            "agencies": len(rules.agencies),
            "error": self.error,
        }


class RoutableEntry(Protocol):
    """What routing reads of an entry: an :class:`Entry` or a row with these columns."""

    @property
    def channel(self) -> str: ...
    @property
    def form_slug(self) -> str | None: ...
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def fields(self) -> dict[str, Any]: ...


def submission_for_entry(entry: RoutableEntry, sender: str | None) -> Submission:
    fields = {k: v for k, v in (entry.fields or {}).items() if isinstance(v, str | list)}
    attachments = fields.pop("_attachments", [])
    recipient = fields.pop("_mailbox", None)
    return Submission(
        channel=entry.channel,
        form=entry.form_slug,
        subject=entry.subject,
        body=entry.body,
        sender=sender,
        recipient=recipient if isinstance(recipient, str) else None,
        fields=fields,
        attachments=tuple(a for a in attachments if isinstance(a, str)),
    )


def apply_decision(session: Session, entry: Entry, decision: Decision, *, actor: str,
                   event_kind: str = "routed") -> int:
    """Store a decision taken about one entry (a staff reroute); the decision's id."""
    session.flush()
    [decision_id] = store_decisions(session, [(entry.id, entry.agency_id, entry.tags or [],
                                               decision)], actor=actor, event_kind=event_kind)
    session.expire(entry, ["agency_id", "tags"])  # read again: written without the ORM
    return decision_id


def store_decisions(session: Session,
                    decided: Sequence[tuple[int, str | None, Sequence[str], Decision]], *,
                    actor: str, event_kind: str = "routed") -> list[int]:
    """The one writer of routing decisions: for each ``(entry id, its agency, its tags,
    decision)``, the decision, the entry's new agency and tags and the event on its
    timeline, one statement a table. The decisions' ids, in order.

    The agencies in a decision's ``cc`` (other than the one it routes to) hold a
    read-only copy from now on (``entry_copies``); the copies of an earlier decision
    that this one does not repeat end."""
    conn = session.connection()
    now = utcnow()
    decision_ids = [int(i) for i in conn.execute(_INSERT_DECISIONS, [{
        "entry_id": entry_id, "decided_at": now, "route_to": decision.route_to,
        "cc": list(decision.cc), "tags": list(decision.tags),
        "matched_rules": list(decision.matched_rules), "decided_by": decision.decided_by,
        "rules_sha256": decision.rules_sha256,
        "trace": [step.to_dict() for step in decision.trace], "actor": actor,
    } for entry_id, _, _, decision in decided]).scalars()]
    conn.execute(_DELETE_COPIES, {"ids": [entry_id for entry_id, _, _, _ in decided]})
    copies = [{"copy_entry": entry_id, "copy_agency": agency, "copy_since": now}
              for entry_id, _, _, decision in decided
              for agency in dict.fromkeys(decision.cc) if agency != decision.route_to]
    if copies:
        conn.execute(_INSERT_COPIES, copies)
    conn.execute(_UPDATE_ENTRY, [{
        "entry_id": entry_id, "agency": decision.route_to,
        "new_tags": sorted(set(tags) | set(decision.tags))}
        for entry_id, _, tags, decision in decided])
    conn.execute(_INSERT_EVENT, [{
        "entry_id": entry_id, "kind": event_kind, "at": now, "actor": actor,
        "detail": _routed_detail(decision, previous)}
        for entry_id, previous, _, decision in decided])
    return decision_ids


@dataclass(frozen=True)
class RoutedEntry:
    """The entry as the route work read it, for what follows in the same transaction."""

    id: int
    record_number: str
    fields: dict[str, Any]
    submitter_name: str | None
    submitter_email: str | None


AfterRouting = Callable[[Session, RoutedEntry, Decision, int], None]
#: ``AfterRouting`` for a batch: ``[(entry, decision, decision id), ...]``.
AfterRoutingMany = Callable[[Session, list[tuple[RoutedEntry, Decision, int]]], None]

_ENTRIES = cast(Table, Entry.__table__)
_SUBMITTERS = cast(Table, Submitter.__table__)
_ROUTING_COLUMNS = select(
    _ENTRIES.c.id, _ENTRIES.c.record_number, _ENTRIES.c.channel, _ENTRIES.c.form_slug,
    _ENTRIES.c.subject, _ENTRIES.c.body, _ENTRIES.c.fields, _ENTRIES.c.agency_id,
    _ENTRIES.c.tags, _SUBMITTERS.c.name.label("submitter_name"),
    _SUBMITTERS.c.email.label("submitter_email"),
).select_from(_ENTRIES.outerjoin(_SUBMITTERS, _SUBMITTERS.c.entry_id == _ENTRIES.c.id))
_ROUTING_READ = _ROUTING_COLUMNS.where(_ENTRIES.c.id.in_(bindparam("ids", expanding=True)))
_INSERT_DECISIONS = insert(cast(Table, RoutingDecision.__table__)).returning(
    cast(Table, RoutingDecision.__table__).c.id, sort_by_parameter_order=True)
_UPDATE_ENTRY = (update(_ENTRIES).where(_ENTRIES.c.id == bindparam("entry_id"))
                 .values(agency_id=bindparam("agency"), tags=bindparam("new_tags")))
_INSERT_EVENT = insert(cast(Table, Event.__table__))
_COPIES = cast(Table, EntryCopy.__table__)
_DELETE_COPIES = delete(_COPIES).where(_COPIES.c.entry_id.in_(bindparam("ids", expanding=True)))
# The copy repeats the entry's received_at (the copy agency's inbox order).
_INSERT_COPIES = insert(_COPIES).from_select(
    ["entry_id", "agency_id", "since", "received_at"],
    select(_ENTRIES.c.id, bindparam("copy_agency", type_=_COPIES.c.agency_id.type),
           bindparam("copy_since", type_=_COPIES.c.since.type), _ENTRIES.c.received_at)
    .where(_ENTRIES.c.id == bindparam("copy_entry")))


def make_route_handlers(
    rules: RulesProvider, after: AfterRouting | None = None,
    after_many: AfterRoutingMany | None = None,
) -> tuple[Callable[[Session, WorkItem], None], Callable[[Session, list[WorkItem]], None]]:
    """The "route" work, for one item and for a batch: decide, store, then ``after``
    (delivery planning; ``after_many`` for a batch, else ``after`` entry by entry) in
    the same transaction, so the decision and the deliveries it causes commit together.

    It runs once for every entry, so it reads the entries and their submitters in
    one query and stores the decisions with :func:`store_decisions`, as a staff
    reroute does.
    """

    def decide_and_store(session: Session, items: list[WorkItem]
                         ) -> list[tuple[RoutedEntry, Decision, int]]:
        """Read the items' entries (with their submitters) in one query, decide, and
        write the decisions, the entries' agency and tags and the "routed" events with
        one statement a table."""
        entry_ids = [item.entry_id for item in items]
        if None in entry_ids:
            raise ValueError("route work item without an entry")
        if len(set(entry_ids)) != len(entry_ids):
            raise ValueError("route batch: an entry twice")
        conn = session.connection()
        rows = {r.id: r for r in conn.execute(_ROUTING_READ, {"ids": entry_ids})}
        missing = [entry_id for entry_id in entry_ids if entry_id not in rows]
        if missing:
            raise ValueError(f"entry {missing[0]} not found")
        ruleset = rules.current()
        decided = [(rows[entry_id], transferred(rows[entry_id], ruleset, ruleset.decide(
            submission_for_entry(rows[entry_id], rows[entry_id].submitter_email))))
            for entry_id in entry_ids]
        decision_ids = store_decisions(session, [
            (entry.id, entry.agency_id, entry.tags or [], decision)
            for entry, decision in decided], actor="rules")
        for entry, decision in decided:
            log.info("entry %s routed to %s by %s", entry.id, decision.route_to,
                     decision.decided_by or "default")
        return [(RoutedEntry(id=entry.id, record_number=entry.record_number,
                             fields=dict(entry.fields or {}),
                             submitter_name=entry.submitter_name,
                             submitter_email=entry.submitter_email), decision, decision_id)
                for (entry, decision), decision_id in zip(decided, decision_ids, strict=True)]

    def route(session: Session, item: WorkItem) -> None:
        for routed_entry, decision, decision_id in decide_and_store(session, [item]):
            if after is not None:
                after(session, routed_entry, decision, decision_id)

    def route_many(session: Session, items: list[WorkItem]) -> None:
        """``route`` for a batch. Any failure fails the whole batch (nothing of it
        commits), and each item is then routed on its own."""
        routed = decide_and_store(session, items)
        if after_many is not None:
            after_many(session, routed)
        elif after is not None:
            for routed_entry, decision, decision_id in routed:
                after(session, routed_entry, decision, decision_id)

    return route, route_many


def transferred(entry: RoutableEntry, ruleset: RuleSet, decision: Decision) -> Decision:
    """A Live Help transcript whose chat an operator transferred goes where the chat went
    (the last transfer's agency), not where the rules would send it; the transfers and
    their reasons are in its fields (``chat.transfers``) and its transcript."""
    if entry.channel != "chat":
        return decision
    chat = (entry.fields or {}).get("chat")
    transfers = chat.get("transfers") if isinstance(chat, dict) else None
    if not transfers or not isinstance(transfers[-1], dict):
        return decision
    last = transfers[-1]
    agency = last.get("to")
    if not isinstance(agency, str) or agency not in ruleset.agencies \
            or agency == decision.route_to:
        return decision
    return replace(decision, route_to=agency, cc=(), decided_by=None,
                   route_reason=f"transferred in Live Help: {str(last.get('reason'))[:200]}")


def _routed_detail(decision: Decision, previous: str | None) -> dict[str, Any]:
    return {
        "agency": decision.route_to,
        "previous_agency": previous,
        "cc": list(decision.cc),
        "matched_rules": list(decision.matched_rules),
        "decided_by": decision.decided_by,
        "rules_sha256": decision.rules_sha256,
    }


# -- explain and replay --------------------------------------------------------


def _is_staff(actor: str | None) -> bool:
    return actor is not None and actor.startswith("staff:")


def _by_rules() -> Any:
    """Decisions the rules made (rows from before migration 0019 without an actor too)."""
    return or_(RoutingDecision.actor.is_(None), ~RoutingDecision.actor.like("staff:%"))


@dataclass(frozen=True)
class StoredDecision:
    """A routing decision as stored: where, who decided (rules or a staff member), why."""

    route_to: str
    cc: list[str]
    matched_rules: list[str]
    decided_by: str | None
    rules_sha256: str
    decided_at: datetime
    actor: str | None

    @classmethod
    def of(cls, row: RoutingDecision) -> StoredDecision:
        return cls(route_to=row.route_to, cc=list(row.cc or []),
                   matched_rules=list(row.matched_rules or []), decided_by=row.decided_by,
                   rules_sha256=row.rules_sha256, decided_at=row.decided_at, actor=row.actor)

    @property
    def by_staff(self) -> bool:
        return _is_staff(self.actor)

    def to_dict(self) -> dict[str, Any]:
        return {"route_to": self.route_to, "cc": self.cc, "matched_rules": self.matched_rules,
                "decided_by": self.decided_by, "rules_sha256": self.rules_sha256,
                "decided_at": self.decided_at.isoformat(), "actor": self.actor,
                "by_staff": self.by_staff}


@dataclass(frozen=True)
class Explanation:
    """The rules replayed on one stored entry, beside what was stored for it."""

    entry_id: int
    record_number: str
    agency_now: str | None
    replayed: Decision
    rules_decision: StoredDecision | None  # the latest decision the rules made
    latest: StoredDecision | None  # the latest decision of all (a staff reroute, maybe)

    @property
    def agrees(self) -> bool:
        """Whether the rules now decide what the rules decided then (route and cc)."""
        stored = self.rules_decision
        return stored is not None and stored.route_to == self.replayed.route_to \
            and sorted(stored.cc) == sorted(self.replayed.cc)

    @property
    def rerouted_by_staff(self) -> bool:
        return self.latest is not None and self.latest.by_staff

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_number": self.record_number,
            "agency_now": self.agency_now,
            "replayed": self.replayed.to_dict(),
            "stored_rules_decision": self.rules_decision.to_dict()
            if self.rules_decision else None,
            "latest_decision": self.latest.to_dict() if self.latest else None,
            "agrees_with_stored_rules_decision": self.agrees,
            "rerouted_by_staff": self.rerouted_by_staff,
        }


def explain_entry(session: Session, ruleset: RuleSet, record_number: str
                  ) -> Explanation | None:
    """Replay ``ruleset`` on the stored entry ``record_number`` (None: no such entry):
    which rule matches and why (the engine's trace), with the decisions stored for it."""
    entry = session.scalar(select(Entry).where(Entry.record_number == record_number))
    if entry is None:
        return None
    sender = session.scalar(select(Submitter.email).where(Submitter.entry_id == entry.id))
    replayed = ruleset.decide(submission_for_entry(entry, sender))
    decisions = select(RoutingDecision).where(RoutingDecision.entry_id == entry.id) \
        .order_by(RoutingDecision.id.desc()).limit(1)
    latest = session.scalar(decisions)
    by_rules = session.scalar(decisions.where(_by_rules()))
    return Explanation(entry_id=entry.id, record_number=entry.record_number,
                       agency_now=entry.agency_id, replayed=replayed,
                       rules_decision=StoredDecision.of(by_rules) if by_rules else None,
                       latest=StoredDecision.of(latest) if latest else None)


REROUTED_LISTED = 1000


@dataclass
class ReplayReport:
    """What a candidate rules file would change of what the rules decided.

    An entry's old route is the latest decision the *rules* made for it; an entry a
    staff member rerouted since is counted in ``rerouted`` (and listed), not as a
    disagreement: the rules never decided its current agency.
    """

    total: int = 0
    unchanged: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    never_routed: int = 0
    rerouted: int = 0
    rerouted_entries: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return sum(self.moves.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "unchanged": self.unchanged,
            "moved": self.moved,
            "never_routed": self.never_routed,
            "moves": [
                {"from": a, "to": b, "count": n, "examples": self.examples.get((a, b), [])}
                for (a, b), n in self.moves.most_common()
            ],
            "rerouted_by_staff": {"count": self.rerouted, "entries": self.rerouted_entries,
                                  "listed_up_to": REROUTED_LISTED},
        }


def replay(
    session: Session,
    ruleset: RuleSet,
    *,
    since: datetime | None = None,
    examples_per_move: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Re-route stored entries with ``ruleset`` without changing anything, and compare
    with what the rules decided for each (never with a staff reroute)."""
    query = select(Entry)
    count_query = select(func.count()).select_from(Entry)
    if since is not None:
        query = query.where(Entry.received_at >= since)
        count_query = count_query.where(Entry.received_at >= since)
    total = session.scalar(count_query) or 0
    report = ReplayReport()
    senders = _senders(session, since)
    by_rules = _latest_decisions(session, since, rules_only=True)
    latest = _latest_decisions(session, since, rules_only=False)
    for entry in _stream(session, query.order_by(Entry.id)):
        report.total += 1
        new = ruleset.decide(submission_for_entry(entry, senders.get(entry.id)))
        old = by_rules.get(entry.id, (None, None))[0]
        last_to, last_actor = latest.get(entry.id, (None, None))
        if last_to is None:
            report.never_routed += 1
        if _is_staff(last_actor):
            report.rerouted += 1
            if len(report.rerouted_entries) < REROUTED_LISTED:
                report.rerouted_entries.append({
                    "record_number": entry.record_number, "rules_decided": old,
                    "agency_now": entry.agency_id, "rules_now": new.route_to})
        if old == new.route_to:
            report.unchanged += 1
        else:
            key = (old or "(not routed)", new.route_to)
            report.moves[key] += 1
            bucket = report.examples.setdefault(key, [])
            if len(bucket) < examples_per_move:
                bucket.append(entry.record_number)
        if progress is not None and (report.total % 1000 == 0 or report.total == total):
            progress(report.total, total)
    return report


def _latest_decisions(session: Session, since: datetime | None, *, rules_only: bool
                      ) -> dict[int, tuple[str, str | None]]:
    """Each entry's latest routing decision (of the rules only, if asked): (route, actor)."""
    latest = select(func.max(RoutingDecision.id)).group_by(RoutingDecision.entry_id)
    if rules_only:
        latest = latest.where(_by_rules())
    query = select(RoutingDecision.entry_id, RoutingDecision.route_to, RoutingDecision.actor) \
        .where(RoutingDecision.id.in_(latest))
    if since is not None:
        query = query.join(Entry, Entry.id == RoutingDecision.entry_id) \
            .where(Entry.received_at >= since)
    return {row.entry_id: (row.route_to, row.actor) for row in session.execute(query)}


def _senders(session: Session, since: datetime | None) -> dict[int, str]:
    query = select(Submitter.entry_id, Submitter.email).join(Entry, Entry.id == Submitter.entry_id)
    if since is not None:
        query = query.where(Entry.received_at >= since)
    return {row.entry_id: row.email for row in session.execute(query) if row.email}


def _stream(session: Session, query: Any) -> Iterator[Entry]:
    yield from session.scalars(query.execution_options(yield_per=500))
