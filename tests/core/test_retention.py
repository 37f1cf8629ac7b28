"""The retention schedule's pure core: loading with file:line errors, periods, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intake.core.retention import (
    Disposition,
    EntryFacts,
    Keep,
    RetentionError,
    Trigger,
    decide,
    latest_start,
    load_schedule,
    load_schedule_file,
    unknown_references,
)
from intake.settings import packaged_retention_path

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)

TWO_SERIES = """\
version: 1
series:
  - id: press
    match: {tags: [press, Media]}
    trigger: closed
    keep: 10y
    disposition: archive
  - id: roads
    title: Road complaints
    citation: GRS 6.5 item 020
    match: {agency: [dot], channel: web, form: contact}
    trigger: received
    keep: 18m
    disposition: destroy
"""


def facts(**changes: object) -> EntryFacts:
    values: dict[str, object] = {
        "entry_id": 1, "agency_id": "dot", "form_slug": "contact", "channel": "web",
        "tags": frozenset(), "received_at": NOW - timedelta(days=600), "closed_at": None,
        "held": False}
    values.update(changes)
    return EntryFacts(**values)  # type: ignore[arg-type]


class TestLoad:
    def test_the_packaged_example_loads(self) -> None:
        schedule = load_schedule_file(packaged_retention_path())
        assert [s.id for s in schedule.series] == [
            "press", "surveys", "tax-correspondence", "general-correspondence"]
        assert unknown_references(schedule, ["revenue"], ["survey"]) == []

    def test_a_series_reads_as_written(self) -> None:
        schedule = load_schedule(TWO_SERIES)
        press, roads = schedule.series
        assert (press.trigger, press.keep, press.disposition) == (
            Trigger.CLOSED, Keep(10, "y"), Disposition.ARCHIVE)
        assert press.tags == frozenset({"press", "media"})
        assert (roads.title, roads.citation, roads.line) == (
            "Road complaints", "GRS 6.5 item 020", 8)
        assert (roads.agencies, roads.channels, roads.forms) == (
            frozenset({"dot"}), frozenset({"web"}), frozenset({"contact"}))
        assert len(schedule.sha256) == 64

    @pytest.mark.parametrize(("text", "expected"), [
        ("", "retention.yaml:1: the file is empty (expected 'version: 1' and 'series:')"),
        ("version: 2\nseries: []\n", "retention.yaml:1: version must be 1"),
        ("version: 1\n", "retention.yaml:1: 'series' is missing"),
        ("version: 1\nseries: {a: 1}\n", "retention.yaml:2: 'series' must be a list"),
        ("version: 1\nseries:\n  - id: a\n    trigger: received\n    keep: 1y\n"
         "    disposition: destroy\n    colour: red\n",
         "retention.yaml:7: series 'a': unknown key 'colour' (expected one of: id, title, "
         "citation, match, trigger, keep, disposition)"),
        ("version: 1\nseries:\n  - id: a\n    keep: 1y\n    disposition: destroy\n",
         "retention.yaml:3: series 'a': 'trigger' is missing"),
        ("version: 1\nseries:\n  - id: A b\n    trigger: received\n    keep: 1y\n"
         "    disposition: destroy\n",
         "retention.yaml:3: series id 'A b' must be lower-case letters, digits, '.', '_' "
         "or '-' (at most 64)"),
        ("version: 1\nseries:\n  - id: a\n    trigger: received\n    keep: 0d\n"
         "    disposition: destroy\n",
         "retention.yaml:5: series 'a': keep '0d' is not a period like 90d, 6w, 18m or 7y"),
        ("version: 1\nseries:\n  - id: a\n    trigger: received\n    keep: 1y\n"
         "    disposition: destroy\n    match: {channel: fax}\n",
         "retention.yaml:7: series 'a': unknown channel 'fax' (expected one of: web, email)"),
        ("version: 1\nseries:\n  - id: a\n    trigger: received\n    keep: 1y\n"
         "    disposition: destroy\n    match: {tags: []}\n",
         "retention.yaml:7: series 'a': match tags must not be an empty list (leave it out "
         "to match any)"),
        ("version: 1\nseries:\n  - id: a\n    trigger: received\n    trigger: closed\n"
         "    keep: 1y\n    disposition: destroy\n",
         "retention.yaml:5: a series: duplicate key 'trigger' (first on line 4)"),
        ("version: 1\nseries: [\n", "retention.yaml:3: YAML syntax error:"),
    ])
    def test_every_problem_is_reported_with_its_line(self, text: str, expected: str) -> None:
        with pytest.raises(RetentionError) as raised:
            load_schedule(text)
        assert any(str(e).startswith(expected) for e in raised.value.errors), \
            raised.value.errors

    def test_all_problems_at_once_in_line_order(self) -> None:
        text = ("version: 1\nseries:\n"
                "  - id: a\n    trigger: opened\n    keep: 1y\n    disposition: destroy\n"
                "  - id: a\n    trigger: received\n    keep: 1y\n    disposition: shred\n"
                "  - id: b\n    trigger: received\n    keep: 1y\n    disposition: archive\n"
                "  - id: b\n    trigger: received\n    keep: 1y\n    disposition: archive\n")
        with pytest.raises(RetentionError) as raised:
            load_schedule(text, "r.yaml")
        assert [str(e) for e in raised.value.errors] == [
            "r.yaml:4: series 'a': trigger 'opened' is not one of: received, closed",
            "r.yaml:10: series 'a': disposition 'shred' is not one of: destroy, archive, "
            "review",
            "r.yaml:15: series 'b': duplicate id (first on line 11)",
        ]

    def test_not_utf8_is_an_error_on_its_line(self) -> None:
        with pytest.raises(RetentionError, match=r"r.yaml:3: not valid UTF-8"):
            load_schedule(b"version: 1\nseries:\n  - id: \xff\n", "r.yaml")

    def test_an_unreadable_file_is_an_error_on_line_0(self, tmp_path: object) -> None:
        with pytest.raises(RetentionError, match=r":0: cannot read"):
            load_schedule_file("/nonexistent/retention.yaml")

    def test_unknown_agencies_and_forms_are_named(self) -> None:
        schedule = load_schedule(TWO_SERIES, "r.yaml")
        assert [str(e) for e in unknown_references(schedule, ["parks"], ["feedback"])] == [
            "r.yaml:8: series 'roads': unknown agency 'dot' (not in the routing rules)",
            "r.yaml:8: series 'roads': unknown form 'contact' (not in the forms file)",
        ]


class TestKeep:
    @pytest.mark.parametrize(("keep", "start", "end"), [
        (Keep(30, "d"), datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 31, tzinfo=UTC)),
        (Keep(2, "w"), datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 15, tzinfo=UTC)),
        (Keep(1, "m"), datetime(2030, 1, 31, tzinfo=UTC), datetime(2030, 2, 28, tzinfo=UTC)),
        (Keep(18, "m"), datetime(2030, 8, 15, tzinfo=UTC), datetime(2032, 2, 15, tzinfo=UTC)),
        (Keep(1, "y"), datetime(2028, 2, 29, tzinfo=UTC), datetime(2029, 2, 28, tzinfo=UTC)),
        (Keep(7, "y"), datetime(2030, 12, 31, 23, 59, tzinfo=UTC),
         datetime(2037, 12, 31, 23, 59, tzinfo=UTC)),
    ])
    def test_periods_are_calendar_periods(self, keep: Keep, start: datetime,
                                          end: datetime) -> None:
        assert keep.after(start) == end

    @pytest.mark.parametrize("keep", [Keep(1, "d"), Keep(3, "w"), Keep(1, "m"), Keep(13, "m"),
                                      Keep(1, "y"), Keep(4, "y")])
    def test_no_due_entry_starts_after_the_latest_start(self, keep: Keep) -> None:
        schedule = load_schedule(f"version: 1\nseries:\n  - id: a\n    trigger: received\n"
                                 f"    keep: {keep.count}{keep.unit}\n"
                                 f"    disposition: archive\n")
        series = schedule.series[0]
        bound = latest_start(series, NOW)
        for days in range(0, 400, 3):
            start = NOW - timedelta(days=days)
            if keep.after(start) <= NOW:
                assert start <= bound


class TestDecide:
    schedule = load_schedule(TWO_SERIES)

    @pytest.mark.parametrize(("changes", "series", "due", "reason"), [
        ({}, "roads", True, "due"),
        ({"received_at": NOW - timedelta(days=500)}, "roads", False, "not-yet"),
        ({"held": True}, "roads", False, "held"),
        ({"channel": "email"}, None, False, "no-series"),
        ({"agency_id": None}, None, False, "no-series"),
        # The first matching series wins: a press entry is archived, not destroyed.
        ({"tags": frozenset({"press"})}, "press", False, "open"),
        ({"tags": frozenset({"media"}), "closed_at": NOW - timedelta(days=3651)}, "press",
         False, "not-yet"),
        ({"tags": frozenset({"media"}), "closed_at": NOW - timedelta(days=3652)}, "press",
         True, "due"),
    ])
    def test_decisions_and_their_reasons(self, changes: dict[str, object], series: str | None,
                                         due: bool, reason: str) -> None:
        decision = decide(self.schedule, facts(**changes), NOW)
        assert (decision.series.id if decision.series else None, decision.due,
                decision.reason) == (series, due, reason)

    def test_due_at_is_when_the_period_ends(self) -> None:
        received = datetime(2028, 10, 31, 9, 30, tzinfo=UTC)
        decision = decide(self.schedule, facts(received_at=received), NOW)
        assert decision.due_at == datetime(2030, 4, 30, 9, 30, tzinfo=UTC)
        exactly = decide(self.schedule, facts(received_at=received), decision.due_at)
        assert exactly.due
