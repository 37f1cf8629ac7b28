"""The django-helpdesk baseline's client side and venv handling (bench/helpdesk/baseline.py,
bench/form_intake.py): no helpdesk is installed and nothing leaves loopback here."""

from __future__ import annotations

import http.client
import subprocess
import threading
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.form_intake import _helpdesk_pair
from bench.helpdesk import baseline

# What Django 5.2 writes into helpdesk's submit page and its answer (trimmed).
PAGE = """<form role="form" method='post' enctype='multipart/form-data'>
<input type="hidden" name="csrfmiddlewaretoken" value="V8GJ7YSyZhY1gXkVOg3qpsj0IlNobIXo">
<input type="text" name="title" class="form-control" maxlength="200" required id="id_title">
</form>"""
SET_COOKIE = "csrftoken=BdIk0BufCnYfklZM7AzPjDaEWfE2Z0mo; expires=Tue, 07 Dec 2027 16:45:35 GMT; " \
             "Max-Age=31449600; Path=/; SameSite=Lax"


def form_fields(body: bytes, content_type: str) -> dict[str, tuple[str, str | None]]:
    """name -> (value, filename) of a multipart/form-data body."""
    message = BytesParser(policy=policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.get_content_type() == "multipart/form-data"
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_payload(decode=True).decode(), part.get_filename())
    return fields


def test_the_token_and_the_cookie_are_read_as_django_writes_them() -> None:
    assert baseline.csrf_token(PAGE) == "V8GJ7YSyZhY1gXkVOg3qpsj0IlNobIXo"
    assert baseline.csrf_cookie([("Content-Type", "text/html"), ("Set-Cookie", SET_COOKIE)]) \
        == "BdIk0BufCnYfklZM7AzPjDaEWfE2Z0mo"
    assert baseline.csrf_cookie([("Set-Cookie", "sessionid=abc; Path=/")]) is None
    assert baseline.csrf_cookie([]) is None
    with pytest.raises(ValueError, match="csrfmiddlewaretoken"):
        baseline.csrf_token("<form><input name='title'></form>")


def test_the_ticket_is_the_form_a_browser_posts() -> None:
    body, content_type = baseline.ticket_form("tok-1", "run-3-7")
    fields = form_fields(body, content_type)
    assert fields["csrfmiddlewaretoken"] == ("tok-1", None)
    assert fields["title"] == ("Trail report run-3-7", None)
    assert "(run-3-7)" in fields["body"][0]
    assert fields["submitter_email"] == ("bench@example.com", None)
    assert fields["due_date"] == ("", None)
    assert fields["attachment"] == ("", "")  # the file field, sent empty as browsers do
    other, _ = baseline.ticket_form("tok-1", "run-3-8")
    assert other != body  # every ticket differs


@pytest.mark.parametrize(("status", "location", "created"), [
    (302, "/view/?ticket=public-12&email=bench%40example.com&key=c8ce9beb", True),
    (302, "http://127.0.0.1:8000/view/?ticket=public-3&email=a%40b.c&key=k", True),
    (200, None, False),  # the form again, with its errors
    (403, None, False),  # CSRF failure
    (302, "/login/?next=/tickets/submit/", False),
    (302, "/", False),
])
def test_only_the_redirect_to_the_new_ticket_counts_as_created(
        status: int, location: str | None, created: bool) -> None:
    assert baseline.ticket_created(status, location) is created


# -- the load loop's pair against a server that checks what Django's CSRF checks -------------


class FakeHelpdesk(BaseHTTPRequestHandler):
    """The submit page and its POST, with Django's CSRF rule: the token posted must come from
    a page, and the csrftoken cookie must be the one set."""

    protocol_version = "HTTP/1.1"
    site: dict[str, Any]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """No access log on stderr: the test's output is its assertions."""

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        site = self.site
        token = f"token-{len(site['tokens'])}"
        site["tokens"].add(token)
        headers = {"Content-Type": "text/html"}
        if self.headers.get("Cookie") != "csrftoken=SECRET":
            site["cookies_set"] += 1
            headers["Set-Cookie"] = "csrftoken=SECRET; Path=/; SameSite=Lax"
        page = f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        self._answer(200, headers, page.encode())

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        site = self.site
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = form_fields(body, self.headers["Content-Type"])
        if self.headers.get("Cookie") != "csrftoken=SECRET" \
                or fields["csrfmiddlewaretoken"][0] not in site["tokens"] or site["refuse"]:
            self._answer(403, {"Content-Type": "text/html"}, b"CSRF verification failed")
            return
        site["tickets"].append(fields["title"][0])
        self._answer(302, {"Location": f"/view/?ticket=public-{len(site['tickets'])}"
                                       "&email=bench%40example.com&key=k"})


@pytest.fixture
def fake_helpdesk() -> Iterator[tuple[int, dict[str, Any]]]:
    site: dict[str, Any] = {"tokens": set(), "tickets": [], "cookies_set": 0, "refuse": False}
    handler = type("Handler", (FakeHelpdesk,), {"site": site})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), site
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_pair_gets_the_page_and_posts_its_token_with_the_cookie_kept(
        fake_helpdesk: tuple[int, dict[str, Any]]) -> None:
    port, site = fake_helpdesk
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    cookie: list[str] = []
    try:
        assert _helpdesk_pair(conn, baseline.SUBMIT_PATH, "a-1", cookie)
        assert _helpdesk_pair(conn, baseline.SUBMIT_PATH, "a-2", cookie)
        site["refuse"] = True
        assert not _helpdesk_pair(conn, baseline.SUBMIT_PATH, "a-3", cookie)
    finally:
        conn.close()
    assert site["tickets"] == ["Trail report a-1", "Trail report a-2"]
    assert cookie == ["SECRET"]
    assert site["cookies_set"] == 1  # sent back from the second page on, as a browser does


# -- the venv ------------------------------------------------------------------------------


def test_a_venv_built_from_the_same_pins_is_reused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "helpdesk"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".intake-bench-requirements").write_text(baseline._pins() + "\n")
    monkeypatch.setenv("INTAKE_BENCH_HELPDESK_VENV", str(venv))

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("rebuilt a venv that was there")

    monkeypatch.setattr(subprocess, "run", no_build)
    assert baseline.ensure_venv(lambda line: None) == venv / "bin" / "python"


def test_a_venv_that_cannot_be_built_says_why_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "helpdesk"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".intake-bench-requirements").write_text("pins of another day\n")
    monkeypatch.setenv("INTAKE_BENCH_HELPDESK_VENV", str(venv))
    calls: list[list[str]] = []

    def pip_fails(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        if "pip" in argv:
            raise subprocess.CalledProcessError(
                1, argv, stderr=b"Collecting django-helpdesk==2.6.1\nERROR: No matching "
                                b"distribution found for django-helpdesk==2.6.1\n")
        Path(argv[-1], "bin").mkdir(parents=True)  # what `python -m venv DIR` makes
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(subprocess, "run", pip_fails)
    said: list[str] = []
    assert baseline.ensure_venv(said.append) is None
    assert [argv[1:3] for argv in calls] == [["-m", "venv"], ["-m", "pip"]]
    assert "No matching distribution found for django-helpdesk==2.6.1" in said[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["helpdesk"]  # no half-built copy
    assert (venv / ".intake-bench-requirements").read_text() == "pins of another day\n"
