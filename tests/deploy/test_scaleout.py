"""The README's scale-out recipe, run as written: gunicorn with 2 workers and two
``intake worker`` processes on PostgreSQL and Redis; 100 forms over HTTP; exactly 100
forwards at a real SMTP server (aiosmtpd), each parsed.

The commands are read from the README's ``scale-out-recipe`` block and started as
subprocesses from a folder outside the clone; the variables the block exports get test
values (a database created for the test and dropped after it, Redis database 11, free
ports). A recipe that stops working, or a README that changes it, fails this test.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.conftest import (
    DOT,
    REDIS_DB,
    REPO,
    SmtpSink,
    empty_postgres_database,
    free_port,
    redis_test_url,
    rules_file,
    service_missing,
    subprocess_env,
    wait_for,
    write_forms_file,
)

BIN = Path(sys.executable).parent
TOKEN = "scale-out-metrics-token-0123456789"
FORMS = 100
TAG = re.compile(r"\[#([A-Z]+-\d{4}-\d+)\]")


def recipe() -> tuple[list[str], list[list[str]]]:
    """The exported variable names and the commands of the README's recipe block."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- scale-out-recipe -->", 1)[1].split("```sh\n", 1)[1]
    block = block.split("```", 1)[0]
    exports, commands = [], []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "export":
            exports += [word.split("=", 1)[0] for word in words[1:]]
        else:
            commands.append(words)
    return exports, commands


@pytest.fixture
def scaleout_database() -> Iterator[str]:
    """An empty database of its own (the test's processes apply the migrations)."""
    with empty_postgres_database("intake_scaleout") as url:
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def scaleout_redis() -> Iterator[str]:
    import redis

    test_url = redis_test_url(REDIS_DB - 2)
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


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _answers(port: int) -> bool:
    try:
        return _get(port, "/healthz")[0] == 200
    except OSError:
        return False


def _post_form(port: int, token: str, n: int) -> str:
    body = urlencode({"_token": token, "lang": "en", "name": f"Scale Person {n}",
                      "email": f"person{n}@example.org", "topic": "transportation",
                      "subject": f"Pothole report {n}",
                      "message": f"A pothole on Route {n} needs repair."}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/forms/contact", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        response = conn.getresponse()
        answer = response.read()
        assert response.status == 201, (response.status, answer[:300])
        return str(json.loads(answer)["record_number"])
    finally:
        conn.close()


def test_the_readme_recipe_delivers_100_forms_as_100_forwards(
        tmp_path: Path, scaleout_database: str, scaleout_redis: str) -> None:
    exports, commands = recipe()
    [upgrade] = [c for c in commands if c[:3] == ["intake", "db", "upgrade"]]
    [web] = [c for c in commands if c[0] == "gunicorn"]
    [worker] = [c for c in commands if c[:2] == ["intake", "worker"]]
    [install] = [c for c in commands if c[:2] == ["pip", "install"]]
    assert install[-1] == ".[server]"  # the extra that brings gunicorn (installed here)
    assert len(commands) == 4, commands

    sink = SmtpSink().start()
    port = free_port()
    secret_file = tmp_path / "secret_key"
    secret_file.write_text("scale-out-secret-key-0123456789-abcdefghijklmnop\n")
    values = {
        "INTAKE_DATABASE_URL": scaleout_database,
        "INTAKE_BROKER_URL": scaleout_redis,
        "INTAKE_SECRET_KEY_FILE": str(secret_file),
        "INTAKE_RULES": str(rules_file(tmp_path)),
        "INTAKE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "INTAKE_PUBLIC_URL": "https://intake.examplia.gov",
        "INTAKE_BIND": f"127.0.0.1:{port}",
        "INTAKE_WEB_WORKERS": "2",
    }
    assert sorted(exports) == sorted(values), "the README's recipe exports other variables"
    env = subprocess_env(**values, INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_FORMS=str(write_forms_file(tmp_path, min_fill_seconds=0)),
                         INTAKE_FORM_RATE_LIMIT="100000/minute", INTAKE_LOG_LEVEL="WARNING",
                         INTAKE_WORKER_THREADS="4", INTAKE_METRICS_TOKEN=TOKEN,
                         INTAKE_MAIL_FROM="intake@examplia.gov",
                         INTAKE_RELAY_DOMAIN="relay.examplia.gov")
    del env["INTAKE_SECRET_KEY"]  # the recipe's key file
    cwd = tmp_path / "elsewhere"  # not the clone
    cwd.mkdir()

    def run(words: list[str]) -> list[str]:
        return [str(BIN / words[0]), *words[1:]]

    done = subprocess.run(run(upgrade), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    logs = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for n, words in enumerate([web, worker, worker]):
            log = open(tmp_path / f"process-{n}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            processes.append(subprocess.Popen(run(words), env=env, cwd=cwd, stdout=log,
                                              stderr=subprocess.STDOUT))

        def output() -> str:
            return "\n".join((tmp_path / f"process-{n}.log").read_text(errors="replace")
                             for n in range(len(processes)))

        wait_for(lambda: any(p.poll() is not None for p in processes) or _answers(port),
                 timeout=60, message="gunicorn to answer")
        assert all(p.poll() is None for p in processes), output()
        # Ready: database, rules, broker, and both workers' heartbeats.
        wait_for(lambda: _get(port, "/readyz")[0] == 200, timeout=60, message="/readyz 200")
        token = json.loads(_get(port, "/forms/contact", {"Accept": "application/json"})[1]
                           )["token"]
        with ThreadPoolExecutor(8) as pool:
            numbers = list(pool.map(lambda n: _post_form(port, token, n), range(FORMS)))
        assert len(set(numbers)) == FORMS

        wait_for(lambda: len(sink.to(DOT)) >= FORMS, timeout=60,
                 message=f"{FORMS} forwards at the SMTP server")
        forwards = sink.to(DOT)
        assert len(forwards) == FORMS, len(forwards)
        tagged = []
        for received in forwards:
            message = email.message_from_bytes(received.raw, policy=email.policy.default)
            found = TAG.search(str(message["Subject"]))
            assert found, message["Subject"]
            tagged.append(found.group(1))
            assert message["From"] is not None and "examplia.gov" in str(message["From"])
        assert sorted(tagged) == sorted(numbers)  # each form once, none twice

        status, scrape = _get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        scraped = scrape.decode()
        assert f'intake_submissions_total{{channel="web"}} {FORMS}.0' in scraped
        assert 'intake_live_workers 2.0' in scraped
        for n in range(FORMS):
            assert f"person{n}@example.org" not in scraped
        assert all(p.poll() is None for p in processes), output()
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
        sink.stop()
    # SIGTERM: every process stopped cleanly.
    assert [p.returncode for p in processes] == [0, 0, 0], output()


def test_this_module_runs_in_the_shared_broker_group(request: pytest.FixtureRequest) -> None:
    """This module and every test using ``redis_url`` or ``amqp_url`` share Redis databases
    and queues by name (tests/conftest.py: SHARED_BROKER_FIXTURES): under the README's
    ``-n 2 --dist loadgroup`` they must run on one worker, which xdist does for the node
    ids it gave the group's suffix. Fails where the marker comes after xdist's own hook
    (it came from a pytest_collection_modifyitems of conftest) and where pytest ignores
    the suffix (pytest 9 with xdist 3.8). They had been spread over both workers: one test
    flushed Redis or took the messages another was waiting for."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("checks the grouping of the README's test command (-n 2 --dist loadgroup)")
    assert request.node.nodeid.endswith("@shared-broker"), request.node.nodeid
