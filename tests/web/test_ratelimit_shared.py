"""Rate limits hold across processes: counters every worker sees (the database, or Redis).

The proof is a real multi-process server: gunicorn with three workers, on a
SQLite file and on PostgreSQL, sent 60 requests at once against a 10/minute
limit: exactly 10 pass. (With counters in each process, as before, 37 of 60
passed.)
"""

from __future__ import annotations

import http.client
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import func, select

from intake.db.edge_models import RateLimitCounter
from intake.runtime import Runtime
from intake.services import ratelimits
from intake.services.ratelimits import DatabaseCounters
from intake.settings import SettingsError, load_settings
from intake.web.ratelimit import FixedWindowMemoryStorage, counter_storage, form_rate_limit
from tests.conftest import REPO, free_port, make_settings, subprocess_env, wait_for
from tests.web.conftest import Clock


@pytest.fixture
def counters(runtime: Runtime) -> Iterator[DatabaseCounters]:
    storage = DatabaseCounters(runtime.db)
    yield storage
    storage.close()


def _rows(rt: Runtime) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(RateLimitCounter)) or 0)


def test_database_counters_count_fixed_windows_that_expire(
        counters: DatabaseCounters, clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(counters)
    per_minute = parse("3/minute")
    assert [limiter.hit(per_minute, "a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(per_minute, "b")  # another key has its own window
    assert limiter.get_window_stats(per_minute, "a").remaining == 0
    clock.advance(61)
    assert limiter.hit(per_minute, "a")  # a new window starts with this hit
    assert limiter.get_window_stats(per_minute, "a").remaining == 2


def test_ended_windows_are_purged(runtime: Runtime, counters: DatabaseCounters,
                                  clock: Clock) -> None:
    storage = counters
    limiter = FixedWindowRateLimiter(storage)
    for n in range(50):
        limiter.hit(parse("5/second"), f"client-{n}")
    assert len(storage) == 50
    clock.advance(ratelimits.PURGE_SECONDS + 1)
    limiter.hit(parse("5/second"), "one more")
    assert len(storage) == 1
    assert _rows(runtime) == 1


def test_two_instances_share_the_counts_as_two_processes_would(runtime: Runtime) -> None:
    """What one process counted, another sees: the limit is not multiplied."""
    first, second = form_rate_limit(runtime), form_rate_limit(runtime)
    assert isinstance(first.storage, DatabaseCounters)
    hits = [(first if n % 2 else second).hit("client") for n in range(15)]
    assert hits.count(True) == 10  # the test settings' 10/minute
    assert second.hit("another client")


def test_concurrent_hits_are_all_counted(counters: DatabaseCounters) -> None:
    limiter = FixedWindowRateLimiter(counters)
    limit = parse("25/hour")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: limiter.hit(limit, "shared"), range(40)))
    assert results.count(True) == 25


def test_redis_counters_are_shared_too(tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, INTAKE_RATE_LIMIT_URL=redis_url,
                             INTAKE_FORM_RATE_LIMIT="4/minute")
    runtime = Runtime(settings)
    try:
        first, second = form_rate_limit(runtime), form_rate_limit(runtime)
        assert type(first.storage).__name__ == "RedisStorage"
        assert [first.hit("c"), second.hit("c"), first.hit("c"), second.hit("c"),
                first.hit("c"), second.hit("c")] == [True] * 4 + [False] * 2
        assert _rows(runtime) == 0  # nothing went to the database
    finally:
        runtime.close()


def test_where_the_counters_live_follows_the_settings(
        tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    base = {"INTAKE_INSTANCE_PATH": str(tmp_path), "INTAKE_DATABASE_URL": sqlite_url}
    assert load_settings(base).rate_limit_url == "database"
    assert load_settings({**base, "INTAKE_BROKER_URL": "amqp://guest:guest@127.0.0.1/"}) \
        .rate_limit_url == "database"  # RabbitMQ holds no counters
    assert load_settings({**base, "INTAKE_BROKER_URL": "redis://127.0.0.1:6379/2"}) \
        .rate_limit_url == "redis://127.0.0.1:6379/2"
    assert load_settings({**base, "INTAKE_BROKER_URL": "redis://127.0.0.1:6379/2",
                          "INTAKE_RATE_LIMIT_URL": "database"}).rate_limit_url == "database"
    memory = make_settings(tmp_path, sqlite_url, INTAKE_RATE_LIMIT_URL="memory")
    runtime = Runtime(memory)
    try:
        with caplog.at_level("WARNING", logger="intake.web.ratelimit"):
            assert isinstance(counter_storage(runtime), FixedWindowMemoryStorage)
        assert "counted in each process" in caplog.text  # said at start, not silent
    finally:
        runtime.close()
    with pytest.raises(SettingsError, match="INTAKE_RATE_LIMIT_URL"):
        load_settings({**base, "INTAKE_RATE_LIMIT_URL": "memcached://127.0.0.1"})


# -- a real multi-process server ----------------------------------------------------------


def _post(port: int) -> int:
    """One submission attempt on a connection of its own; the status it got."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/forms/contact", body=b"{}",
                     headers={"Content-Type": "application/json", "Connection": "close"})
        return conn.getresponse().status
    finally:
        conn.close()


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _sixty_against_ten(tmp_path: Path, database_url: str) -> list[int]:
    port = free_port()
    env = subprocess_env(
        INTAKE_DATABASE_URL=database_url, INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
        INTAKE_FORM_RATE_LIMIT="10/minute", INTAKE_LOG_LEVEL="WARNING")
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server.poll() is not None or _healthy(port), timeout=60,
                 message="gunicorn to answer /healthz")
        assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
        with ThreadPoolExecutor(12) as pool:
            return list(pool.map(lambda _: _post(port), range(60)))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_gunicorn_with_three_workers_lets_exactly_the_limit_through(
        tmp_path: Path, database: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    statuses = _sixty_against_ten(tmp_path, url)
    refused = statuses.count(429)
    assert 60 - refused == 10, sorted(statuses)
    assert all(s < 500 for s in statuses), sorted(statuses)


def test_counters_skip_the_fsync_and_the_records_keep_it(tmp_path: Path, sqlite_url: str) -> None:
    from sqlalchemy import text

    runtime = Runtime(make_settings(tmp_path, sqlite_url))
    counters = DatabaseCounters(runtime.db)
    try:
        with counters.db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        with runtime.db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        counters.close()
        runtime.close()


def test_healthz_says_where_the_counters_live(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json()["rate_limits"] == {
        "kind": "database", "shared_by_processes": True}
