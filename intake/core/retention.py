"""Retention schedules: which entries are kept how long, and what happens to them then.

A schedule (``retention.yaml``) lists record series in order; an entry belongs
to the first series whose ``match`` it satisfies (agency, form, channel, tags;
each a list of which any one will do, all given keys must hold) and to none if
no series matches (it is then kept). A series says from when its clock runs
(``trigger``: ``received``, or ``closed``: the last time the entry was closed,
never while it is open), for how long (``keep``: ``90d``, ``6w``, ``18m``,
``7y``) and what happens then (``disposition``):

- ``destroy``: the personal data is destroyed (the entry's key and texts;
  the record number, dates, agency, ledger and hash chain stay);
- ``archive``: the entry is marked archived and kept as it is, for good;
- ``review``: the entry is put on the records officers' review list, where
  an officer decides to destroy it or keep it.

Pure: :func:`load_schedule` parses and validates (every problem as
``file:line: message``), :func:`decide` says what is due for one entry and why.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "DISPOSITIONS", "Disposition", "EntryFacts", "Keep", "RetentionDecision",
    "RetentionError", "ScheduleError", "Schedule", "Series", "Trigger", "decide",
    "latest_start", "load_schedule", "load_schedule_file", "unknown_references",
]


class Disposition(StrEnum):
    DESTROY = "destroy"
    ARCHIVE = "archive"
    REVIEW = "review"


class Trigger(StrEnum):
    RECEIVED = "received"
    CLOSED = "closed"


DISPOSITIONS = tuple(d.value for d in Disposition)
_MATCH_KEYS = ("agency", "form", "channel", "tags")
_SERIES_KEYS = ("id", "title", "citation", "match", "trigger", "keep", "disposition")
_CHANNELS = ("web", "email")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_KEEP = re.compile(r"^(\d{1,4})\s*([dwmy])$")
_UNITS = {"d": "day", "w": "week", "m": "month", "y": "year"}
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ScheduleError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RetentionError(Exception):
    """A retention schedule could not be loaded; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[ScheduleError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class Keep:
    """A retention period: ``count`` days, weeks, months or years."""

    count: int
    unit: str  # "d", "w", "m", "y"

    def after(self, start: datetime) -> datetime:
        """The moment this period ends when it starts at ``start`` (calendar months and
        years; the 31st plus a month is the last day of the next month)."""
        if self.unit == "d":
            return start + timedelta(days=self.count)
        if self.unit == "w":
            return start + timedelta(weeks=self.count)
        months = self.count * (12 if self.unit == "y" else 1)
        year, month = divmod(start.month - 1 + months, 12)
        year += start.year
        day = min(start.day, calendar.monthrange(year, month + 1)[1])
        return start.replace(year=year, month=month + 1, day=day)

    def __str__(self) -> str:
        unit = _UNITS[self.unit]
        return f"{self.count} {unit}{'' if self.count == 1 else 's'}"


@dataclass(frozen=True)
class Series:
    """One record series: which entries, from when, how long, and what then."""

    id: str
    title: str
    line: int
    trigger: Trigger
    keep: Keep
    disposition: Disposition
    citation: str = ""
    agencies: frozenset[str] = frozenset()  # empty: any
    forms: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()  # any one of them

    def matches(self, facts: EntryFacts) -> bool:
        return ((not self.agencies or facts.agency_id in self.agencies)
                and (not self.forms or facts.form_slug in self.forms)
                and (not self.channels or facts.channel in self.channels)
                and (not self.tags or not self.tags.isdisjoint(facts.tags)))


@dataclass(frozen=True)
class Schedule:
    series: tuple[Series, ...]
    sha256: str
    source: str

    def by_id(self, series_id: str) -> Series | None:
        return next((s for s in self.series if s.id == series_id), None)


@dataclass(frozen=True)
class EntryFacts:
    """What the schedule looks at: no text, no personal data."""

    entry_id: int
    agency_id: str | None
    form_slug: str | None
    channel: str
    tags: frozenset[str]
    received_at: datetime
    closed_at: datetime | None  # when it was last closed, if it is closed now
    held: bool


@dataclass(frozen=True)
class RetentionDecision:
    """For one entry: its series (None: no series, kept), when its period ends, and
    whether it is ``due`` now; ``reason`` says why not when it is not."""

    series: Series | None
    due: bool
    reason: str
    due_at: datetime | None = None


def decide(schedule: Schedule, facts: EntryFacts, now: datetime) -> RetentionDecision:
    """What the schedule asks for ``facts``'s entry at ``now``.

    Reasons: ``no-series`` (no series matches: kept), ``open`` (a ``closed``
    trigger and the entry is not closed), ``not-yet`` (its period ends after
    ``now``), ``held`` (due, but under a legal hold: never disposed of), ``due``.
    """
    series = next((s for s in schedule.series if s.matches(facts)), None)
    if series is None:
        return RetentionDecision(None, False, "no-series")
    start = facts.received_at if series.trigger is Trigger.RECEIVED else facts.closed_at
    if start is None:
        return RetentionDecision(series, False, "open")
    due_at = series.keep.after(start)
    if due_at > now:
        return RetentionDecision(series, False, "not-yet", due_at)
    if facts.held:
        return RetentionDecision(series, False, "held", due_at)
    return RetentionDecision(series, True, "due", due_at)


def latest_start(series: Series, now: datetime) -> datetime:
    """No entry whose clock started after this can be due at ``now``: the shortest a
    period can be (a month is at least 28 days, a year 365) before ``now``. Narrows the
    database's search; :func:`decide` then says exactly."""
    days = {"d": 1, "w": 7, "m": 28, "y": 365}[series.keep.unit] * series.keep.count
    return now - timedelta(days=days)


def unknown_references(schedule: Schedule, agencies: Iterable[str], forms: Iterable[str]
                       ) -> list[ScheduleError]:
    """Series that name an agency the routing rules or a form the forms file does not
    know: they would silently match nothing."""
    known_agencies, known_forms = set(agencies), set(forms)
    errors = []
    for series in schedule.series:
        for agency in sorted(series.agencies - known_agencies):
            errors.append(ScheduleError(schedule.source, series.line,
                                        f"series '{series.id}': unknown agency '{agency}' "
                                        "(not in the routing rules)"))
        for form in sorted(series.forms - known_forms):
            errors.append(ScheduleError(schedule.source, series.line,
                                        f"series '{series.id}': unknown form '{form}' "
                                        "(not in the forms file)"))
    return errors


# -- loading ------------------------------------------------------------------------------


def _line(node: Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


class _Reader:
    def __init__(self, filename: str) -> None:
        self.file = filename
        self.errors: list[ScheduleError] = []

    def err(self, node: Node | int | None, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.errors.append(ScheduleError(self.file, line, message))

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.err(node, f"{what} must be a mapping")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else ""
            if not name:
                self.err(key, f"{what}: keys must be plain names")
            elif name in out:
                self.err(key, f"{what}: duplicate key '{name}' "
                              f"(first on line {_line(out[name][0])})")
            else:
                out[name] = (key, value)
        return out

    def unknown(self, items: dict[str, tuple[Node, Node]], allowed: Sequence[str],
                what: str) -> None:
        for name, (key, _value) in items.items():
            if name not in allowed:
                self.err(key, f"{what}: unknown key '{name}' (expected one of: "
                              f"{', '.join(allowed)})")

    def string(self, node: Node, what: str) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag.endswith(":null") \
                or not str(node.value).strip():
            self.err(node, f"{what} must be a non-empty string")
            return None
        return str(node.value).strip()

    def strings(self, node: Node, what: str) -> frozenset[str] | None:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, SequenceNode) and not nodes:
            self.err(node, f"{what} must not be an empty list (leave it out to match any)")
            return None
        values = [self.string(n, what) for n in nodes]
        if any(v is None for v in values):
            return None
        return frozenset(v for v in values if v is not None)


def load_schedule(text: str | bytes, filename: str = "retention.yaml") -> Schedule:
    """Parse and validate a retention schedule; :class:`RetentionError` lists every problem."""
    raw = text.encode() if isinstance(text, str) else text
    reader = _Reader(filename)
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RetentionError([ScheduleError(filename, line, "not valid UTF-8")]) from None
    try:
        root = yaml.compose(decoded, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise RetentionError([ScheduleError(
            filename, mark.line + 1 if mark is not None else 0,
            f"YAML syntax error: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise RetentionError([ScheduleError(filename, 0, f"YAML error: {exc}")]) from None
    series: list[Series] = []
    top = reader.mapping(root, "the file") if root is not None else None
    if root is None:
        reader.err(1, "the file is empty (expected 'version: 1' and 'series:')")
    elif top is not None:
        reader.unknown(top, ("version", "series"), "the file")
        version = top.get("version")
        if version is None or not isinstance(version[1], ScalarNode) \
                or version[1].value != "1":
            reader.err(version[1] if version else 1, "version must be 1")
        listed = top.get("series")
        if listed is None:
            reader.err(1, "'series' is missing")
        elif not isinstance(listed[1], SequenceNode):
            reader.err(listed[1], "'series' must be a list")
        else:
            seen: dict[str, int] = {}
            for node in listed[1].value:
                one = _series(reader, node)
                if one is None:
                    continue
                if one.id in seen:
                    reader.err(node, f"series '{one.id}': duplicate id "
                                     f"(first on line {seen[one.id]})")
                    continue
                seen[one.id] = one.line
                series.append(one)
    if reader.errors:
        raise RetentionError(sorted(reader.errors, key=lambda e: e.line))
    return Schedule(tuple(series), hashlib.sha256(raw).hexdigest(), filename)


def _series(reader: _Reader, node: Node) -> Series | None:
    items = reader.mapping(node, "a series")
    if items is None:
        return None
    before = len(reader.errors)
    sid = reader.string(items["id"][1], "a series' id") if "id" in items else None
    if "id" not in items:
        reader.err(node, "a series needs an 'id'")
    elif sid is not None and not _ID.match(sid):
        reader.err(items["id"][1], f"series id '{sid}' must be lower-case letters, digits, "
                                   "'.', '_' or '-' (at most 64)")
    what = f"series '{sid}'" if sid else "a series"
    reader.unknown(items, _SERIES_KEYS, what)
    for required in ("trigger", "keep", "disposition"):
        if required not in items:
            reader.err(node, f"{what}: '{required}' is missing")
    trigger = _choice(reader, items.get("trigger"), [t.value for t in Trigger],
                      f"{what}: trigger")
    disposition = _choice(reader, items.get("disposition"), list(DISPOSITIONS),
                          f"{what}: disposition")
    keep = _keep(reader, items.get("keep"), what)
    title = reader.string(items["title"][1], f"{what}: title") if "title" in items else sid
    citation = reader.string(items["citation"][1], f"{what}: citation") \
        if "citation" in items else ""
    matched: dict[str, frozenset[str]] = {}
    if "match" in items:
        match = reader.mapping(items["match"][1], f"{what}: match")
        if match is not None:
            reader.unknown(match, _MATCH_KEYS, f"{what}: match")
            for name in _MATCH_KEYS:
                if name in match:
                    values = reader.strings(match[name][1], f"{what}: match {name}")
                    if values is not None:
                        matched[name] = values
            for channel in sorted(matched.get("channel", frozenset()) - set(_CHANNELS)):
                reader.err(match["channel"][1], f"{what}: unknown channel '{channel}' "
                                                f"(expected one of: {', '.join(_CHANNELS)})")
    if len(reader.errors) > before or sid is None or trigger is None or keep is None \
            or disposition is None:
        return None
    return Series(id=sid, title=title or sid, line=_line(node), trigger=Trigger(trigger),
                  keep=keep, disposition=Disposition(disposition), citation=citation or "",
                  agencies=matched.get("agency", frozenset()),
                  forms=matched.get("form", frozenset()),
                  channels=matched.get("channel", frozenset()),
                  tags=frozenset(t.lower() for t in matched.get("tags", frozenset())))


def _choice(reader: _Reader, item: tuple[Node, Node] | None, choices: list[str],
            what: str) -> str | None:
    if item is None:
        return None
    value = reader.string(item[1], what)
    if value is not None and value not in choices:
        reader.err(item[1], f"{what} '{value}' is not one of: {', '.join(choices)}")
        return None
    return value


def _keep(reader: _Reader, item: tuple[Node, Node] | None, what: str) -> Keep | None:
    if item is None:
        return None
    value = reader.string(item[1], f"{what}: keep")
    if value is None:
        return None
    found = _KEEP.match(value.lower())
    if found is None or int(found.group(1)) == 0:
        reader.err(item[1], f"{what}: keep '{value}' is not a period like 90d, 6w, 18m or 7y")
        return None
    return Keep(int(found.group(1)), found.group(2))


def load_schedule_file(path: str | os.PathLike[str]) -> Schedule:
    """Load a schedule from disk; an unreadable file is a RetentionError on line 0."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise RetentionError([ScheduleError(name, 0, f"cannot read: {exc.strerror}")]) from None
    return load_schedule(raw, name)
