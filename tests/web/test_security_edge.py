"""The web edge over HTTP: links from the public URL, HSTS and the session cookie, trusted
proxies, and bad input answered as the client's error (4xx), never a 500."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.db.edge_models import RateLimitCounter
from intake.outbound.memory import MemoryMailSender
from intake.runtime import Runtime
from intake.settings import SettingsError, load_settings
from intake.web.security import HSTS, SESSION_COOKIE_NAME, trust_proxies
from tests.conftest import (
    SMALL_RULES,
    contact_fields,
    csrf,
    login,
    make_account,
    make_entry,
    make_runtime,
    make_settings,
    memory_senders,
    wait_for,
    write_forms_file,
)

JSON = {"Accept": "application/json"}
PUBLIC = "https://intake.agency.example.gov"


@pytest.fixture
def make_app(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test database with these settings; their runtimes closed after."""
    runtimes: list[Runtime] = []

    def build(**env: str) -> Flask:
        folder = tmp_path / str(len(runtimes))
        folder.mkdir()
        settings = make_settings(folder, db_url, INTAKE_FORMS=str(write_forms_file(folder)),
                                 INTAKE_RULES=str(SMALL_RULES), **env)
        runtime = Runtime(settings)
        runtimes.append(runtime)
        runtime.rules.load()
        return create_app(runtime=runtime)

    yield build
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def public_app(make_app: Callable[..., Flask]) -> Flask:
    """Served at an https public URL, with room for the tests' submissions."""
    return make_app(INTAKE_PUBLIC_URL=PUBLIC, INTAKE_FORM_RATE_LIMIT="1000/minute")


# -- links come from INTAKE_PUBLIC_URL, never from the Host header --------------------------


