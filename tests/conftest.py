"""Shared fixtures: real databases, real brokers, no network but loopback.

Backends: SQLite always; PostgreSQL and Redis where reachable. With
``INTAKE_TEST_REQUIRE_SERVICES=1`` (CI sets it) an unreachable service fails
the test instead of skipping it, so CI cannot pass on SQLite alone.

- ``INTAKE_TEST_DATABASE_URL``: a PostgreSQL server to create throw-away
  databases on (default ``postgresql://postgres@127.0.0.1:5432/test``).
- ``INTAKE_TEST_REDIS_URL``: a Redis to use (default ``redis://127.0.0.1:6379/0``;
  tests use database 13 of that server and flush only it).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from intake.db.migrate import upgrade
from intake.runtime import Runtime
from intake.settings import Settings, load_settings

if TYPE_CHECKING:
    from tests.smtp_sink import SmtpSink

REQUIRE_SERVICES = os.environ.get("INTAKE_TEST_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("INTAKE_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INTAKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parent.parent
SMALL_RULES = REPO / "tests" / "data" / "small_rules.yaml"
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# The key-encryption key of the sealed originals under TEST_SECRET (as the app derives it).
ORIGINALS_KEY = load_settings({"INTAKE_SECRET_KEY": TEST_SECRET}).originals_key()


def service_missing(what: str, why: str) -> None:
    """Skip locally when a service or program is absent; fail in CI.

    The test runs wherever ``what`` is reachable (see the INTAKE_TEST_* variables
    in the module docstring), and always in CI, where
    INTAKE_TEST_REQUIRE_SERVICES=1 turns this skip into a failure.
    """
    message = f"{what} not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; INTAKE_TEST_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(f"{message}: this test runs when {what} is available, and always in CI "
                "(INTAKE_TEST_REQUIRE_SERVICES=1 fails instead of skipping)")


# -- no outbound network -------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test suite blocks outbound network to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test suite blocks outbound network to {address!r}")
    return _real_connect_ex(self, address)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# -- helpers ---------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def intake_command() -> list[str]:
    return [sys.executable, "-m", "intake"]


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_SECRET_KEY"] = TEST_SECRET
    env.update(overrides)
    return env


# -- databases -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file built from the migrations once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database built from the migrations, for the session."""
    admin_url = make_url(PG_URL).set(drivername="postgresql+psycopg")
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL", type(exc).__name__)
    name = f"intake_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'chain_heads')"
        )).scalars().all()
        if tables:
            conn.execute(text(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            ))
        # Seeded by a migration: reset, don't delete.
        conn.execute(text("UPDATE chain_heads SET seq = 0, head_hash = :genesis"),
                     {"genesis": "0" * 64})
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite copy, or the PostgreSQL one truncated."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "intake.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_database")
        _truncate_postgres(url)
        yield url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "intake.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(postgres_database: str) -> str:
    _truncate_postgres(postgres_database)
    return postgres_database


def make_settings(tmp_path: Path, database_url: str, **env: str) -> Settings:
    base = {
        "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
        "INTAKE_DATABASE_URL": database_url,
        "INTAKE_SECRET_KEY": TEST_SECRET,
        "INTAKE_RULES": str(SMALL_RULES),
        "INTAKE_LOG_LEVEL": "INFO",
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, INTAKE_RETRY_BASE="0.05",
                         INTAKE_REDELIVER_AFTER="0.5", INTAKE_SWEEP_INTERVAL="0.2")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings)
    rt.rules.load()
    try:
        yield rt
    finally:
        rt.close()


# -- redis -----------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own (number 13), flushed before and after."""
    import redis

    url = make_url(REDIS_URL.replace("redis://", "redis+x://"))  # parse host and port only
    test_url = f"redis://{url.host or '127.0.0.1'}:{url.port or 6379}/13"
    client = redis.Redis.from_url(test_url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis", type(exc).__name__)
    client.flushdb()
    try:
        yield test_url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """RabbitMQ on loopback (guest/guest); the test's queues are purged before and after."""
    import pika

    url = os.environ.get("INTAKE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    params = pika.URLParameters(url)
    params.socket_timeout = 3
    params.connection_attempts = 1
    try:
        connection = pika.BlockingConnection(params)
    except Exception as exc:  # noqa: BLE001
        service_missing("RabbitMQ", type(exc).__name__)

    def purge() -> None:
        channel = connection.channel()
        for queue in ("intake", "intake.DQ", "intake.XQ"):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - the queue may not exist yet
                channel = connection.channel()

    purge()
    try:
        yield url
    finally:
        purge()
        connection.close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port; what it received is parsed."""
    from tests.smtp_sink import SmtpSink  # it takes free_port from here

    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start intake subprocesses; every one is stopped at the end of the test.

    Output goes to a file (``proc.log_path``; read it with :func:`output_of`),
    never to an unread pipe: a full pipe would block the process on its next
    log line.
    """
    started: list[tuple[subprocess.Popen[str], Any]] = []

    def start(
        args: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        log_path = tmp_path / f"process-{len(started)}.log"
        log_file = open(log_path, "w")  # noqa: SIM115 - closed at teardown
        proc = subprocess.Popen(intake_command() + args, env=env, cwd=cwd or REPO,
                                stdout=log_file, stderr=subprocess.STDOUT, text=True)
        proc.log_path = log_path  # type: ignore[attr-defined]
        started.append((proc, log_file))
        return proc

    yield start
    for proc, log_file in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()


def output_of(proc: subprocess.Popen[str]) -> str:
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
