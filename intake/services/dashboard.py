"""The staff dashboard's figures (issue 29): one agency's work, or every agency's for admins.

Each figure is a :class:`intake.core.stats.Chart` (what the SVG draws, what
the table and the CSV hold), its counts suppressed below the minimum cell.
The same list feeds ``/staff/dashboard``, ``/staff/dashboard.csv`` and
``intake stats``. Nothing here reads a message's text or a submitter's
details: free-text survey answers are counted, never shown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.core.forms import Survey, pick
from intake.core.stats import Chart, Row, cell, count_row, percentile
from intake.db.models import (
    Entry,
    EntryKind,
    EntryStatus,
    Event,
    RoutingDecision,
    WorkItem,
    WorkState,
)
from intake.services import chat, visits

#: The events that are an answer to the person who wrote (a staff reply, a relayed one).
RESPONSE_EVENTS = ("replied", "relayed")
AGE_BUCKETS = ((1, "Under 1 day"), (7, "1 to 7 days"), (30, "7 to 30 days"),
               (None, "Over 30 days"))


@dataclass(frozen=True)
class Scope:
    """Whose figures: one agency (``agency``) or every agency (None, admins)."""

    agency: str | None
    min_cell: int
    now: datetime
    weeks: int = 12

    @property
    def since(self) -> datetime:
        return self.now - timedelta(weeks=self.weeks)

    @property
    def who(self) -> str:
        return f"agency {self.agency}" if self.agency else "all agencies"


def _mine(scope: Scope) -> Any:
    return True if scope.agency is None else Entry.agency_id == scope.agency


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def submissions_per_week(session: Session, scope: Scope) -> Chart:
    rows = session.execute(select(Entry.received_at, Entry.channel)
                           .where(Entry.received_at >= scope.since, _mine(scope))).all()
    counts: Counter[tuple[str, str]] = Counter()
    for at, channel in rows:
        year, week, _ = _aware(at).isocalendar()
        counts[(f"{year}-W{week:02d}", channel)] += 1
    return Chart(
        "submissions", "Submissions per week by channel",
        f"Entries received per ISO week and channel, last {scope.weeks} weeks, {scope.who}.",
        ("Week and channel", "Submissions"),
        tuple(count_row(f"{week} {channel}", n, scope.min_cell)
              for (week, channel), n in sorted(counts.items())))


def first_response(session: Session, scope: Scope) -> Chart:
    first = (select(Event.entry_id, func.min(Event.at).label("at"))
             .where(Event.kind.in_(RESPONSE_EVENTS)).group_by(Event.entry_id).subquery())
    rows = session.execute(select(Entry.received_at, first.c.at)
                           .join(first, first.c.entry_id == Entry.id)
                           .where(Entry.received_at >= scope.since, _mine(scope))).all()
    hours = [max(0.0, (_aware(answered) - _aware(received)).total_seconds() / 3600)
             for received, answered in rows]
    n = len(hours)
    enough = n >= scope.min_cell
    median, p90 = (percentile(hours, 50), percentile(hours, 90)) if enough else (None, None)

    def shown(v: float | None) -> str:
        return f"{v:.1f}" if v is not None else "not shown"

    return Chart(
        "first-response", "Time to first response (hours)",
        f"Median and 90th percentile of the hours from receipt to the first answer sent to "
        f"the person, over {cell(n, scope.min_cell)} answered entries received in the last "
        f"{scope.weeks} weeks, {scope.who}.",
        ("Figure", "Hours", "Answered entries"),
        (Row("Median", round(median, 1) if median is not None else None,
             (shown(median), cell(n, scope.min_cell))),
         Row("90th percentile", round(p90, 1) if p90 is not None else None,
             (shown(p90), cell(n, scope.min_cell)))),
        note="" if enough else f"Fewer than {scope.min_cell} answered entries: not shown.",
        unit="hours")


def open_by_age(session: Session, scope: Scope) -> Chart:
    rows = session.scalars(select(Entry.received_at)
                           .where(Entry.status != EntryStatus.CLOSED, _mine(scope))).all()
    counts = dict.fromkeys((label for _, label in AGE_BUCKETS), 0)
    for at in rows:
        days = (scope.now - _aware(at)).total_seconds() / 86400
        label = next(label for limit, label in AGE_BUCKETS if limit is None or days < limit)
        counts[label] += 1
    return Chart("open-age", "Open entries by age",
                 f"Entries not closed, by the time since they were received, {scope.who}.",
                 ("Age", "Open entries"),
                 tuple(count_row(label, n, scope.min_cell) for label, n in counts.items()))


def reroutes(session: Session, scope: Scope) -> Chart:
    """Of the entries first routed to the scope's agency (or any), how many went elsewhere."""
    rows = session.execute(
        select(RoutingDecision.entry_id, RoutingDecision.route_to)
        .join(Entry, Entry.id == RoutingDecision.entry_id)
        .where(Entry.received_at >= scope.since).order_by(RoutingDecision.id)).all()
    trail: dict[int, list[str]] = defaultdict(list)
    for entry_id, route_to in rows:
        trail[entry_id].append(route_to)
    mine = [t for t in trail.values() if scope.agency is None or t[0] == scope.agency]
    moved = [t for t in mine if any(a != t[0] for a in t[1:])]
    where = Counter(t[-1] for t in moved)
    total = len(mine)
    rate = (f"{100 * len(moved) / total:.1f} %" if total >= scope.min_cell
            and not 0 < len(moved) < scope.min_cell else "not shown")
    return Chart(
        "reroutes", "Reroutes and where to",
        f"Entries received in the last {scope.weeks} weeks first routed to {scope.who}: "
        f"{cell(total, scope.min_cell)}; rerouted: {cell(len(moved), scope.min_cell)} "
        f"(reroute rate {rate}). Bars: the agency each rerouted entry went to last.",
        ("Rerouted to", "Entries"),
        tuple(count_row(agency, n, scope.min_cell) for agency, n in sorted(where.items())),
        note=f"Reroute rate: {rate}")


