"""Visit statistics over HTTP (issue 29, P1): the counts after a scripted set of visits, the
planted identifiers that must reach no table and no log line, the shared day key in Redis,
the staff dashboard and its CSV with small cells suppressed."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, select

from intake import create_app
from intake.db.stats_models import VisitCount, VisitUnique
from intake.runtime import Runtime
from intake.web.visits import COUNTED, EXTENSION, VisitCounter, _referrer_host
from tests.conftest import (
    SMALL_RULES,
    contact_fields,
    login,
    make_account,
    make_entry,
    make_settings,
    status_path_in,
    write_forms_file,
)

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")


def _flush(app: Flask) -> None:
    counter: VisitCounter = app.extensions[EXTENSION]
    counter.flush()


def _cells(rt: Runtime) -> list[VisitCount]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(VisitCount)))
        s.expunge_all()
        return rows


def _sum(rows: list[VisitCount], **where: str) -> int:
    return sum(r.hits for r in rows if all(getattr(r, k) == v for k, v in where.items()))


def _get(client: FlaskClient, path: str, ua: str, addr: str, **headers: str):  # noqa: ANN202
    return client.get(path, headers={"User-Agent": ua, **headers},
                      environ_base={"REMOTE_ADDR": addr})


def test_counts_are_right_after_a_scripted_set_of_visits(app: Flask, rt: Runtime) -> None:
    client = app.test_client()
    ref = {"Referer": "https://agency.example/parks/contact-us?campaign=x#top"}
    for i in range(12):  # 12 views from the agency's site, Chrome, 3 people
        assert _get(client, "/forms/contact", CHROME, f"198.51.100.{i % 3}", **ref
                    ).status_code == 200
    for _ in range(2):  # 2 views in Spanish, Firefox on Linux, no referrer, 1 person
        assert _get(client, "/forms/contact?lang=es", FIREFOX, "198.51.100.50").status_code == 200
    assert _get(client, "/embed/contact", SAFARI_IOS, "198.51.100.60").status_code == 200
    assert _get(client, "/forms/no-such-form", CHROME, "198.51.100.1").status_code == 404
    # two validation errors, three submissions
    for _ in range(2):
        r = client.post("/forms/contact", data=contact_fields(app, message=""),
                        headers={"User-Agent": CHROME},
                        environ_base={"REMOTE_ADDR": "198.51.100.1"})
        assert r.status_code == 422
    status_paths = []
    for i in range(3):
        r = client.post("/forms/contact", data=contact_fields(app, subject=f"Trail {i}"),
                        headers={"User-Agent": CHROME},
                        environ_base={"REMOTE_ADDR": "198.51.100.1"})
        assert r.status_code == 200
        status_paths.append(status_path_in(r.get_data(as_text=True)))
    assert all(status_paths)
    for path in status_paths:
        assert _get(client, str(path), CHROME, "198.51.100.1").status_code == 200
    assert _get(client, "/records", FIREFOX, "198.51.100.70").status_code == 200
    assert _get(client, "/healthz", CHROME, "198.51.100.1").status_code == 200  # not counted

    _flush(app)
    rows = _cells(rt)
    assert _sum(rows, form="contact", route="/forms/<slug>", outcome="view") == 14
    assert _sum(rows, form="contact", route="/embed/<slug>", outcome="view") == 1
    assert _sum(rows, form="contact", outcome="invalid") == 2
    assert _sum(rows, form="contact", outcome="submission") == 3
    assert _sum(rows, form="no-such-form") == 0
    assert _sum(rows, referrer="agency.example", outcome="view") == 12
    assert _sum(rows, referrer="(none)", outcome="view", route="/forms/<slug>") == 2
    assert _sum(rows, browser="Chrome", outcome="view") == 12 + 3
    assert _sum(rows, browser="Firefox", os="Linux") == 3
    assert _sum(rows, browser="Mobile Safari", os="iOS") == 1
    assert _sum(rows, language="es") == 2
    assert _sum(rows, route="/status/<token>", outcome="view", form="") == 3
    assert _sum(rows, route="/records", outcome="view") == 1
    assert {r.route for r in rows} <= {"/forms/<slug>", "/embed/<slug>", "/status/<token>",
                                       "/records"}
    # Batched: one row per distinct cell, not per request.
    assert len(rows) < 12
    with rt.db.session() as s:
        visitors = {(u.route, u.form): u.visitors for u in s.scalars(select(VisitUnique))}
    assert visitors[("/forms/<slug>", "contact")] == 4  # .0 .1 .2 and .50
    assert visitors[("/status/<token>", "")] == 1
    # A second flush with nothing new changes nothing; new visits add to the same cells.
    _flush(app)
    assert _get(client, "/forms/contact", CHROME, "198.51.100.0", **ref).status_code == 200
    _flush(app)
    rows = _cells(rt)
    assert _sum(rows, form="contact", route="/forms/<slug>", outcome="view") == 15
    with rt.db.session() as s:
        assert s.scalar(select(VisitUnique.visitors).where(
            VisitUnique.form == "contact", VisitUnique.route == "/forms/<slug>")) == 4


def test_the_counted_pages_are_one_list_of_public_endpoints(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= COUNTED
    assert not any(e.startswith("staff.") for e in COUNTED)


def test_the_counters_are_written_when_the_process_stops(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_STATS_FLUSH_SECONDS="3600")
    runtime = Runtime(settings)
    runtime.rules.load()
    app = create_app(runtime=runtime)
    assert _get(app.test_client(), "/forms/contact", CHROME, "198.51.100.9").status_code == 200
    assert _cells(runtime) == []  # nothing written per request
    runtime.close()
    again = Runtime(settings)
    try:
        assert _sum(_cells(again), form="contact", outcome="view") == 1
    finally:
        again.close()


PLANTED_IP = "203.0.113.77"
PLANTED_UA = "zzqq-planted-agent-4711 TokenBot/1.0 (+planted-ua-string)"
PLANTED_QUERY = "planted-query-value-88231"


@pytest.fixture
def proxied(tmp_path: Path, db_url: str) -> Iterator[tuple[Flask, Runtime]]:
    settings = make_settings(tmp_path, db_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_FORM_RATE_LIMIT="1000/minute", INTAKE_RULES=str(SMALL_RULES),
                             INTAKE_TRUSTED_PROXIES="1", INTAKE_LOG_LEVEL="DEBUG")
    runtime = Runtime(settings)
    runtime.rules.load()
    yield create_app(runtime=runtime), runtime
    runtime.close()


def test_planted_identifiers_reach_no_table_and_no_log(
        proxied: tuple[Flask, Runtime], caplog: pytest.LogCaptureFixture) -> None:
    app, rt = proxied
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    headers = {"User-Agent": PLANTED_UA, "X-Forwarded-For": PLANTED_IP,
               "Referer": f"https://referrer.example/page?secret={PLANTED_QUERY}"}
    page = client.get(f"/forms/contact?utm_source={PLANTED_QUERY}", headers=headers)
    assert page.status_code == 200
    r = client.post("/forms/contact", data=contact_fields(app), headers=headers)
    assert r.status_code == 200
    status_path = status_path_in(r.get_data(as_text=True))
    assert status_path is not None
    token = status_path.rsplit("/", 1)[1]
    assert client.get(f"{status_path}?q={PLANTED_QUERY}", headers=headers).status_code == 200
    _flush(app)
    rows = _cells(rt)
    assert _sum(rows, outcome="view", form="contact") == 1
    assert _sum(rows, route="/status/<token>") == 1
    assert {r.browser for r in rows} == {"Other"}  # the UA's own words never become a family

    planted = [PLANTED_IP, PLANTED_UA, "zzqq-planted", "TokenBot", PLANTED_QUERY, token]
    dump = []
    with rt.db.engine.connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                dump.append(" ".join(repr(v) for v in row))
    everything = "\n".join(dump)
    assert "visit_counts" in meta.tables
    for value in planted:
        assert value not in everything, f"{value!r} found in the database"
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    for value in planted:
        assert value not in logged, f"{value!r} found in the log output"


def test_visitors_are_counted_once_across_processes_with_redis(
        tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_RATE_LIMIT_URL=redis_url)
    one, two = Runtime(settings), Runtime(settings)
    try:
        apps = [create_app(runtime=one), create_app(runtime=two)]
        for app in apps:  # the same person reaches both processes
            assert _get(app.test_client(), "/forms/contact", CHROME, "198.51.100.7"
                        ).status_code == 200
        assert _get(apps[1].test_client(), "/forms/contact", FIREFOX, "198.51.100.8"
                    ).status_code == 200
        for app in apps:
            _flush(app)
        with one.db.session() as s:
            assert s.scalar(select(VisitUnique.visitors).where(
                VisitUnique.form == "contact")) == 2
        assert _sum(_cells(one), form="contact", outcome="view") == 3
        import redis

        keys = redis.Redis.from_url(redis_url).keys("intake:visits:key:*")
        assert len(keys) == 1  # one key of the day, shared
        assert 0 < redis.Redis.from_url(redis_url).ttl(keys[0]) <= 2 * 24 * 3600
    finally:
        one.close()
        two.close()


# -- the dashboard ---------------------------------------------------------------------


def test_dashboard_shows_figures_with_small_cells_suppressed(app: Flask, rt: Runtime) -> None:
    for i in range(11):
        make_entry(rt, "dot", subject=f"Pothole {i}", key=f"dot-{i}")
    for i in range(3):
        make_entry(rt, "parks", subject=f"Trail {i}", key=f"parks-{i}")
    client = app.test_client()
    for i in range(12):
        assert _get(client, "/forms/contact", CHROME, f"198.51.100.{i}").status_code == 200
    _flush(app)
    agent = make_account(rt, "agent@dot.examplia.gov", "dot")
    login(client, agent)
    page = client.get("/staff/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Dashboard: agency dot" in html
    assert "<svg" in html and "<title id=\"submissions-title\">" in html
    assert "<script" not in html and " style=" not in html and "<style" not in html
    # 11 dot entries this week: shown; parks' entries are not this agency's
    assert ">11<" in html
    # the visits table: 12 views shown, 0 submissions, visitors 12
    csv_page = client.get("/staff/dashboard.csv?chart=visits")
    assert csv_page.status_code == 200 and csv_page.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(csv_page.get_data(as_text=True))))
    assert rows[0][:3] == ["Form", "Views", "Submissions"]
    assert rows[1][:5] == ["contact", "12", "0", "0", "12"]
    referrers = list(csv.reader(io.StringIO(client.get(
        "/staff/dashboard.csv?chart=visits-contact-browsers").get_data(as_text=True))))
    assert referrers[1] == ["Chrome", "12"]
    open_age = list(csv.reader(io.StringIO(client.get(
        "/staff/dashboard.csv?chart=open-age").get_data(as_text=True))))
    assert open_age[1] == ["Under 1 day", "11"]
    assert client.get("/staff/dashboard.csv?chart=nope").status_code == 404
    # an agent cannot ask for another agency
    other = client.get("/staff/dashboard?agency=parks").get_data(as_text=True)
    assert "Dashboard: agency dot" in other


def test_small_counts_read_below_the_minimum_everywhere(app: Flask, rt: Runtime) -> None:
    for i in range(3):
        make_entry(rt, "parks", subject=f"Trail {i}", key=f"parks-{i}")
    admin = make_account(rt, "admin@examplia.gov", "governor", role="system_admin")
    client = app.test_client()
    login(client, admin)
    html = client.get("/staff/dashboard").get_data(as_text=True)
    assert "Dashboard: all agencies" in html
    assert "&lt; 10" in html
    rows = list(csv.reader(io.StringIO(client.get(
        "/staff/dashboard.csv?chart=open-age&agency=parks").get_data(as_text=True))))
    assert rows[1] == ["Under 1 day", "< 10"]
    assert "Dashboard: agency parks" in client.get(
        "/staff/dashboard?agency=parks").get_data(as_text=True)
    assert client.get("/staff/dashboard?weeks=lots").status_code == 400


def test_the_minimum_cell_is_a_setting(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, INTAKE_STATS_MIN_CELL="2")
    rt = Runtime(settings)
    rt.rules.load()
    try:
        for i in range(3):
            make_entry(rt, "parks", subject=f"Trail {i}", key=f"parks-{i}")
        client = create_app(runtime=rt).test_client()
        login(client, make_account(rt, "agent@parks.examplia.gov", "parks"))
        rows = list(csv.reader(io.StringIO(client.get(
            "/staff/dashboard.csv?chart=open-age").get_data(as_text=True))))
        assert rows[1] == ["Under 1 day", "3"]
    finally:
        rt.close()


def test_dashboard_needs_a_login(client: FlaskClient) -> None:
    assert client.get("/staff/dashboard").status_code == 302
    assert client.get("/staff/dashboard.csv?chart=visits").status_code == 302


def test_a_page_never_fails_for_its_statistics(tmp_path: Path, sqlite_url: str) -> None:
    from tests.conftest import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = make_settings(tmp_path, sqlite_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_RATE_LIMIT_URL=down)
    runtime = Runtime(settings)
    try:
        app = create_app(runtime=runtime)
        assert _get(app.test_client(), "/forms/contact", CHROME, "198.51.100.3"
                    ).status_code == 200
        _flush(app)  # the HyperLogLog is unreachable too: the counts are written anyway
        assert _sum(_cells(runtime), form="contact", outcome="view") == 1
    finally:
        runtime.close()


@pytest.mark.parametrize(("referer", "host"), [
    (None, "(none)"),
    ("", "(none)"),
    ("https://www.Agency.example./parks?q=secret#x", "www.agency.example"),
    ("https://user:password@evil.example:8443/path", "evil.example"),
    ("http://localhost/forms/contact", "(this site)"),
    ("https://[2001:db8::1]/x", "(other)"),
    ("https://192.0.2.44/x", "(other)"),
    ("javascript:alert(1)", "(other)"),
    ("https://exa mple.com/", "(other)"),
    ("https://ex\u00e4mple.com/", "(other)"),
    ("//", "(other)"),
    ("https://" + "a" * 300 + ".example/", "(other)"),
])
def test_only_the_referrers_host_name_is_kept(referer: str | None, host: str) -> None:
    assert _referrer_host(referer, "localhost") == host


def test_migration_0023_goes_down_and_up(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from intake.db import Database
    from intake.db.migrate import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'visits.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0022")
    db = Database(url)
    try:
        assert "visit_counts" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
    upgrade(url)
    db = Database(url)
    try:
        assert {"visit_counts", "visit_uniques"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
