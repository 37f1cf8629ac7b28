"""Shared fixtures: real databases, real brokers, no network but loopback.

Backends: SQLite always; PostgreSQL and Redis where reachable. With
``INTAKE_TEST_REQUIRE_SERVICES=1`` (CI sets it) an unreachable service fails
the test instead of skipping it, so CI cannot pass on SQLite alone.

- ``INTAKE_TEST_DATABASE_URL``: a PostgreSQL server to create throw-away
  databases on (default ``postgresql://postgres@127.0.0.1:5432/test``).
- ``INTAKE_TEST_REDIS_URL``: a Redis to use (default ``redis://127.0.0.1:6379/0``;
  tests use database ``INTAKE_TEST_REDIS_DB`` of that server, 13 unless set, and the
  scale-out test that number minus 2, and flush only those). Two checkouts testing at
  once on one machine give each its own number (and its own RabbitMQ vhost in
  ``INTAKE_TEST_AMQP_URL``), or one's flush empties the other's queues.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from intake import create_app
from intake.core.forms import make_form_token
from intake.core.routing import Decision
from intake.db.migrate import upgrade
from intake.db.models import Attachment, Entry, ThreadMessage
from intake.outbound import webhook
from intake.outbound.memory import MemoryMailSender, MemoryWebhookSender, SentMail
from intake.runtime import Runtime
from intake.services import gate
from intake.services import staff as accounts
from intake.services.forms import packaged_forms_path
from intake.services.records import (
    NewSubmission,
    SubmitterData,
    record_submissions,
    seal_for_entry,
)
from intake.services.routing import apply_decision
from intake.services.work import enqueue
from intake.settings import Settings, load_settings

REQUIRE_SERVICES = os.environ.get("INTAKE_TEST_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("INTAKE_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("INTAKE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_DB = int(os.environ.get("INTAKE_TEST_REDIS_DB", "13"))


def redis_test_url(database: int) -> str:
    """The test Redis server's ``database``."""
    url = make_url(REDIS_URL.replace("redis://", "redis+x://"))  # parse host and port only
    return f"redis://{url.host or '127.0.0.1'}:{url.port or 6379}/{database}"
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


# Tests that share one outside resource by name run on one xdist worker, one after another
# (`--dist loadgroup`): the Redis databases REDIS_DB (`redis_url`) and REDIS_DB - 2 (scale-out)
# and RabbitMQ's queues `intake*` (`amqp_url`). Everything else a test uses is its own: a
# SQLite copy in its tmp_path, a PostgreSQL database per worker process
# (`postgres_database`), servers on free ports.
SHARED_BROKER_FIXTURES = frozenset({"redis_url", "amqp_url"})
SHARED_BROKER_MODULES = ("tests/deploy/test_scaleout.py",)


# Marked as each test is collected: xdist turns the marker into the group (a suffix of the
# node id) in its own pytest_collection_modifyitems, which runs before one of this file's
# and found no marker there; the tests were spread over both workers, one flushing Redis
# or taking the messages another was waiting for. (pytest 9 ignores that suffix: see the
# pin in pyproject.toml.) tests/deploy/test_scaleout.py checks that the grouping holds.
def pytest_itemcollected(item: pytest.Item) -> None:
    if (SHARED_BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
            or item.nodeid.startswith(SHARED_BROKER_MODULES)):
        item.add_marker(pytest.mark.xdist_group("shared-broker"))


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


# -- passwords -------------------------------------------------------------------

