"""`intake rules check | explain | replay` and rule reloading, end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import select

from intake import create_app
from intake.db.models import Entry, RoutingDecision, WorkItem
from intake.runtime import Runtime
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from intake.settings import packaged_rules_path
from tests.conftest import (
    ORIGINALS_KEY,
    REPO,
    intake_command,
    make_settings,
    subprocess_env,
    wait_for,
)


def _intake(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(intake_command() + args, env=subprocess_env(**env), cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_check_passes_on_the_shipped_file() -> None:
    result = _intake(["rules", "check", "routing_rules.yaml"])
    assert result.returncode == 0, result.stderr
    assert "10 agencies" in result.stdout
    tested = result.stdout.split("agencies, ")[1]
    passed, _, total = tested.partition(" of ")
    assert passed == total.split()[0] and int(passed) >= 15


def test_check_reports_every_error_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "routing_rules.yaml"
    bad.write_text(
        "version: 1\n"
        "agencies:\n"
        "  - {id: dot, name: Transportation, email: intake@dot.examplia.gov}\n"
        "  - {id: governor, name: Governor, email: gov@examplia.gov}\n"
        "default_agency: governor\n"
        "rules:\n"
        "  - id: roads\n"
        "    when: {field: body, contains: [pothole]}\n"
        "    route_to: dott\n"
        "    stop: true\n"
        "  - id: bridges\n"
        "    when: {field: subject, matches: '(unclosed'}\n"
        "    route_to: dot\n"
        "  - id: roads\n"
        "    when: {field: body, contians: [x]}\n"
        "    route_to: dot\n"
    )
    result = _intake(["rules", "check", str(bad)])
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{bad}:9: rule 'roads': unknown agency 'dott' (did you mean 'dot'?)" in lines
    assert any(line.startswith(f"{bad}:12: rule 'bridges': bad regular expression")
               for line in lines), lines
    assert any(line.startswith(f"{bad}:14:") and "duplicate" in line for line in lines), lines
    assert any(line.startswith(f"{bad}:15:") and "contians" in line for line in lines), lines
    assert "Traceback" not in result.stderr


def test_check_fails_on_a_failing_embedded_test(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\n"
        "agencies:\n"
        "  - {id: dot, name: Transportation, email: intake@dot.examplia.gov}\n"
        "  - {id: governor, name: Governor, email: gov@examplia.gov}\n"
        "default_agency: governor\n"
        "rules:\n"
        "  - {id: roads, when: {field: body, contains: pothole}, route_to: dot, stop: true}\n"
        "tests:\n"
        "  - name: bridges go to transportation\n"
        "    input: {channel: web, body: 'The bridge is icy'}\n"
        "    expect: {route_to: dot}\n"
    )
    result = _intake(["rules", "check", str(rules)])
    assert result.returncode == 1
    assert f"{rules}:9: test 'bridges go to transportation' failed" in result.stderr
    assert "0 of 1 tests passed" in result.stdout


def test_explain_json_from_options() -> None:
    result = _intake(["rules", "explain", "--json", "--rules", "routing_rules.yaml",
                      "--channel", "web", "--form", "contact", "--field", "topic=parks",
                      "--subject", "Campsite", "--body", "Can I book a campground in July?"])
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["route_to"] == "parks"
    assert {"route_to", "cc", "tags", "matched_rules", "trace"} <= decision.keys()
    assert decision["matched_rules"]


def test_explain_text_from_an_eml_file(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: Jo <jo@example.org>\r\nTo: contact@examplia.gov\r\n"
                    b"Subject: =?utf-8?q?Se=C3=B1al_rota?=\r\n\r\n"
                    b"Hay un bache enorme en la carretera 9 (pothole).\r\n")
    result = _intake(["rules", "explain", "--rules", "routing_rules.yaml", str(eml)])
    assert result.returncode == 0, result.stderr
    assert "dot" in result.stdout.lower()


def test_explain_bad_field_option_is_a_usage_error() -> None:
    result = _intake(["rules", "explain", "--field", "no-equals-sign"])
    assert result.returncode == 2
    assert "expected NAME=VALUE" in result.stderr


def _store_and_route(rt: Runtime, bodies: list[str]) -> list[str]:
    numbers = []
    for i, body in enumerate(bodies):
        with rt.db.session() as s:
            numbers.append(record_submissions(s, [NewSubmission(
                channel="web", kind="contact", raw=f"{i}:{body}".encode(),
                content_type="text/plain", body=body, form_slug="contact",
                submitter=SubmitterData(email=f"p{i}@example.org"))], record_prefix="EX",
                        originals_key=ORIGINALS_KEY)[0].record_number)
    rt.jobs.start()

    def all_done() -> bool:
        with rt.db.session() as s:
            states = s.scalars(select(WorkItem.state).where(WorkItem.kind == "route")).all()
        return len(states) == len(bodies) and set(states) == {"done"}

    wait_for(all_done, message="all entries routed")
    rt.jobs.stop()
    return numbers


def test_replay_reports_what_a_candidate_file_would_move(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_RULES=str(packaged_rules_path()))
    rt = Runtime(settings)
    rt.rules.load()
    try:
        numbers = _store_and_route(rt, [
            "There is a pothole on Route 9",
            "Huge pothole near exit 4",
            "When will my tax refund arrive?",
            "Just saying hello",
        ])
        with rt.db.session() as s:
            before = dict(s.execute(select(Entry.record_number, Entry.agency_id)).all())
            decisions = s.scalars(select(RoutingDecision.rules_sha256)).all()
        assert before[numbers[0]] == "dot" and before[numbers[2]] == "revenue"
        assert set(decisions) == {rt.rules.current().sha256}

        # A candidate that sends potholes to the governor instead.
        text = packaged_rules_path().read_text()
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(text.replace("rules:\n", "rules:\n"
                                          "  - id: potholes-to-governor\n"
                                          "    when: {field: body, contains: pothole}\n"
                                          "    route_to: governor\n"
                                          "    stop: true\n", 1))
        result = _intake(["rules", "replay", "--json", "--rules", str(candidate)],
                         INTAKE_DATABASE_URL=db_url)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["total"] == 4 and report["moved"] == 2 and report["unchanged"] == 2
        assert report["moves"] == [{"from": "dot", "to": "governor", "count": 2,
                                    "examples": [numbers[0], numbers[1]]}]
        text_report = _intake(["rules", "replay", "--rules", str(candidate), "--since",
                               "2000-01-01"], INTAKE_DATABASE_URL=db_url)
        assert "2 would move" in text_report.stdout
        assert f"dot -> governor: 2 (e.g. {numbers[0]}, {numbers[1]})" in text_report.stdout
        # Replaying changes nothing.
        with rt.db.session() as s:
            after = dict(s.execute(select(Entry.record_number, Entry.agency_id)).all())
        assert after == before
    finally:
        rt.close()


def test_changed_rules_are_picked_up_and_broken_ones_refused(tmp_path: Path, db_url: str) -> None:
    rules = tmp_path / "rules.yaml"
    head = ("version: 1\nagencies:\n"
            "  - {id: dot, name: Transportation, email: intake@dot.examplia.gov}\n"
            "  - {id: parks, name: Parks, email: parks@examplia.gov}\n"
            "default_agency: dot\nrules:\n")
    rules.write_text(head + "  - {id: a, when: {field: body, contains: tree}, route_to: dot}\n")
    rt = Runtime(make_settings(tmp_path, db_url, INTAKE_RULES=str(rules)))
    try:
        first = rt.rules.load()
        rules.write_text(head + "  - {id: a, when: {field: body, contains: tree}, "
                                "route_to: parks}\n")
        second = rt.rules.current()
        assert second.sha256 != first.sha256 and rt.rules.error is None
        rules.write_text(head + "  - {id: a, when: {field: body, contains: tree}, "
                                "route_to: nowhere}\n")
        third = rt.rules.current()
        assert third.sha256 == second.sha256  # the last good rules keep routing
        assert rt.rules.error is not None and ":7:" in rt.rules.error
        health = create_app(runtime=rt).test_client().get("/healthz").get_json()
        assert health["rules"]["ok"] is False
        assert "unknown agency 'nowhere'" in health["rules"]["error"]
        assert health["rules"]["sha256"] == second.sha256
    finally:
        rt.close()
