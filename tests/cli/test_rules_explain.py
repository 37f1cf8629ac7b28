"""`intake rules explain RECORD_NUMBER` and `intake rules replay` beside staff reroutes,
through the command line (click's runner, in process) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from intake.cli import cli
from intake.db.models import Entry, WorkItem
from intake.db.staff_models import StaffAccount
from intake.runtime import Runtime
from intake.services import inbox
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from tests.conftest import ORIGINALS_KEY, SMALL_RULES, TEST_SECRET, make_account


@pytest.fixture
def env(runtime: Runtime, tmp_path: Path) -> dict[str, str]:
    return {"INTAKE_SECRET_KEY": TEST_SECRET, "INTAKE_DATABASE_URL": runtime.settings.database_url,
            "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"), "INTAKE_RULES": str(SMALL_RULES)}


@pytest.fixture
def stored(runtime: Runtime) -> Iterator[dict[str, str]]:
    """Three entries routed by the route work (the rules), one then rerouted by staff."""
    bodies = {"pothole": "A pothole on Route 9", "rerouted": "Potholes and a pothole by the lake",
              "other": "Just saying hello"}
    numbers: dict[str, str] = {}
    with runtime.db.session() as s:
        for key, body in bodies.items():
            numbers[key] = record_submissions(s, [NewSubmission(
                channel="web", kind="contact", raw=key.encode(), content_type="text/plain",
                body=body, form_slug="contact", submitter=SubmitterData(email=f"{key}@ex.org"))],
                record_prefix="EX", originals_key=ORIGINALS_KEY)[0].record_number
        routes = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
    for item_id in routes:
        assert runtime.jobs.perform(item_id, "test") == "done"
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    with runtime.db.session() as s:
        user = s.get(StaffAccount, agent.id)
        entry = s.scalar(select(Entry).where(Entry.record_number == numbers["rerouted"]))
        assert user is not None and entry is not None and entry.agency_id == "dot"
        inbox.reroute(s, user, entry, runtime.rules.current(), "parks", "By the lake: parks",
                      keep_copy=False)
    yield numbers


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["rules", *args], env=env)


def test_explain_a_record_number(env: dict[str, str], stored: dict[str, str]) -> None:
    result = run(env, "explain", stored["pothole"].lower())
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"{stored['pothole']}: now with dot")
    assert "stored rules decision: dot (by rule 'roads'" in out
    assert "rule 'roads' matched" in out  # the engine's reasons, replayed
    assert "the replayed decision agrees with the stored rules decision" in out
    assert "rerouted by staff" not in out

    result = run(env, "explain", "--json", f"#{stored['rerouted']}")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["record_number"] == stored["rerouted"]
    assert report["agency_now"] == "parks"
    assert report["rerouted_by_staff"] is True
    assert report["stored_rules_decision"]["route_to"] == "dot"
    assert report["stored_rules_decision"]["decided_by"] == "roads"
    assert report["latest_decision"]["by_staff"] is True
    assert report["replayed"]["route_to"] == "dot"
    assert [s["rule_id"] for s in report["replayed"]["trace"] if s["matched"]] == ["roads"]
    assert report["agrees_with_stored_rules_decision"] is True

    text = run(env, "explain", stored["rerouted"]).output
    assert "rerouted by staff: parks (by staff member" in text

    missing = run(env, "explain", "EX-1999-000001")
    assert missing.exit_code == 1 and "no entry with record number EX-1999-000001" in (
        missing.output)
    assert run(env, "explain", "no-such-thing").exit_code == 2


def test_replay_reports_staff_reroutes_apart(env: dict[str, str], stored: dict[str, str],
                                             tmp_path: Path) -> None:
    # The same rules: nothing moves; the reroute is reported apart, not as a disagreement.
    result = run(env, "replay", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["total"], report["moved"], report["unchanged"]) == (3, 0, 3)
    assert report["rerouted_by_staff"]["count"] == 1
    assert report["rerouted_by_staff"]["entries"] == [{
        "record_number": stored["rerouted"], "rules_decided": "dot", "agency_now": "parks",
        "rules_now": "dot"}]

    # A candidate that sends potholes to the governor: both entries the rules sent to
    # dot would move, the rerouted one included (compared with what the rules decided).
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(SMALL_RULES.read_text().replace("route_to: dot", "route_to: governor"))
    text = run(env, "replay", "--rules", str(candidate)).output
    assert "3 entries replayed" in text and "2 would move, 1 unchanged" in text
    assert f"dot -> governor: 2 (e.g. {stored['pothole']}, {stored['rerouted']})" in text
    assert "1 entries rerouted by staff (not counted as moves):" in text
    assert f"{stored['rerouted']}: rules decided dot, now with parks, rules now say governor" \
        in text
