"""The visit counters (issue 29, promise P1): batches written, figures read.

The web edge (:mod:`intake.web.visits`) counts in memory and hands a batch
here every ``INTAKE_STATS_FLUSH_SECONDS`` and at shutdown: one upsert per
distinct cell, not one row per request. Unique visitors come as either an
amount to add (this process's own new visitors, when the day's key is only in
memory) or a total known to every process (Redis HyperLogLog), kept as the
larger of the stored and the given number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from intake.db import Database
from intake.db.stats_models import VisitCount, VisitUnique

COUNTS = cast(Table, VisitCount.__table__)
UNIQUES = cast(Table, VisitUnique.__table__)
OUTCOMES = ("view", "submission", "invalid", "other")


@dataclass(frozen=True)
class Cell:
    """One counter's dimensions (all already coarse: no address, URL, token or UA)."""

    day: date
    route: str
    form: str
    referrer: str
    browser: str
    os: str
    language: str
    outcome: str


@dataclass(frozen=True)
class Batch:
    """What a process counted since its last flush."""

    counts: Mapping[Cell, int]
    # (day, route, form) -> visitors to add (in-memory key) ...
    unique_adds: Mapping[tuple[date, str, str], int]
    # ... or the shared total (Redis): kept as the larger of the two.
    unique_totals: Mapping[tuple[date, str, str], int]

    def __bool__(self) -> bool:
        return bool(self.counts or self.unique_adds or self.unique_totals)


def _insert(dialect: str, table: Table) -> Any:  # the dialect's Insert (ON CONFLICT)
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@cache
def _count_upsert(dialect: str) -> Insert:
    stmt = _insert(dialect, COUNTS)
    keys = [c.name for c in COUNTS.primary_key.columns]
    return stmt.on_conflict_do_update(index_elements=keys,
                                      set_={"hits": COUNTS.c.hits + stmt.excluded.hits})


@cache
def _unique_upsert(dialect: str, add: bool) -> Insert:
    stmt = _insert(dialect, UNIQUES)
    larger = func.max if dialect == "sqlite" else func.greatest
    new = (UNIQUES.c.visitors + stmt.excluded.visitors if add
           else larger(UNIQUES.c.visitors, stmt.excluded.visitors))
    return stmt.on_conflict_do_update(index_elements=["day", "route", "form"],
                                      set_={"visitors": new})


def write_batch(db: Database, batch: Batch) -> None:
    """Add a batch to the counters, in one transaction."""
    if not batch:
        return
    with db.session() as s:
        dialect = s.get_bind().dialect.name
        if batch.counts:
            s.execute(_count_upsert(dialect), [
                {"day": c.day, "route": c.route, "form": c.form, "referrer": c.referrer,
                 "browser": c.browser, "os": c.os, "language": c.language,
                 "outcome": c.outcome, "hits": n} for c, n in batch.counts.items()])
        for add, values in ((True, batch.unique_adds), (False, batch.unique_totals)):
            if values:
                s.execute(_unique_upsert(dialect, add), [
                    {"day": d, "route": r, "form": f, "visitors": n}
                    for (d, r, f), n in values.items()])


@dataclass(frozen=True)
class FormVisits:
    """One form's figures over a period (raw counts; reports suppress small cells)."""

    form: str
    views: int
    submissions: int
    invalid: int
    visitors: int
    referrers: dict[str, int]
    browsers: dict[str, int]
    systems: dict[str, int]
    languages: dict[str, int]

    @property
    def completion_rate(self) -> float | None:
        """Submissions per page view of the form (None without views)."""
        return self.submissions / self.views if self.views else None


def visits_by_form(session: Session, since: date, until: date) -> list[FormVisits]:
    """Each form's views, submissions, validation errors, visitors and breakdowns."""
    rows = session.execute(
        select(COUNTS.c.form, COUNTS.c.referrer, COUNTS.c.browser, COUNTS.c.os,
               COUNTS.c.language, COUNTS.c.outcome, func.sum(COUNTS.c.hits))
        .where(COUNTS.c.day >= since, COUNTS.c.day <= until, COUNTS.c.form != "")
        .group_by(COUNTS.c.form, COUNTS.c.referrer, COUNTS.c.browser, COUNTS.c.os,
                  COUNTS.c.language, COUNTS.c.outcome)).all()
    uniques = {form: n for form, n in session.execute(
        select(UNIQUES.c.form, func.sum(UNIQUES.c.visitors))
        .where(UNIQUES.c.day >= since, UNIQUES.c.day <= until, UNIQUES.c.form != "")
        .group_by(UNIQUES.c.form)).all()}
    acc: dict[str, dict[str, dict[str, int]]] = {}
    for form, referrer, browser, os_, language, outcome, hits in rows:
        f = acc.setdefault(form, {k: {} for k in
                                  ("outcome", "referrer", "browser", "os", "language")})
        n = int(hits)
        f["outcome"][outcome] = f["outcome"].get(outcome, 0) + n
        if outcome == "view":  # where people come from, with what: counted on arrival
            for dim, value in (("referrer", referrer), ("browser", browser), ("os", os_),
                               ("language", language)):
                f[dim][value] = f[dim].get(value, 0) + n
    return [FormVisits(form=form, views=f["outcome"].get("view", 0),
                       submissions=f["outcome"].get("submission", 0),
                       invalid=f["outcome"].get("invalid", 0),
                       visitors=int(uniques.get(form, 0) or 0),
                       referrers=f["referrer"], browsers=f["browser"], systems=f["os"],
                       languages=f["language"])
            for form, f in sorted(acc.items())]


def views_by_route(session: Session, since: date, until: date) -> dict[tuple[str, str], int]:
    """Requests per (route template, outcome) over the period, every public page."""
    rows = session.execute(
        select(COUNTS.c.route, COUNTS.c.outcome, func.sum(COUNTS.c.hits))
        .where(COUNTS.c.day >= since, COUNTS.c.day <= until)
        .group_by(COUNTS.c.route, COUNTS.c.outcome)).all()
    return {(route, outcome): int(n) for route, outcome, n in rows}


__all__ = ["OUTCOMES", "Batch", "Cell", "FormVisits", "views_by_route", "visits_by_form",
           "write_batch"]