#: The password hasher staff accounts get outside the tests (``test_password_hashing``
#: holds it to its strength).
PRODUCTION_HASHER = accounts._hasher


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """argon2id at its lowest cost in the test process: at the production cost (64 MiB,
    3 passes, 0.2 s a hash on the CI machine) every account created and every login
    verified spends it, and a tenth of the suite's time went to hashing. Commands and
    servers the tests start as processes hash at the production cost; a hash made at one
    cost verifies at the other (the parameters are in the hash)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", cheap)
        patch.setattr(accounts, "_DUMMY_HASH", cheap.hash("unknown account"))
        yield


# -- databases -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file built from the migrations once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def empty_postgres_database(prefix: str) -> Iterator[Any]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL, psycopg driver), dropped after."""
    admin_url = make_url(PG_URL).set(drivername="postgresql+psycopg")
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL", type(exc).__name__)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database built from the migrations, for the session."""
    with empty_postgres_database("intake_test") as db_url:
        url = db_url.render_as_string(hide_password=False)
        upgrade(url)
        yield url


#: The tables a truncate may empty (all but the Alembic and hash-chain ones), by database URL.
_PG_TABLES: dict[str, list[str]] = {}


def _truncate_postgres(url: str) -> None:
    """Empty every table and restart every sequence, as after the migrations.

    Only the tables a test left rows in, or whose sequence it used, are truncated: a
    TRUNCATE of all of them took 0.26 s, before every PostgreSQL test. Which ones is one
    query (an EXISTS a table; ``pg_sequences`` for the sequences, which a rolled-back
    insert also moves)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = _PG_TABLES.get(url)
        if tables is None:
            tables = _PG_TABLES[url] = list(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename NOT IN ('alembic_version', 'chain_heads') "
                "ORDER BY tablename")).scalars())
        used = set(conn.execute(text(" UNION ALL ".join(
            f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables))).scalars())
        used.update(conn.execute(text(
            "SELECT owner.relname FROM pg_sequences AS seq "
            "JOIN pg_class AS s ON s.relname = seq.sequencename AND s.relkind = 'S' "
            "JOIN pg_depend AS d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
            "JOIN pg_class AS owner ON owner.oid = d.refobjid "
            "WHERE seq.schemaname = 'public' AND seq.last_value IS NOT NULL")).scalars())
        used &= set(tables)
        if used:
            conn.execute(text(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in sorted(used))
                + " RESTART IDENTITY CASCADE"))
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
    """A Redis database of its own (``REDIS_DB``), flushed before and after."""
    import redis

    test_url = redis_test_url(REDIS_DB)
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


# -- an SMTP server on loopback (aiosmtpd) that records what agencies receive ------


#: What the sink received: the same value the in-memory sender keeps (envelope, bytes).
Received = SentMail


class SmtpSink:
    """Accepts mail like an MTA: a message counts once its "250" could be sent.

    ``reject`` maps a recipient to an SMTP reply (e.g. "550 5.1.1 unknown");
    ``delay`` holds each DATA answer for that many seconds (a slow server).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.reject: dict[str, str] = {}
        self.delay = 0.0
        self.data_started = threading.Event()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
            transport = getattr(server, "transport", None)
            if transport is None or transport.is_closing():
                return "451 client went away"  # never accepted: not recorded
        with self._lock:
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        return "250 OK queued"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.rcpt_tos]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)


# -- public forms: a forms file with test origins, form tokens, receipt pages ------


AGENCY_ORIGIN = "https://agency.example"


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    """A runtime with the test forms file (test origins, no minimum fill time) and the small
    rules; a module with its own ``rt`` (delivery, staff) overrides it."""
    settings = make_settings(tmp_path, db_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_FORM_RATE_LIMIT="1000/minute", INTAKE_RULES=str(SMALL_RULES))
    runtime = Runtime(settings)
    runtime.rules.load()
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    return create_app(runtime=rt)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def write_forms_file(tmp_path: Path, *origins: str, max_bytes: int = 200_000,
                     min_fill_seconds: float | None = None) -> Path:
    """The packaged forms file with these embedding origins and a small attachment cap."""
    data = yaml.safe_load(packaged_forms_path().read_text())
    if min_fill_seconds is not None:
        data["min_fill_seconds"] = min_fill_seconds
    for form in data["forms"]:
        form["allowed_origins"] = [AGENCY_ORIGIN, *origins]
        if form["kind"] == "contact":
            form["attachments"]["max_bytes"] = max_bytes
            form["attachments"]["max_files"] = 2
    folder = tmp_path / "forms"
    (folder / "surveys").mkdir(parents=True, exist_ok=True)
    shutil.copy(packaged_forms_path().parent / "surveys" / "service_satisfaction.yaml",
                folder / "surveys")
    path = folder / "forms.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def aged_token(app: Flask, slug: str, age: float = 30.0) -> str:
    """A token as if the page had been open for ``age`` seconds (no sleeping in tests)."""
    from intake.web.forms import _token_key

    with app.app_context():
        return make_form_token(_token_key(), slug, time.time() - age)


