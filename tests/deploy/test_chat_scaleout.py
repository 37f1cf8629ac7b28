"""Live Help across processes: two gunicorn processes on one PostgreSQL database and
Redis, the visitor on one, the operator on the other.

Every message arrives once and in order on both sides' streams; killing the visitor's
process mid-chat loses nothing that was acknowledged (stored), and the chat goes on
through the other process, the stream resuming from Last-Event-ID.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from intake.runtime import Runtime
from intake.services import staff as accounts
from tests.conftest import (
    PASSWORD,
    SMALL_RULES,
    empty_postgres_database,
    free_port,
    make_settings,
    subprocess_env,
    wait_for,
)
from tests.web.test_chat import write_help

BIN = Path(sys.executable).parent
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def chat_database() -> Iterator[str]:
    """An empty database of its own (the test's processes apply the migrations)."""
    with empty_postgres_database("intake_chat") as url:
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)


class Browser:
    """A cookie jar over http.client, for one port at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name] = rest.split(";", 1)[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                response.read().decode("utf-8", "replace")
        finally:
            conn.close()


def read_stream(port: int, path: str, last: int, cookies: dict[str, str] | None = None,
                until: int | None = None) -> list[dict[str, object]]:
    """The events of one stream (it closes itself after INTAKE_HELP_STREAM_SECONDS)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Last-Event-ID": str(last)}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    events: list[dict[str, object]] = []
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if until is not None and int(str(events[-1]["id"])) >= until:
                    break
    except (http.client.IncompleteRead, ConnectionError):
        pass  # the process was killed: what came before counts
    finally:
        conn.close()
    return events


def test_two_processes_every_message_once_in_order_and_a_killed_one_loses_nothing(
        tmp_path: Path, chat_database: str, redis_url: str) -> None:
    help_file = write_help(tmp_path)
    common = {
        "INTAKE_DATABASE_URL": chat_database, "INTAKE_BROKER_URL": redis_url,
        "INTAKE_RULES": str(SMALL_RULES), "INTAKE_HELP": str(help_file),
        "INTAKE_HELP_STREAM_SECONDS": "3", "INTAKE_HELP_MESSAGE_RATE": "10000/minute",
        "INTAKE_FORM_RATE_LIMIT": "10000/minute", "INTAKE_ALLOW_STAFF_WITHOUT_TOTP": "1",
        "INTAKE_WEB_WORKERS": "1", "INTAKE_WEB_THREADS": "16", "INTAKE_LOG_LEVEL": "INFO",
        "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    env = subprocess_env(**common)
    done = subprocess.run([str(BIN / "intake"), "db", "upgrade"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runtime = Runtime(make_settings(tmp_path, chat_database, INTAKE_RULES=str(SMALL_RULES),
                                    INTAKE_ALLOW_STAFF_WITHOUT_TOTP="1"))
    with runtime.db.session() as s:
        accounts.create_account(s, email="op@dot.examplia.gov", agency_id="dot",
                                role="operator", password=PASSWORD, with_totp=False,
                                allow_without_totp=True)
    runtime.close()

    ports = [free_port(), free_port()]
    logs = [open(tmp_path / f"web-{n}.log", "wb") for n in range(2)]  # noqa: SIM115
    processes = [subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "python:intake.gunicorn_conf", "intake.wsgi:app"],
        env={**env, "INTAKE_BIND": f"127.0.0.1:{port}"}, cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT) for port, log in zip(ports, logs, strict=True)]

    def answers(port: int) -> bool:
        try:
            return Browser(port).request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    try:
        for port in ports:
            wait_for(lambda p=port: answers(p), timeout=60, message="gunicorn to answer")
        a, b = ports
        visitor = Browser(a)
        status, headers, _ = visitor.request("POST", "/help", {
            "name": "Ada", "topic": "transportation", "message": "A pothole on Route 9.",
            "lang": "en"}, {"User-Agent": "Mozilla/5.0 Firefox/128.0",
                            "X-Forwarded-For": "198.51.100.23"})
        assert status == 303, headers
        token = re.search(r"/help/c/([^/?#]+)", headers["location"]).group(1)  # type: ignore[union-attr]

        operator = Browser(b)
        page = operator.request("GET", "/staff/login")[2]
        status, headers, _ = operator.request("POST", "/staff/login", {
            "email": "op@dot.examplia.gov", "password": PASSWORD,
            "csrf_token": _CSRF.search(page).group(1)})  # type: ignore[union-attr]
        assert status == 303 and "/staff/login" not in headers["location"]
        queue = operator.request("GET", "/staff/help")[2]
        chat_id = int(re.search(r"/staff/help/(\d+)", queue).group(1))  # type: ignore[union-attr]
        csrf = _CSRF.search(operator.request("GET", f"/staff/help/{chat_id}")[2]).group(1)  # type: ignore[union-attr]
        assert operator.request("POST", f"/staff/help/{chat_id}/accept",
                                {"csrf_token": csrf})[0] == 303

        # A stream on each process, open while the other side posts.
        heard: dict[str, list[dict[str, object]]] = {}
        acked: list[int] = []
        json_accept = {"Accept": "application/json"}
        for n in range(10):
            status, _, body = visitor.request("POST", f"/help/c/{token}/messages",
                                              {"message": f"visitor {n}"}, json_accept)
            assert status == 201, body
            acked.append(int(json.loads(body)["id"]))
            status, _, body = operator.request("POST", f"/staff/help/{chat_id}/messages",
                                               {"message": f"operator {n}",
                                                "csrf_token": csrf}, json_accept)
            assert status == 201, body
            acked.append(int(json.loads(body)["id"]))
        last = acked[-1]
        live = threading.Thread(target=lambda: heard.__setitem__(
            "visitor", read_stream(a, f"/help/c/{token}/events", 0, until=last + 1)))
        live.start()
        # Posted on B while the visitor's stream on A is open: Redis carries the news.
        status, _, body = operator.request("POST", f"/staff/help/{chat_id}/messages",
                                           {"message": "across", "csrf_token": csrf},
                                           json_accept)
        assert status == 201
        acked.append(int(json.loads(body)["id"]))
        live.join(timeout=30)
        heard["operator"] = read_stream(b, f"/staff/help/{chat_id}/events", 0,
                                        operator.cookies, until=acked[-1])
        for side in ("visitor", "operator"):
            ids = [int(str(e["id"])) for e in heard[side]]
            assert ids == sorted(set(ids)), side  # once each, in order
            assert set(acked) <= set(ids), side
            bodies = [e["body"] for e in heard[side]]
            assert bodies[-1] == "across" and "visitor 9" in bodies and "operator 9" in bodies

        # Kill the visitor's process mid-chat: what was acknowledged is kept, and the
        # visitor goes on through the other process from the last event it had.
        status, _, body = visitor.request("POST", f"/help/c/{token}/messages",
                                          {"message": "just before the crash"}, json_accept)
        assert status == 201
        acked.append(int(json.loads(body)["id"]))
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=30)
        resumed = Browser(b)
        status, _, body = resumed.request("POST", f"/help/c/{token}/messages",
                                          {"message": "after the crash"}, json_accept)
        assert status == 201, body
        acked.append(int(json.loads(body)["id"]))
        again = read_stream(b, f"/help/c/{token}/events", last, until=acked[-1])
        assert [e["body"] for e in again] == ["across", "just before the crash",
                                              "after the crash"]
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
    # No IP address in any log line of either process.
    for n in range(2):
        assert "198.51.100.23" not in (tmp_path / f"web-{n}.log").read_text(errors="replace")
