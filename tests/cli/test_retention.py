"""`intake retention check | run | hold | holds | release | log`, end to end in a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.db.metadata import metadata
from intake.runtime import Runtime
from intake.services.records import OriginalUnavailable, open_original
from intake.settings import packaged_retention_path
from tests.conftest import (
    ORIGINALS_KEY,
    REPO,
    SMALL_RULES,
    intake_command,
    make_account,
    make_entry,
    make_settings,
    subprocess_env,
)

SCHEDULE = """\
version: 1
series:
  - id: roads
    title: Road complaints
    match: {agency: dot}
    trigger: received
    keep: 1y
    disposition: destroy
  - id: parks
    match: {agency: parks}
    trigger: received
    keep: 1y
    disposition: archive
"""


def _intake(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(intake_command() + args, env=subprocess_env(**env), cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_check_passes_on_the_packaged_example() -> None:
    result = _intake(["retention", "check", str(packaged_retention_path())])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("4 series, OK")


def test_check_reports_every_error_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "retention.yaml"
    bad.write_text(
        "version: 1\n"
        "series:\n"
        "  - id: roads\n"
        "    match: {agency: dot, chanel: web}\n"
        "    trigger: opened\n"
        "    keep: 3 decades\n"
        "    disposition: destroy\n"
        "  - id: roads\n"
        "    trigger: received\n"
        "    keep: 1y\n"
        "    disposition: shred\n"
        "  - id: ok\n"
        "    match: {agency: nowhere}\n"
        "    trigger: received\n"
        "    keep: 1y\n"
        "    disposition: archive\n"
    )
    result = _intake(["retention", "check", str(bad)], INTAKE_RULES=str(SMALL_RULES))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{bad}:4: series 'roads': match: unknown key 'chanel' (expected one of: " \
           "agency, form, channel, tags)" in lines
    assert f"{bad}:5: series 'roads': trigger 'opened' is not one of: received, closed" in lines
    assert any(line.startswith(f"{bad}:6: series 'roads': keep '3 decades'") for line in lines)
    assert any(line.startswith(f"{bad}:11: series 'roads': disposition 'shred'")
               for line in lines)
    # A schedule that parses is checked against the rules: an unknown agency matches nothing.
    bad.write_text("version: 1\nseries:\n  - id: ok\n    match: {agency: nowhere}\n"
                   "    trigger: received\n    keep: 1y\n    disposition: archive\n")
    result = _intake(["retention", "check", str(bad)], INTAKE_RULES=str(SMALL_RULES))
    assert result.returncode == 1
    assert f"{bad}:3: series 'ok': unknown agency 'nowhere' (not in the routing rules)" \
        in result.stderr


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(tmp_path, db_url))
    runtime.rules.load()
    yield runtime
    runtime.close()


def _dump(rt: Runtime) -> dict[str, list[tuple[object, ...]]]:
    with rt.db.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(
            select(t).order_by(*t.primary_key.columns))] for t in metadata.sorted_tables}


def test_dry_run_then_apply_then_nothing_left(rt: Runtime, tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    doomed = make_entry(rt, "dot", received_at=old, key="doomed")
    archived = make_entry(rt, "parks", received_at=old, key="archived")
    held = make_entry(rt, "dot", received_at=old, key="held")
    make_entry(rt, "dot", key="recent")
    officer = make_account(rt, "records@examplia.gov", "dot", "records_officer")
    schedule = tmp_path / "retention.yaml"
    schedule.write_text(SCHEDULE)
    env = {"INTAKE_DATABASE_URL": rt.settings.database_url, "INTAKE_RULES": str(SMALL_RULES),
           "INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}
    with rt.db.session() as s:
        from intake.db.models import Entry

        numbers = dict(s.execute(select(Entry.id, Entry.record_number)).all())

    hold = _intake(["retention", "hold", "--reason", "Litigation", "--case", "2030-CV-17",
                    "--record", numbers[held].lower(), "--by", officer.email], **env)
    assert hold.returncode == 0, hold.stderr
    assert hold.stdout.strip() == "hold 1: 1 entries held"
    listed = _intake(["retention", "holds"], **env)
    assert "2030-CV-17\t1 entries" in listed.stdout and "active" in listed.stdout

    before = _dump(rt)
    dry = _intake(["retention", "run"], INTAKE_RETENTION=str(schedule), **env)
    assert dry.returncode == 0, dry.stderr
    assert _dump(rt) == before
    assert "dry run, nothing changed" in dry.stdout
    assert "series roads (destroy 1 year after received): 1 due, 1 held (kept)" in dry.stdout
    assert f"  {numbers[doomed]} due " in dry.stdout
    assert "series parks (archive 1 year after received): 1 due" in dry.stdout

    # The packaged example is never applied.
    refused = _intake(["retention", "run", "--apply"], **env)
    assert refused.returncode == 2
    assert "INTAKE_RETENTION" in refused.stderr
    assert _dump(rt) == before

    applied = _intake(["retention", "run", "--apply"], INTAKE_RETENTION=str(schedule), **env)
    assert applied.returncode == 0, applied.stderr
    assert "run 1: 2 entries handled, 1 held (kept)" in applied.stdout
    assert "disposed of 2/2 entries" in applied.stderr
    with rt.db.session() as s:
        with pytest.raises(OriginalUnavailable):
            open_original(s, doomed, ORIGINALS_KEY)
        assert open_original(s, archived, ORIGINALS_KEY)
        assert open_original(s, held, ORIGINALS_KEY)
    verify = _intake(["audit", "verify"], **env)
    assert verify.returncode == 0, verify.stderr

    log = _intake(["retention", "log"], **env)
    assert {tuple(line.split("\t")[1:4]) for line in log.stdout.splitlines()} == {
        (numbers[doomed], "destroyed", "roads"), (numbers[archived], "archived", "parks")}

    settled = _dump(rt)
    again = _intake(["retention", "run", "--apply"], INTAKE_RETENTION=str(schedule), **env)
    assert again.returncode == 0, again.stderr
    assert _dump(rt) == settled
    assert "nothing is due, 1 held (kept); nothing changed" in again.stdout

    released = _intake(["retention", "release", "--id", "1", "--reason", "Case closed",
                        "--by", officer.email], **env)
    assert released.returncode == 0, released.stderr
    assert _intake(["retention", "holds"], **env).stdout.strip() == "no holds"
    assert "released" in _intake(["retention", "holds", "--all"], **env).stdout
    last = _intake(["retention", "run", "--apply"], INTAKE_RETENTION=str(schedule), **env)
    assert "run 2: 1 entries handled" in last.stdout


def test_a_hold_needs_a_records_officer_and_known_numbers(rt: Runtime, tmp_path: Path) -> None:
    agent = make_account(rt, "agent@examplia.gov", "dot", "agent")
    officer = make_account(rt, "records@examplia.gov", "dot", "records_officer")
    env = {"INTAKE_DATABASE_URL": rt.settings.database_url, "INTAKE_RULES": str(SMALL_RULES),
           "INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}
    entry = make_entry(rt, "dot")
    with rt.db.session() as s:
        from intake.db.models import Entry

        number = s.scalar(select(Entry.record_number).where(Entry.id == entry))
    by_agent = _intake(["retention", "hold", "--reason", "r", "--case", "c", "--record",
                        str(number), "--by", agent.email], **env)
    assert by_agent.returncode == 1
    assert "Only records officers" in by_agent.stderr
    unknown = _intake(["retention", "hold", "--reason", "r", "--case", "c", "--record",
                       "EX-1999-000001", "--by", officer.email], **env)
    assert unknown.returncode == 1
    assert "Unknown record number(s): EX-1999-000001" in unknown.stderr
    assert _intake(["retention", "holds"], **env).stdout.strip() == "no holds"