def test_a_forged_host_never_reaches_the_status_link(public_app: Flask) -> None:
    client = public_app.test_client()
    forged = {"Host": "evil.example.org"}
    answer = client.post("/forms/contact", json=contact_fields(public_app),
                         headers={**JSON, **forged})
    assert answer.status_code == 201
    assert re.fullmatch(re.escape(PUBLIC) + r"/status/[A-Za-z0-9_-]{20,}",
                        answer.get_json()["status_url"])

    page = client.post("/forms/contact", data=contact_fields(public_app, subject="Second"),
                       headers={"Host": "evil.example.org:8443",
                                "X-Forwarded-Host": "evil.example.org"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "evil.example.org" not in html
    assert re.search(r'href="' + re.escape(PUBLIC) + r'/status/[A-Za-z0-9_-]{20,}"', html)
    # The link works where it points.
    path = answer.get_json()["status_url"].removeprefix(PUBLIC)
    assert client.get(path).status_code == 200


def test_the_acknowledgement_links_ignore_a_forged_host(tmp_path: Path, db_url: str) -> None:
    outbox = MemoryMailSender()
    rt = make_runtime(tmp_path, db_url, senders=memory_senders(outbox),
                      INTAKE_FORMS=str(write_forms_file(tmp_path)))
    try:
        app = create_app(runtime=rt)
        rt.jobs.start()
        public = rt.settings.public_url
        answer = app.test_client().post(
            "/forms/contact", json=contact_fields(app), headers={
                **JSON, "Host": "evil.example.org", "X-Forwarded-Host": "evil.example.org"})
        assert answer.status_code == 201
        assert answer.get_json()["status_url"].startswith(f"{public}/status/")
        wait_for(lambda: outbox.to("ana@example.com"), message="the acknowledgement")
        raw = outbox.to("ana@example.com")[0].message.as_string()
        assert "evil.example" not in raw
        links = re.findall(r"https?://[^\s<>\"]+/status/[A-Za-z0-9_-]+", raw)
        assert links and all(link.startswith(f"{public}/status/") for link in links)
    finally:
        rt.close()


# -- HSTS and the session cookie -------------------------------------------------------------


def test_hsts_on_every_response_when_the_public_url_is_https(public_app: Flask) -> None:
    client = public_app.test_client()
    for path in ("/forms/contact", "/staff/login", "/healthz", "/no/such/page"):
        assert client.get(path).headers.get("Strict-Transport-Security") == HSTS, path


def test_no_hsts_over_plain_http_unless_the_request_came_over_tls(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/forms/contact").headers
    secure = client.get("/forms/contact", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == HSTS
    # A client cannot claim TLS for itself: X-Forwarded-Proto from an untrusted peer is ignored.
    claimed = client.get("/forms/contact", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in claimed.headers


def test_the_session_cookie_is_a_host_cookie(client: FlaskClient) -> None:
    response = client.get("/staff/login")
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    name, _, attributes = cookies[0].partition("=")
    assert name == SESSION_COOKIE_NAME == "__Host-session"
    parts = {p.strip().split("=")[0].lower(): p.strip() for p in attributes.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= set(parts)
    assert parts["path"] == "Path=/"
    assert parts["samesite"] == "SameSite=Lax"
    assert "domain" not in parts
    # The other headers are kept as they were.
    for header, value in (("X-Content-Type-Options", "nosniff"),
                          ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"),
                          ("Cross-Origin-Opener-Policy", "same-origin")):
        assert response.headers[header] == value


# -- trusted proxies -------------------------------------------------------------------------


def _echo(tmp_path: Path, trusted: str) -> FlaskClient:
    """A bare app behind intake's proxy handling, answering the address and scheme it saw."""
    settings = load_settings({"INTAKE_INSTANCE_PATH": str(tmp_path),
                              "INTAKE_TRUSTED_PROXIES": trusted})
    app = Flask("echo")
    trust_proxies(app, settings)

    @app.get("/")
    def seen() -> str:
        return f"{request.remote_addr} {request.scheme} {request.host}"

    return app.test_client()


def _seen(client: FlaskClient, peer: str, **headers: str) -> str:
    return client.get("/", environ_base={"REMOTE_ADDR": peer}, headers={
        k.replace("_", "-"): v for k, v in headers.items()}).get_data(as_text=True)


def test_by_default_forwarded_headers_from_the_internet_are_ignored(tmp_path: Path) -> None:
    client = _echo(tmp_path, "")
    assert _seen(client, "198.51.100.7", X_Forwarded_For="10.9.9.9",
                 X_Forwarded_Proto="https", X_Forwarded_Host="evil.example") \
        == "198.51.100.7 http localhost"


def test_a_hop_count_takes_the_address_the_load_balancer_saw(tmp_path: Path) -> None:
    client = _echo(tmp_path, "1")
    # The client wrote "6.6.6.6" itself; the load balancer appended what it saw.
    assert _seen(client, "10.0.0.2", X_Forwarded_For="6.6.6.6, 203.0.113.9",
                 X_Forwarded_Proto="https", X_Forwarded_Host="evil.example") \
        == "203.0.113.9 https localhost"
    two = _echo(tmp_path, "2")
    assert _seen(two, "10.0.0.2", X_Forwarded_For="6.6.6.6, 203.0.113.9, 10.0.0.1") \
        .startswith("203.0.113.9 ")


def test_a_list_of_proxies_is_trusted_and_nothing_else(tmp_path: Path) -> None:
    client = _echo(tmp_path, "10.0.0.0/8, 192.0.2.1")
    assert _seen(client, "10.1.2.3", X_Forwarded_For="6.6.6.6, 203.0.113.9, 192.0.2.1",
                 X_Forwarded_Proto="https") == "203.0.113.9 https localhost"
    # From a peer that is not a trusted proxy, the headers are not believed.
    assert _seen(client, "203.0.113.50", X_Forwarded_For="10.0.0.5",
                 X_Forwarded_Proto="https") == "203.0.113.50 http localhost"
    # Garbage where an address should be stops the walk at the last trusted hop.
    assert _seen(client, "10.1.2.3", X_Forwarded_For="not-an-address").startswith("10.1.2.3 ")
    with pytest.raises(SettingsError, match="INTAKE_TRUSTED_PROXIES"):
        load_settings({"INTAKE_INSTANCE_PATH": str(tmp_path),
                       "INTAKE_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal"})


def _statuses(app: Flask, forwarded_for: list[str]) -> list[int]:
    client = app.test_client()
    return [client.post("/forms/contact", json={}, headers={"X-Forwarded-For": xff},
                        environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code
            for xff in forwarded_for]


def test_rate_limits_count_the_real_client_behind_a_trusted_proxy(
        make_app: Callable[..., Flask]) -> None:
    clients = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    behind = make_app(INTAKE_FORM_RATE_LIMIT="2/minute", INTAKE_TRUSTED_PROXIES="1")
    assert 429 not in _statuses(behind, clients * 2)  # two each: every client within its limit
    # A client forging X-Forwarded-For still ends in the address the proxy appended.
    forged = [f"{n}.1.1.1, 203.0.113.77" for n in range(1, 4)]
    assert _statuses(behind, forged)[-1] == 429
    # What is stored is a keyed hash of each client, never its address.
    runtime: Runtime = behind.extensions["intake"]
    with runtime.db.session() as s:
        keys = list(s.scalars(select(RateLimitCounter.key)))
    assert len(keys) == 4  # 3 clients and the forger
    assert not [k for k in keys if "203.0.113" in k or "1.1.1" in k or "10.0.0" in k]


def test_without_trusted_proxies_forged_addresses_do_not_escape_the_limit(
        make_app: Callable[..., Flask]) -> None:
    app = make_app(INTAKE_FORM_RATE_LIMIT="2/minute")
    assert _statuses(app, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])[-1] == 429


# -- bad input is a 4xx -----------------------------------------------------------------------


@pytest.mark.parametrize("entry_id", ["9223372036854775808", "99999999999999999999999999",
                                      "1" * 400])
def test_huge_integer_ids_answer_404(app: Flask, rt: Runtime, entry_id: str) -> None:
    agent = make_account(rt, "agent@dot.examplia.gov", "dot")
    make_entry(rt, "dot")
    client = app.test_client()
    login(client, agent)
    for path in (f"/staff/entries/{entry_id}", f"/staff/entries/1/attachments/{entry_id}"):
        assert client.get(path).status_code == 404, path
    assert client.get("/staff/entries/1").status_code == 200  # an id that fits still works


@pytest.mark.parametrize("origin", ["https://[::1", "http://[", "https://evil.example"])
def test_a_malformed_origin_on_a_staff_post_is_refused_not_a_500(
        app: Flask, rt: Runtime, origin: str) -> None:
    agent = make_account(rt, "agent@dot.examplia.gov", "dot")
    make_entry(rt, "dot")
    client = app.test_client()
    login(client, agent)
    token = csrf(client)
    response = client.post("/staff/entries/1/unread", data={"csrf_token": token},
                           headers={"Origin": origin})
    assert response.status_code == 403


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000,
                                  '{"message": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_100000_deep_answers_400(app: Flask, body: str) -> None:
    client = app.test_client()
    response = client.post("/forms/contact", data=body, content_type="application/json",
                           headers=JSON)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_any_json_endpoint_answers_400_for_json_nested_too_deep(app: Flask) -> None:
    from intake.web.csrf import csrf

    @app.post("/test-only/json")
    @csrf.exempt
    def echo() -> dict[str, str]:
        return {"type": type(request.get_json()).__name__}

    client = app.test_client()
    assert client.post("/test-only/json", json={"a": [1]}).get_json() == {"type": "dict"}
    deep = client.post("/test-only/json", data="[" * 100_000 + "]" * 100_000,
                       content_type="application/json")
    assert deep.status_code == 400