def contact_fields(app: Flask, **overrides: str) -> dict[str, str]:
    fields = {
        "_token": aged_token(app, "contact"), "lang": "en", "name": "Ana Ortiz",
        "email": "ana@example.com", "topic": "parks", "subject": "Trail closed",
        "message": "The north trail at Lake Park has been closed for a month.",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def record_number_in(html: str) -> str | None:
    found = re.search(r'class="record-number">([A-Z]+-\d{4}-\d+)<', html)
    return found.group(1) if found else None


def status_path_in(html: str) -> str | None:
    found = re.search(r'href="https?://[^/"]+(/status/[A-Za-z0-9_-]+)"', html)
    return found.group(1) if found else None


# -- the staff inbox: accounts, entries, logging in over HTTP ----------------------


PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Account:
    id: int
    email: str
    agency: str
    role: str
    secret: str | None
    password: str = PASSWORD

    def code(self, offset_steps: int = 0) -> str:
        assert self.secret is not None
        totp = pyotp.TOTP(self.secret)
        return totp.at(datetime.now(UTC) + timedelta(seconds=30 * offset_steps))


def make_account(runtime: Runtime, email: str, agency: str, role: str = "agent",
                 totp: bool = True) -> Account:
    with runtime.db.session() as s:
        account, secret = accounts.create_account(s, email=email, agency_id=agency, role=role,
                                                  password=PASSWORD, with_totp=totp,
                                                  allow_without_totp=not totp)
        return Account(account.id, account.email, agency, role, secret)


def make_entry(runtime: Runtime, agency: str, *, subject: str = "Pothole on Route 9",
               body: str = "A pothole on Route 9, write to ada@example.org or call "
                           "(217) 555-0143.",
               name: str = "Ada Lovelace", email: str = "ada@example.org",
               cc: tuple[str, ...] = (), attachment: tuple[str, bytes] | None = None,
               received_at: datetime | None = None, key: str | None = None) -> int:
    with runtime.db.session() as s:
        recorded = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=(key or subject + body).encode(),
                             content_type="application/json", subject=subject, body=body,
                             form_slug="contact", fields={"topic": "roads"},
                             submitter=SubmitterData(name=name, email=email),
                             received_at=received_at)],
                                 record_prefix=runtime.settings.record_prefix,
                                     pii_key=runtime.pii_key, originals_key=ORIGINALS_KEY)[0]
        entry = s.get(Entry, recorded.entry_id)
        assert entry is not None
        rules = runtime.rules.current()
        apply_decision(s, entry, Decision(route_to=agency, cc=cc, tags=(), matched_rules=(),
                                          decided_by=None, captures={}, trace=(),
                                          rules_sha256=rules.sha256), actor="rules")
        if attachment is not None:
            filename, content = attachment
            digest = hashlib.sha256(content).hexdigest()
            s.add(Attachment(entry_id=entry.id, filename=filename, declared_type="text/html",
                             sniffed_type="text/html", size=len(content), sha256=digest,
                             content=seal_for_entry(s, entry.id, ORIGINALS_KEY, content,
                                                    digest)))
        return recorded.entry_id


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, account: Account, code: str | None = None) -> None:
    page = client.get("/staff/login")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post("/staff/login", data={"email": account.email,
                                                  "password": account.password,
                                                  "csrf_token": token})
    if account.secret is not None:
        assert response.status_code == 303, response.status_code
        assert response.headers["Location"].endswith("/staff/login/code")
        page = client.get("/staff/login/code")
        token = csrf_from(page.get_data(as_text=True))
        response = client.post("/staff/login/code",
                               data={"code": code or account.code(), "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert "/staff/login" not in response.headers["Location"]


def csrf(client: FlaskClient, path: str = "/staff/inbox") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


# -- delivery: the rules, runtime and senders the delivery tests share -------------------


CITIZEN = "maria.lopez@example.org"


DOT = "intake@dot.examplia.gov"


POLICY = ("share-identity-2026-01", "I agree that the state agency that handles my message may "
          "see my name and e-mail address so that it can answer me directly.")


def rules_file(tmp_path: Path, webhook_port: int | None = None) -> Path:
    hook = (f"  - {{id: parks, name: Department of Parks, "
            f"webhook: 'http://127.0.0.1:{webhook_port}/hook'}}\n") if webhook_port else (
            "  - {id: parks, name: Department of Parks, email: parks@examplia.gov}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nagencies:\n"
        "  - {id: governor, name: Office of the Governor, email: governor@examplia.gov}\n"
        f"  - {{id: dot, name: Department of Transportation, email: {DOT}}}\n"
        + hook +
        "default_agency: governor\nrules:\n"
        "  - {id: roads, when: {field: body, contains: [pothole]}, route_to: dot, stop: true}\n"
        "  - {id: parks, when: {field: body, contains: [campground]}, route_to: parks, "
        "stop: true}\n"
    )
    return path


def memory_senders(outbox: MemoryMailSender,
                   hooks: MemoryWebhookSender | None = None) -> gate.Senders:
    return gate.Senders(mail=outbox, webhook=hooks or MemoryWebhookSender())


def make_runtime(tmp_path: Path, db_url: str, smtp_port: int | None = None,
                 webhook_port: int | None = None, *, senders: gate.Senders | None = None,
                 **env: str) -> Runtime:
    """A runtime on ``senders``, or (none given) on the real ones its settings describe."""
    values = {
        "INTAKE_RULES": str(rules_file(tmp_path, webhook_port)),
        "INTAKE_MAIL_FROM": "intake@examplia.gov",
        "INTAKE_RELAY_DOMAIN": "relay.examplia.gov",
        "INTAKE_PUBLIC_URL": "https://intake.examplia.gov",
        "INTAKE_RETRY_BASE": "0.05",
        "INTAKE_SWEEP_INTERVAL": "0.2",
        "INTAKE_REDELIVER_AFTER": "0.5",
        "INTAKE_SMTP_TIMEOUT": "5",
        "INTAKE_WEBHOOK_SECRET": "w" * 40,
    }
    if smtp_port is not None:
        values["INTAKE_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    values.update(env)
    rt = Runtime(make_settings(tmp_path, db_url, **values), senders)
    rt.rules.load()
    return rt


def _thread_message(rt: Runtime, entry_id: int, author: str, body: str) -> int:
    with rt.db.session() as s:
        tm = ThreadMessage(entry_id=entry_id, direction="in", author_kind=author,
                           subject="Re: road", body=body, idempotency_key=f"{author}:{body}")
        s.add(tm)
        s.flush()
        enqueue(s, "relay", dedupe_key=f"relay:{tm.id}", entry_id=entry_id,
                payload={"thread_message_id": tm.id})
        return tm.id


class _Receiver(BaseHTTPRequestHandler):
    secret = b"w" * 40
    bodies: list[dict[str, Any]] = []
    verified: list[bool] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.verified.append(webhook.verify(self.secret, body,
                                            self.headers.get(webhook.SIGNATURE_HEADER, "")))
        self.bodies.append(json.loads(body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet (http.server logs every request to stderr)."""
