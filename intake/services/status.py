"""The submitter's status page: the entry a private link opens, and its story.

The link's token is the only key; :func:`entry_for_link` turns it into the
entry (or None, which the page answers with a 404). :func:`timeline` tells
what happened to it, from the tables that hold each event: received (the
entry), sent and passed on to an agency (the routing decisions), read by the
agency (the staff access log), answered (the thread's replies to the
submitter), closed or reopened (the status events) and published (the public
record). Only plain facts leave here (agency names, never ids, rule ids or
state names); the page words them in the person's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.db.models import Entry, Event, RoutingDecision, ThreadMessage
from intake.db.publication_models import Publication
from intake.db.staff_models import AccessLogEntry, StaffAccount
from intake.services.links import entry_for_access_token
from intake.services.publication import PUBLISHED, publication_state

__all__ = ["Step", "entry_for_link", "timeline"]

# The kinds of step, in the words the page gives them.
RECEIVED = "received"
ROUTED = "routed"
REROUTED = "rerouted"
READ = "read"
ANSWERED = "answered"
CLOSED = "closed"
REOPENED = "reopened"
PUBLISHED_STEP = "published"


@dataclass(frozen=True)
class Step:
    """One thing that happened to the entry, as the submitter may know it."""

    kind: str  # one of the constants above
    at: datetime
    agency: str | None = None  # the agency's name (never its id)
    text: str | None = None  # an answer's words (the agency's own, to this person)


def entry_for_link(session: Session, token: str) -> Entry | None:
    """The entry whose private link carries ``token``, or None for an unknown token."""
    entry_id = entry_for_access_token(session, token)
    return None if entry_id is None else session.get(Entry, entry_id)


def timeline(session: Session, entry: Entry, agencies: Mapping[str, str]) -> list[Step]:
    """What happened to ``entry``, oldest first. ``agencies``: id -> name (rules)."""

    def name(agency_id: str | None) -> str | None:
        # An agency no longer in the rules is "a state agency" (the page says so): never its id.
        return agencies.get(agency_id or "")

    steps = [Step(RECEIVED, entry.received_at)]
    decisions = session.execute(
        select(RoutingDecision.decided_at, RoutingDecision.route_to)
        .where(RoutingDecision.entry_id == entry.id)
        .order_by(RoutingDecision.decided_at, RoutingDecision.id)).all()
    for index, (at, route_to) in enumerate(decisions):
        steps.append(Step(ROUTED if index == 0 else REROUTED, at, name(route_to)))
    # The first time someone of each agency opened it.
    read_by: dict[str | None, datetime] = {}
    for at, agency_id in session.execute(
            select(AccessLogEntry.at, StaffAccount.agency_id)
            .join(StaffAccount, StaffAccount.id == AccessLogEntry.staff_id)
            .where(AccessLogEntry.entry_id == entry.id, AccessLogEntry.what == "entry")
            .order_by(AccessLogEntry.at, AccessLogEntry.id)):
        read_by.setdefault(agency_id, at)
    steps.extend(Step(READ, at, name(agency_id)) for agency_id, at in read_by.items())
    # Answers: staff replies written in intake, and agency mail relayed to the person.
    # Internal notes (direction "note") and the person's own messages are not answers.
    for at, body, author_kind, author_id in session.execute(
            select(ThreadMessage.at, ThreadMessage.body, ThreadMessage.author_kind,
                   ThreadMessage.author_id)
            .where(ThreadMessage.entry_id == entry.id,
                   ((ThreadMessage.direction == "out") & (ThreadMessage.author_kind == "staff"))
                   | ((ThreadMessage.direction == "in") & (ThreadMessage.author_kind == "agency")))
            .order_by(ThreadMessage.at, ThreadMessage.id)):
        answered_by: str | None = entry.agency_id
        if author_kind == "staff" and author_id and author_id.isdigit():
            answered_by = session.scalar(select(StaffAccount.agency_id)
                                         .where(StaffAccount.id == int(author_id))) or answered_by
        elif author_kind == "agency" and author_id in agencies:
            answered_by = author_id
        steps.append(Step(ANSWERED, at, name(answered_by), body))
    for at, detail in session.execute(
            select(Event.at, Event.detail)
            .where(Event.entry_id == entry.id, Event.kind == "status-changed")
            .order_by(Event.at, Event.id)):
        if detail.get("to") == "closed":
            steps.append(Step(CLOSED, at))
        elif detail.get("from") == "closed":
            steps.append(Step(REOPENED, at))
    if publication_state(session, entry.id) == PUBLISHED:
        published_at = session.scalar(select(Publication.published_at)
                                      .where(Publication.entry_id == entry.id))
        steps.append(Step(PUBLISHED_STEP, published_at or entry.received_at))
    # Stable: steps with the same time keep the order above (received before routed ...).
    return sorted(steps, key=lambda step: step.at)