def dead_letters(session: Session, scope: Scope) -> Chart:
    query = (select(WorkItem.kind, func.count()).where(WorkItem.state == WorkState.DEAD)
             .group_by(WorkItem.kind))
    if scope.agency is not None:
        query = query.join(Entry, Entry.id == WorkItem.entry_id).where(_mine(scope))
    counts = {kind: n for kind, n in session.execute(query).all()}
    return Chart("dead-letters", "Dead letters",
                 f"Work items that failed for good and wait for staff, by kind, {scope.who}.",
                 ("Kind of work", "Dead letters"),
                 tuple(count_row(kind, int(n), scope.min_cell)
                       for kind, n in sorted(counts.items())))


def counted_surveys(forms: Iterable[Any], exit_survey: Survey | None) -> dict[str, Survey]:
    """The surveys whose answers are counted: the forms' surveys and Live Help's exit interview."""
    surveys = {f.survey.id: f.survey for f in forms if f.survey is not None}
    if exit_survey is not None:
        surveys[exit_survey.id] = exit_survey
    return surveys


def survey_results(session: Session, scope: Scope, surveys: Mapping[str, Survey]
                   ) -> list[Chart]:
    # Survey entries carry their answers; a chat transcript carries its exit interview's.
    rows = session.scalars(select(Entry.fields).where(
        Entry.kind.in_((EntryKind.SURVEY, chat.KIND)), Entry.received_at >= scope.since,
        _mine(scope))).all()
    by_survey: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for fields in rows:
        if isinstance(fields, dict) and isinstance(fields.get("answers"), dict):
            by_survey[str(fields.get("survey"))].append(fields["answers"])
    charts = []
    for survey_id, survey in sorted(surveys.items()):
        answers = by_survey.get(survey_id, [])
        for q in survey.questions:
            given = [a[q.id] for a in answers if a.get(q.id) not in (None, "", [])]
            title = f"{pick(survey.title, 'en')}: {pick(q.label, 'en')}"
            if q.type == "text":  # free text is never shown: only how many answered
                counted = [("Answered", len(given))]
            else:
                tally: Counter[str] = Counter()
                for value in given:
                    for v in value if isinstance(value, list) else [value]:
                        tally[str(v)] += 1
                labels = {c.value: pick(c.label, "en") for c in q.choices}
                counted = [(labels.get(v, v), tally.get(v, 0)) for v in q.choice_values()]
            charts.append(Chart(
                f"survey-{survey_id}-{q.id}".replace("_", "-"), title,
                f"Answers to this question, {cell(len(answers), scope.min_cell)} responses "
                f"in the last {scope.weeks} weeks, {scope.who}.",
                ("Answer", "Responses"),
                tuple(count_row(label, n, scope.min_cell) for label, n in counted),
                group="survey"))
    return charts


def _rate(done: int, views: int, min_cell: int) -> str:
    if views < min_cell or 0 < done < min_cell:
        return "not shown"
    return f"{100 * done / views:.1f} %"


def visit_charts(session: Session, scope: Scope) -> list[Chart]:
    since, until = scope.since.date(), scope.now.date()
    per_form = visits.visits_by_form(session, since, until)
    m = scope.min_cell
    charts = [Chart(
        "visits", "Page views per form",
        f"Views of each public form, last {scope.weeks} weeks, every agency (the forms are "
        "shared); the table adds submissions, validation errors, unique visitors per day "
        "summed, and the completion rate (submissions per view).",
        ("Form", "Views", "Submissions", "Validation errors", "Visitors", "Completion rate"),
        tuple(Row(f.form, None if 0 < f.views < m else f.views,
                  (cell(f.views, m), cell(f.submissions, m), cell(f.invalid, m),
                   cell(f.visitors, m), _rate(f.submissions, f.views, m)))
              for f in per_form), group="visits")]
    for f in per_form:
        for key, title, values in (("referrers", "referrers", f.referrers),
                                   ("browsers", "browsers", f.browsers),
                                   ("systems", "operating systems", f.systems)):
            charts.append(Chart(
                f"visits-{f.form}-{key}", f"Form {f.form}: {title}",
                f"Page views of form {f.form} by {title[:-1]}, last {scope.weeks} weeks.",
                (title[:-1].capitalize(), "Views"),
                tuple(count_row(k, n, m) for k, n in
                      sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))),
                group="visits"))
    return charts


def dashboard(session: Session, scope: Scope, surveys: Mapping[str, Survey]) -> list[Chart]:
    """Every chart of the dashboard, in the order the page shows them."""
    return [submissions_per_week(session, scope), first_response(session, scope),
            open_by_age(session, scope), reroutes(session, scope),
            dead_letters(session, scope), *survey_results(session, scope, surveys),
            *visit_charts(session, scope)]


def as_json(charts: Sequence[Chart]) -> list[dict[str, Any]]:
    """The charts for ``intake stats --json``: the table's cells, as shown."""
    return [{"id": c.id, "title": c.title, "description": c.description,
             "columns": list(c.columns), "rows": c.table()[1:], "note": c.note}
            for c in charts]


__all__ = ["Scope", "as_json", "dashboard"]
