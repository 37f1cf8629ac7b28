"""/healthz is liveness (200 while the process serves); /readyz names the part that fails.

Over HTTP (Flask test client) on SQLite and PostgreSQL, with the real rules provider,
a real Redis broker or one that is down, and real worker heartbeats written by a
started job system.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from intake import create_app
from intake.runtime import Runtime
from intake.services import heartbeats
from tests.conftest import SMALL_RULES, free_port, make_settings


def _ready(client: FlaskClient) -> tuple[int, dict[str, object]]:
    response = client.get("/readyz")
    return response.status_code, json.loads(response.get_data(as_text=True))


def test_readyz_is_503_naming_the_workers_until_one_beats_then_200(
        tmp_path: Path, db_url: str) -> None:
    runtime = Runtime(make_settings(tmp_path, db_url, INTAKE_HEARTBEAT_STALE="30"))
    runtime.rules.load()
    try:
        client = create_app(runtime=runtime).test_client()
        status, body = _ready(client)
        assert status == 503
        assert body["failing"] == ["workers"]
        assert body["checks"] == {"database": "ok", "rules": "ok", "broker": "ok",
                                  "workers": "no worker heartbeat in the last 30 s"}
        runtime.jobs.start(consume=True, sweep=False)  # the embedded worker beats
        assert _ready(client) == (200, {"status": "ok", "failing": [], "checks": {
            "database": "ok", "rules": "ok", "broker": "ok", "workers": "ok"}})
        assert client.get("/healthz").status_code == 200
    finally:
        runtime.close()
    # Stopping removed the heartbeat row: nothing left to count.
    runtime = Runtime(make_settings(tmp_path, db_url))
    try:
        assert heartbeats.live_workers(runtime.db, 30) == 0
    finally:
        runtime.close()


def test_a_stale_heartbeat_does_not_count(tmp_path: Path, sqlite_url: str) -> None:
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_HEARTBEAT_STALE="5"))
    try:
        heartbeats.beat(runtime.db, "host:1", "worker", 5)
        assert heartbeats.live_workers(runtime.db, 5) == 1
        assert heartbeats.live_workers(runtime.db, 0) == 0  # older than "now minus 0 s"
    finally:
        runtime.close()


def test_a_broken_rules_file_is_a_503_naming_rules_while_healthz_stays_200(
        tmp_path: Path, sqlite_url: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SMALL_RULES.read_text())
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_RULES=str(rules)))
    runtime.rules.load()
    try:
        runtime.jobs.start(consume=True, sweep=False)
        client = create_app(runtime=runtime).test_client()
        assert _ready(client)[0] == 200
        rules.write_text("version: 1\nagencies: [\n")  # broken YAML
        status, body = _ready(client)
        assert status == 503 and body["failing"] == ["rules"]
        assert body["checks"]["rules"] == "the rules file is invalid (intake rules check)"
        assert str(rules) not in json.dumps(body)  # no paths in the body
        health = client.get("/healthz")
        assert health.status_code == 200  # liveness: the process serves
        assert health.get_json()["rules"]["ok"] is False
    finally:
        runtime.close()


@pytest.mark.redis
def test_a_broker_that_is_down_is_named(tmp_path: Path, sqlite_url: str,
                                        redis_url: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_BROKER_URL=down))
    runtime.rules.load()
    try:
        heartbeats.beat(runtime.db, "elsewhere:1", "worker", 60)  # a worker on another host
        status, body = _ready(create_app(runtime=runtime).test_client())
        assert status == 503 and body["failing"] == ["broker"]
        assert body["checks"]["broker"] == "redis unreachable"
        assert str(down.split("//")[1].split("/")[0]) not in json.dumps(body)
    finally:
        runtime.close()
    runtime = Runtime(make_settings(tmp_path, sqlite_url, INTAKE_BROKER_URL=redis_url))
    runtime.rules.load()
    try:
        heartbeats.beat(runtime.db, "elsewhere:1", "worker", 60)
        assert _ready(create_app(runtime=runtime).test_client())[0] == 200
    finally:
        runtime.close()


def test_a_database_behind_the_code_is_named(tmp_path: Path) -> None:
    """A database not upgraded to this release: 503 saying what to run."""
    from sqlalchemy import create_engine, text

    path = tmp_path / "old.sqlite3"
    from intake.db.migrate import upgrade

    upgrade(f"sqlite:///{path}", "0016")
    runtime = Runtime(make_settings(tmp_path, f"sqlite:///{path}"))
    runtime.rules.load()
    try:
        status, body = _ready(create_app(runtime=runtime).test_client())
        assert status == 503
        assert body["checks"]["database"] == "schema not current: run intake db upgrade"
        assert "database" in body["failing"]
    finally:
        runtime.close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0016"
    engine.dispose()
