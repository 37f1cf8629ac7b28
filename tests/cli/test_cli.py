"""The command line as an operator meets it: real processes, real ports."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from intake.db.migrate import head_revision
from tests.conftest import (
    REPO,
    SMALL_RULES,
    free_port,
    intake_command,
    output_of,
    subprocess_env,
    wait_for,
)


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(intake_command() + args, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def _get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _healthz(port: int) -> tuple[int, dict[str, object]] | None:
    try:
        return _get_json(f"http://127.0.0.1:{port}/healthz")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(expected in line for line in lines), result.stderr
    assert len([line for line in lines if line.startswith("intake:")]) == 1, result.stderr


def test_serve_on_embedded_defaults_answers_healthz(
    tmp_path: Path, server_process: Callable[..., subprocess.Popen[str]]
) -> None:
    """`intake serve` with nothing configured: SQLite in the instance folder, embedded broker."""
    port = free_port()
    env = {k: v for k, v in subprocess_env().items() if k != "INTAKE_SECRET_KEY"}
    env["INTAKE_INSTANCE_PATH"] = str(tmp_path / "instance")
    proc = server_process(["serve", "--port", str(port)], env, cwd=tmp_path)
    status, body = wait_for(lambda: _healthz(port) or (proc.poll() is not None and (0, {})),
                            timeout=30, message="/healthz")
    assert proc.poll() is None, output_of(proc)
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "kind": "sqlite", "schema_current": True}
    assert body["broker"] == {"ok": True, "kind": "embedded"}
    assert body["rules"]["ok"] is True  # type: ignore[index]
    assert body["secret_key"] == "ephemeral"
    assert (tmp_path / "instance" / "intake.sqlite3").is_file()


def test_second_serve_on_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = subprocess_env(INTAKE_INSTANCE_PATH=str(tmp_path), INTAKE_RULES=str(SMALL_RULES))
        result = _run(["serve", "--port", str(port)], env)
    _assert_one_clear_line(result, f"cannot listen on 127.0.0.1:{port}")


def test_unreachable_database_fails_clearly(tmp_path: Path) -> None:
    env = subprocess_env(INTAKE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                         INTAKE_RULES=str(SMALL_RULES))
    result = _run(["serve", "--port", str(free_port())], env)
    _assert_one_clear_line(result, "database unreachable")
    assert "INTAKE_DATABASE_URL" in result.stderr


def test_broker_down_at_startup_fails_clearly(tmp_path: Path) -> None:
    env = subprocess_env(INTAKE_INSTANCE_PATH=str(tmp_path), INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = _run(["serve", "--port", str(free_port())], env)
    _assert_one_clear_line(result, "redis broker unreachable")
    result = _run(["worker"], env)
    _assert_one_clear_line(result, "redis broker unreachable")


def test_bad_setting_names_the_variable(tmp_path: Path) -> None:
    env = subprocess_env(INTAKE_DATABASE_URL="mysql://nope/x")
    result = _run(["serve"], env)
    _assert_one_clear_line(result, "INTAKE_DATABASE_URL: unknown URL scheme 'mysql'")
    assert result.returncode == 2


def test_worker_without_broker_explains(tmp_path: Path) -> None:
    result = _run(["worker"], subprocess_env(INTAKE_INSTANCE_PATH=str(tmp_path)))
    _assert_one_clear_line(result, "INTAKE_BROKER_URL is not set")


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(["serve", "--colour", "blue"], subprocess_env())
    assert result.returncode == 2
    assert "No such option '--colour'" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_rules_file_stops_serve_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nagencies:\n  - {id: a, name: A, email: a@x.gov}\n"
                     "default_agency: b\nrules: []\n")
    env = subprocess_env(INTAKE_INSTANCE_PATH=str(tmp_path), INTAKE_RULES=str(rules))
    result = _run(["serve", "--port", str(free_port())], env)
    assert result.returncode == 1
    assert f"{rules}:4: unknown agency 'b'" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = subprocess_env(INTAKE_INSTANCE_PATH=str(tmp_path))
    for _ in range(2):
        result = _run(["db", "upgrade"], env)
        assert result.returncode == 0, result.stderr
        assert f"database at revision {head_revision()} (sqlite)" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["rules", "--help"]])
def test_help(args: list[str]) -> None:
    result = _run(args, subprocess_env())
    assert result.returncode == 0
    assert "Usage: intake" in result.stdout
