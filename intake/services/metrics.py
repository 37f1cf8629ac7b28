"""The figures ``/metrics`` shows, read from the database at scrape time.

Everything here is a count or an age grouped by values intake itself defines
(channel, rule id, agency id, work kind and state, mailbox name): never a
subject, a body, a name or an address. Computing them from the database,
rather than counting in each process, gives every gunicorn worker and every
``intake worker`` process the same answer and survives restarts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Text, cast, func, select

from intake.db import Database
from intake.db.mail_models import MailboxState, QuarantinedMessage
from intake.db.models import Entry, RoutingDecision, WorkItem, WorkState, utcnow
from intake.services import heartbeats

# The work kinds that carry something out of intake (services/delivery.py's handlers).
DELIVERY_KINDS = ("deliver", "acknowledge", "relay", "relay-send", "reply")
# What a delivery work item's state means for its result.
_RESULT = {WorkState.DONE: "delivered", WorkState.DEAD: "dead_letter",
           WorkState.PENDING: "pending", WorkState.RUNNING: "sending"}


@dataclass
class Figures:
    submissions: dict[str, int] = field(default_factory=dict)            # channel
    routing: dict[tuple[str, str, str], int] = field(default_factory=dict)  # rule, agency, by
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
        # Routing outcomes: the first matched rule decided (none: the default route);
        # a staff reroute is counted apart.
        routing: Counter[tuple[str, str, str]] = Counter()
        for rules_text, route_to, decided_by, n in session.execute(
                select(cast(RoutingDecision.matched_rules, Text), RoutingDecision.route_to,
                       RoutingDecision.decided_by.is_not(None), func.count())
                .group_by(cast(RoutingDecision.matched_rules, Text), RoutingDecision.route_to,
                          RoutingDecision.decided_by.is_not(None))):
            matched = json.loads(rules_text) if rules_text else []
            rule = str(matched[0]) if matched else "(default)"
            routing[(rule, str(route_to), "staff" if decided_by else "rules")] += int(n)
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
