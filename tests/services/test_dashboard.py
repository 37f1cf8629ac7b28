"""The dashboard's figures (issue 29) on SQLite and PostgreSQL: time to first response,
reroutes and where to, dead letters, survey results, every count below the minimum cell
suppressed; and ``intake stats`` printing the same figures, as text and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.cli import cli
from intake.core.routing import Decision
from intake.core.stats import cell, percentile
from intake.db.models import Entry, Event, WorkItem
from intake.runtime import Runtime
from intake.services import dashboard
from intake.services.forms import load_forms
from intake.services.records import NewSubmission, record_submissions
from intake.services.routing import apply_decision
from tests.conftest import ORIGINALS_KEY, SMALL_RULES, TEST_SECRET, make_entry

NOW = datetime.now(UTC)


def _scope(agency: str | None, min_cell: int = 10) -> dashboard.Scope:
    return dashboard.Scope(agency=agency, min_cell=min_cell, now=NOW + timedelta(minutes=1))


def _table(chart: object) -> list[list[str]]:
    return chart.table()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(("n", "shown"), [(0, "0"), (1, "< 10"), (9, "< 10"), (10, "10")])
def test_cells_below_the_minimum_are_not_shown(n: int, shown: str) -> None:
    assert cell(n, 10) == shown


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)


def test_time_to_first_response_median_and_p90(runtime: Runtime) -> None:
    ids = [make_entry(runtime, "dot", subject=f"Pothole {i}", key=f"k{i}",
                      received_at=NOW - timedelta(hours=30)) for i in range(10)]
    with runtime.db.session() as s:
        for i, entry_id in enumerate(ids):  # answered after 1..10 hours; a later one ignored
            s.add(Event(entry_id=entry_id, kind="replied",
                        at=NOW - timedelta(hours=30) + timedelta(hours=i + 1)))
            s.add(Event(entry_id=entry_id, kind="relayed",
                        at=NOW - timedelta(hours=30) + timedelta(hours=i + 20)))
    with runtime.db.session() as s:
        table = _table(dashboard.first_response(s, _scope("dot")))
        assert table[1] == ["Median", "5.5", "10"]
        assert table[2] == ["90th percentile", "9.1", "10"]
        assert _table(dashboard.first_response(s, _scope("parks")))[1][1] == "not shown"
        small = dashboard.first_response(s, _scope("dot", min_cell=11))
        assert _table(small)[1] == ["Median", "not shown", "< 11"]


def test_reroutes_and_where_to(runtime: Runtime) -> None:
    ids = [make_entry(runtime, "dot", subject=f"Pothole {i}", key=f"r{i}") for i in range(12)]
    rules = runtime.rules.current()
    with runtime.db.session() as s:
        for entry_id in ids[:10]:
            entry = s.get(Entry, entry_id)
            assert entry is not None
            apply_decision(s, entry, Decision(route_to="parks", cc=(), tags=(), matched_rules=(),
                                              decided_by=None, captures={}, trace=(),
                                              rules_sha256=rules.sha256), actor="staff:1",
                           event_kind="rerouted")
    with runtime.db.session() as s:
        dot = dashboard.reroutes(s, _scope("dot"))
        assert _table(dot)[1:] == [["parks", "10"]]
        assert dot.note == "Reroute rate: 83.3 %"
        assert _table(dashboard.reroutes(s, _scope("parks")))[1:] == []  # first routed to dot
        assert dashboard.reroutes(s, _scope("dot", min_cell=11)).note == "Reroute rate: not shown"


def test_dead_letters_by_kind_per_agency(runtime: Runtime) -> None:
    dot = [make_entry(runtime, "dot", subject=f"P {i}", key=f"d{i}") for i in range(10)]
    parks = make_entry(runtime, "parks", subject="Trail", key="p0")
    with runtime.db.session() as s:
        for entry_id in [*dot, parks]:
            s.add(WorkItem(kind="deliver", entry_id=entry_id, dedupe_key=f"dead:{entry_id}",
                           state="dead"))
    with runtime.db.session() as s:
        assert _table(dashboard.dead_letters(s, _scope("dot")))[1:] == [["deliver", "10"]]
        assert _table(dashboard.dead_letters(s, _scope("parks")))[1:] == [["deliver", "< 10"]]
        assert _table(dashboard.dead_letters(s, _scope(None)))[1:] == [["deliver", "11"]]


def test_survey_results_per_question_free_text_never_shown(runtime: Runtime) -> None:
    surveys = {f.survey.id: f.survey for f in load_forms(runtime.settings).forms.values()
               if f.survey is not None}
    with runtime.db.session() as s:
        recorded = record_submissions(s, [NewSubmission(
            channel="web", kind="survey", raw=f"survey {i}".encode(),
            content_type="application/json", subject="Service satisfaction survey", body="",
            form_slug="survey", fields={"survey": "service-satisfaction", "answers": {
                "service": "state-parks" if i < 11 else "other",
                "channels": ["website", "phone"] if i % 2 else ["website"],
                "satisfaction": 5, "improve": "secret-free-text-answer"}, "lang": "en"})
            for i in range(12)], record_prefix="EX", pii_key=runtime.pii_key,
            originals_key=ORIGINALS_KEY)
        for r in recorded:
            entry = s.get(Entry, r.entry_id)
            assert entry is not None
            entry.agency_id = "parks"
    with runtime.db.session() as s:
        charts = {c.id: c for c in dashboard.survey_results(s, _scope("parks"), surveys)}
    assert _table(charts["survey-service-satisfaction-service"])[1:] == [
        ["Driver licence", "0"], ["Vehicle registration", "0"], ["Unemployment benefits", "0"],
        ["State parks", "11"], ["Another service", "< 10"]]
    assert _table(charts["survey-service-satisfaction-channels"])[1][1:] == ["12"]
    assert _table(charts["survey-service-satisfaction-satisfaction"])[5] == ["5", "12"]
    assert _table(charts["survey-service-satisfaction-improve"])[1:] == [["Answered", "12"]]
    assert "secret-free-text-answer" not in json.dumps(dashboard.as_json(list(charts.values())))


def test_intake_stats_prints_the_figures_as_text_and_json(runtime: Runtime) -> None:
    for i in range(12):
        make_entry(runtime, "dot", subject=f"Pothole {i}", key=f"s{i}")
    make_entry(runtime, "parks", subject="Trail", key="s-parks")
    env = {"INTAKE_DATABASE_URL": runtime.settings.database_url,
           "INTAKE_SECRET_KEY": TEST_SECRET, "INTAKE_RULES": str(SMALL_RULES),
           "INTAKE_INSTANCE_PATH": str(runtime.settings.instance_path)}
    text = CliRunner().invoke(cli, ["stats"], env=env)
    assert text.exit_code == 0, text.output
    assert "Open entries by age [open-age]" in text.output
    assert "Under 1 day   13" in text.output
    as_json = CliRunner().invoke(cli, ["stats", "--json", "--agency", "parks"], env=env)
    assert as_json.exit_code == 0, as_json.output
    figures = json.loads(as_json.output)
    assert figures["scope"] == "agency parks"
    open_age = next(c for c in figures["charts"] if c["id"] == "open-age")
    assert open_age["rows"][0] == ["Under 1 day", "< 10"]
    bad = CliRunner().invoke(cli, ["stats", "--agency", "no such agency!"], env=env)
    assert bad.exit_code == 2 and "not an agency id" in bad.output
    assert "Traceback" not in bad.output
    with runtime.db.session() as s:
        assert s.scalar(select(Entry.id).where(Entry.agency_id == "parks")) is not None
