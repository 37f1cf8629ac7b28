"""The figures ``/metrics`` shows, read from the database at scrape time.

Everything here is a count or an age grouped by values intake itself defines
(channel, rule id, agency id, work kind and state, mailbox name): never a
subject, a body, a name or an address. Computing them from the database,
rather than counting in each process, gives every gunicorn worker and every
``intake worker`` process the same answer and survives restarts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from intake.db import Database
from intake.db.mail_models import MailboxState, QuarantinedMessage
from intake.db.models import Entry, Event, RoutingDecision, WorkItem, WorkState, utcnow
from intake.services import heartbeats

# The work kinds that carry something out of intake (services/delivery.py's handlers).
DELIVERY_KINDS = ("deliver", "acknowledge", "relay", "relay-send", "reply")
# What a delivery work item's state means for its result.
_RESULT = {WorkState.DONE: "delivered", WorkState.DEAD: "dead_letter",
           WorkState.PENDING: "pending", WorkState.RUNNING: "sending"}


@dataclass
class Figures:
    submissions: dict[str, int] = field(default_factory=dict)            # channel
    routing: dict[tuple[str, str], int] = field(default_factory=dict)  # rule, agency
    reroutes: int = 0
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # kind, result
    retrying: dict[str, int] = field(default_factory=dict)               # kind (deferred)
    work_items: dict[tuple[str, str], int] = field(default_factory=dict)  # kind, state
    dead_letters: dict[str, int] = field(default_factory=dict)           # kind
    oldest_pending_seconds: dict[str, float] = field(default_factory=dict)  # kind
    quarantined: int = 0
    poll_lag_seconds: dict[str, float] = field(default_factory=dict)     # mailbox name
    mailbox_errors: dict[str, int] = field(default_factory=dict)         # mailbox name: 0/1
    live_workers: int = 0


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


def figures(db: Database, heartbeat_stale_seconds: float) -> Figures:
    """Every figure, in one read-only transaction."""
    out = Figures()
    now = utcnow()
    with db.session() as session:
        for channel, n in session.execute(
                select(Entry.channel, func.count()).group_by(Entry.channel)):
            out.submissions[str(channel)] = int(n)
        # Routing outcomes: the rule that decided; "(none)" when no rule did (the default
        # route, or a staff reroute: those are counted apart from their events too).
        routing: Counter[tuple[str, str]] = Counter()
        for decided_by, route_to, n in session.execute(
                select(RoutingDecision.decided_by, RoutingDecision.route_to, func.count())
                .group_by(RoutingDecision.decided_by, RoutingDecision.route_to)):
            routing[(str(decided_by or "(none)"), str(route_to))] += int(n)
        out.reroutes = int(session.scalar(select(func.count()).select_from(Event)
                                          .where(Event.kind == "rerouted")) or 0)
        out.routing = dict(routing)
        for kind, state, n in session.execute(
                select(WorkItem.kind, WorkItem.state, func.count())
                .group_by(WorkItem.kind, WorkItem.state)):
            out.work_items[(str(kind), str(state))] = int(n)
            if kind in DELIVERY_KINDS:
                result = _RESULT.get(WorkState(state), str(state))
                out.deliveries[(str(kind), result)] = int(n)
            if state == WorkState.DEAD:
                out.dead_letters[str(kind)] = int(n)
        for kind, n in session.execute(
                select(WorkItem.kind, func.count())
                .where(WorkItem.state == WorkState.PENDING, WorkItem.deferrals > 0,
                       WorkItem.kind.in_(DELIVERY_KINDS))
                .group_by(WorkItem.kind)):
            out.retrying[str(kind)] = int(n)
        for kind, oldest in session.execute(
                select(WorkItem.kind, func.min(WorkItem.created_at))
                .where(WorkItem.state.in_((WorkState.PENDING, WorkState.RUNNING)))
                .group_by(WorkItem.kind)):
            out.oldest_pending_seconds[str(kind)] = _age(now, oldest)
        out.quarantined = int(session.scalar(
            select(func.count()).select_from(QuarantinedMessage)) or 0)
        for name, last_poll_at, updated_at, last_error in session.execute(
                select(MailboxState.name, MailboxState.last_poll_at, MailboxState.updated_at,
                       MailboxState.last_error)):
            out.poll_lag_seconds[str(name)] = _age(now, last_poll_at or updated_at)
            out.mailbox_errors[str(name)] = 1 if last_error else 0
    out.live_workers = heartbeats.live_workers(db, heartbeat_stale_seconds)
    return out
