"""Live Help (issue 30) over HTTP, with the Flask test client, on SQLite and PostgreSQL.

A visitor starts a chat, an operator of the agency the rules route it to accepts it,
they exchange messages (the stream replays from Last-Event-ID), the visitor ends it
with the exit interview, and the transcript is an entry on the chat channel with its
record number and status link. Hostile and private input: the sensitive-data
warning, an IP planted in X-Forwarded-For, a visitor's e-mail given only for the
transcript copy.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, text

from intake import create_app
from intake.db.chat_models import ChatMessage, ChatSession
from intake.db.models import Entry, Submitter
from intake.db.staff_models import AccessLogEntry
from intake.runtime import Runtime
from intake.services import chat as chat_service
from intake.services.records import open_original
from tests.conftest import (
    SMALL_RULES,
    SmtpSink,
    csrf_from,
    login,
    make_account,
    make_settings,
    wait_for,
)

PLANTED_IP = "203.0.113.77"
CHROME_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")
HELP_YAML = """\
version: 1
form: contact
wait_seconds: 60
exit_survey: {survey}
agencies:
  dot: {{hours: ["mon-sun 00:00-24:00"]}}
  parks: {{hours: ["mon-sun 00:00-24:00"]}}
"""


def write_help(tmp_path: Path) -> Path:
    survey = Path(chat_service.__file__).resolve().parent.parent / "defaults" / "surveys" \
        / "live_help_exit.yaml"
    path = tmp_path / "help.yaml"
    path.write_text(HELP_YAML.format(survey=survey), encoding="utf-8")
    return path


@pytest.fixture
def rt(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    settings = make_settings(tmp_path, db_url, INTAKE_RULES=str(SMALL_RULES),
                             INTAKE_HELP=str(write_help(tmp_path)),
                             INTAKE_HELP_STREAM_SECONDS="0.5",
                             INTAKE_HELP_MESSAGE_RATE="1000/minute",
                             INTAKE_FORM_RATE_LIMIT="1000/minute",
                             INTAKE_TRUSTED_PROXIES="1")
    runtime = Runtime(settings)
    runtime.rules.load()
    yield runtime
    runtime.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)
    application.testing = True
    return application


HEADERS = {"User-Agent": CHROME_UA, "X-Forwarded-For": PLANTED_IP}


def start_chat(client: FlaskClient, message: str, *, name: str = "Ada Lovelace",
               topic: str = "transportation", lang: str = "en", **extra: str) -> str:
    response = client.post("/help", data={"name": name, "topic": topic, "message": message,
                                          "lang": lang, **extra}, headers=HEADERS)
    assert response.status_code == 303, response.get_data(as_text=True)[:400]
    location = response.headers["Location"]
    match = re.search(r"/help/c/([^/?#]+)", location)
    assert match, location
    return match.group(1)


def stream(client: FlaskClient, url: str, last: int | None = None) -> list[dict[str, object]]:
    headers = dict(HEADERS)
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        ids = [line[4:] for line in block.splitlines() if line.startswith("id: ")]
        if data:
            event = json.loads(data[0])
            assert str(event["id"]) == ids[0]
            events.append(event)
    return events


def operator_client(app: Flask, rt: Runtime, agency: str = "dot",
                    name: str = "Grace") -> FlaskClient:
    account = make_account(rt, f"op-{agency}@{agency}.examplia.gov", agency, role="operator")
    client = app.test_client()
    login(client, account)
    page = client.get("/staff/help")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    assert client.post("/staff/help/name", data={"display_name": name,
                                                 "csrf_token": token}).status_code == 303
    return client


def chat_id_of(rt: Runtime, token: str) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(ChatSession.id).order_by(ChatSession.id.desc())))


def test_a_chat_from_start_to_transcript_entry(app: Flask, rt: Runtime,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    visitor = app.test_client()
    token = start_chat(visitor, "There is a pothole on Route 9 near the bridge.")
    chat_id = chat_id_of(rt, token)
    page = visitor.get(f"/help/c/{token}")
    assert page.status_code == 200
    assert "pothole on Route 9" in page.get_data(as_text=True)

    # The rules route it (body: pothole -> dot): a dot operator sees it, a parks one not.
    operator = operator_client(app, rt, "dot")
    queue = operator.get("/staff/help").get_data(as_text=True)
    assert "Ada Lovelace" in queue and "Chrome 131" in queue
    other = operator_client(app, rt, "parks", "Linus")
    assert "Ada Lovelace" not in other.get("/staff/help").get_data(as_text=True)
    assert other.get(f"/staff/help/{chat_id}").status_code == 404

    view = operator.get(f"/staff/help/{chat_id}")
    assert view.status_code == 200
    token_csrf = csrf_from(view.get_data(as_text=True))
    assert operator.post(f"/staff/help/{chat_id}/accept",
                         data={"csrf_token": token_csrf}).status_code == 303
    reply = operator.post(f"/staff/help/{chat_id}/messages",
                          data={"message": "Thank you, which direction?",
                                "csrf_token": token_csrf},
                          headers={"Accept": "application/json"})
    assert reply.status_code == 201
    ack = visitor.post(f"/help/c/{token}/messages", data={"message": "Northbound."},
                       headers={**HEADERS, "Accept": "application/json"})
    assert ack.status_code == 201
    acked = ack.get_json()["id"]

    # Both streams: every event once, in order; a reconnect replays from Last-Event-ID.
    events = stream(visitor, f"/help/c/{token}/events")
    bodies = [e["body"] for e in events]
    assert bodies == ["There is a pothole on Route 9 near the bridge.", "joined:Grace",
                      "Thank you, which direction?", "Northbound."]
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})
    assert events[-1]["id"] == acked
    assert events[2]["name"] == "Grace"  # the display name, never the e-mail address
    again = stream(visitor, f"/help/c/{token}/events", last=int(events[1]["id"]))
    assert [e["body"] for e in again] == bodies[2:]
    assert [e["body"] for e in stream(operator, f"/staff/help/{chat_id}/events")] == bodies

    # The visitor ends it: exit interview, and a transcript copy to an address.
    end = visitor.post(f"/help/c/{token}/end", data={
        "helped": "yes", "satisfaction": "5", "copy": "1", "email": "ada@example.org"},
        headers=HEADERS)
    assert end.status_code == 303
    done = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    number = re.search(r'class="record-number">([^<]+)<', done)
    assert number, done[-2000:]
    status_url = re.search(r'class="status-link" href="[^"]*?(/status/[^"]+)"', done)
    assert status_url, done[-2000:]
    status_page = visitor.get(status_url.group(1))
    assert status_page.status_code == 200
    assert number.group(1) in status_page.get_data(as_text=True)
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.record_number == number.group(1))).one()
        assert entry.channel == "chat" and entry.kind == "chat"
        facts = entry.fields["chat"]
        assert facts["operator"] == "Grace" and facts["visitor_name"] == "Ada Lovelace"
        assert facts["topic"] == "transportation" and facts["browser"] == "Chrome 131"
        assert {"session_date", "start_time", "end_time"} <= set(facts)
        assert entry.fields["survey"] == "live-help-exit"
        assert entry.fields["answers"] == {"helped": "yes", "satisfaction": 5}
        assert "Grace: Thank you, which direction?" in entry.body
        assert "Ada Lovelace: Northbound." in entry.body
        submitter = s.scalars(select(Submitter).where(Submitter.entry_id == entry.id)).one()
        assert submitter.email == "ada@example.org" and submitter.name == "Ada Lovelace"
        # Viewing the chat was access-logged, and joins the entry's access log (P8).
        viewed = list(s.scalars(select(AccessLogEntry.id).where(
            AccessLogEntry.entry_id == entry.id, AccessLogEntry.what == "chat")))
        assert viewed
    # A view after the end goes to the entry's access log at once.
    assert operator.get(f"/staff/help/{chat_id}").status_code == 200
    with rt.db.session() as s:
        assert len(list(s.scalars(select(AccessLogEntry.id).where(
            AccessLogEntry.entry_id == entry.id, AccessLogEntry.what == "chat")))) \
            == len(viewed) + 1
    with rt.db.session() as s:
        # The chat's sealed copies are gone: the transcript's sealed original holds them.
        assert s.scalar(select(ChatMessage.id).where(ChatMessage.raw.is_not(None))) is None
        original = json.loads(open_original(s, entry.id, rt.originals_key))
        assert [m["text"] for m in original["messages"]][:4] == bodies
    # The ended chat takes no more messages.
    late = visitor.post(f"/help/c/{token}/messages", data={"message": "one more"},
                        headers={"Accept": "application/json"})
    assert late.status_code == 409

    # No IP address anywhere: not in a table, not in a log line.
    with rt.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                assert PLANTED_IP not in repr(row), table
                assert "Mozilla/5.0" not in repr(row), table
    for record in caplog.records:
        assert PLANTED_IP not in record.getMessage()
        assert "ada@example.org" not in record.getMessage()


def test_a_non_consenting_visitors_address_reaches_no_operator_view(
        app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    token = start_chat(visitor, "A pothole again on the highway.", name="Bo")
    chat_id = chat_id_of(rt, token)
    operator = operator_client(app, rt, "dot")
    csrf = csrf_from(operator.get(f"/staff/help/{chat_id}").get_data(as_text=True))
    operator.post(f"/staff/help/{chat_id}/accept", data={"csrf_token": csrf})
    visitor.post(f"/help/c/{token}/end", data={"copy": "1", "email": "bo@example.org"})
    with rt.db.session() as s:
        entry_id = s.scalar(select(ChatSession.entry_id).where(ChatSession.id == chat_id))
    rt.jobs.start()  # the route work: the transcript entry goes to dot by the rules

    def routed() -> bool:
        with rt.db.session() as s:
            return s.get(Entry, entry_id).agency_id == "dot"  # type: ignore[union-attr]

    wait_for(routed, message="the transcript routed")
    pages = [operator.get("/staff/help"), operator.get(f"/staff/help/{chat_id}"),
             operator.get(f"/staff/help/{chat_id}/log"),
             operator.get(f"/staff/help/{chat_id}/events"),
             operator.get(f"/staff/entries/{entry_id}")]
    for page in pages:
        assert page.status_code == 200
        assert "bo@example.org" not in page.get_data(as_text=True)


def test_the_sensitive_data_warning_per_message(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    token = start_chat(visitor, "A pothole on Route 9.")
    ssn = "My SSN is 123-45-6789, please check my file."
    warned = visitor.post(f"/help/c/{token}/messages", data={"message": ssn})
    assert warned.status_code == 200
    page = warned.get_data(as_text=True)
    assert "Please check your message before sending it" in page
    assert "a Social Security number" in page
    as_json = visitor.post(f"/help/c/{token}/messages", data={"message": ssn},
                           headers={"Accept": "application/json"})
    assert as_json.status_code == 422 and as_json.get_json()["kinds"] == ["ssn"]
    with rt.db.session() as s:
        assert len(s.scalars(select(ChatMessage)).all()) == 1  # nothing stored yet
    sealed = visitor.post(f"/help/c/{token}/messages",
                          data={"message": ssn, "_confirm_sensitive": "seal"})
    assert sealed.status_code == 303
    removed = visitor.post(f"/help/c/{token}/messages", data={
        "message": "Card 4111 1111 1111 1111 was charged.", "_confirm_sensitive": "remove"})
    assert removed.status_code == 303
    events = stream(visitor, f"/help/c/{token}/events")
    assert "123-45-6789" not in events[1]["body"]
    assert "4111" not in events[2]["body"] and "[removed]" in events[2]["body"]
    visitor.post(f"/help/c/{token}/end", data={"leave": "1"})
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.channel == "chat")).one()
        assert "123-45-6789" not in entry.body and "4111" not in entry.body
        original = open_original(s, entry.id, rt.originals_key).decode()
        assert "123-45-6789" in original  # sealed, as the visitor chose
        assert "4111" not in original  # removed from everything


def test_no_operator_available_leaves_the_chat_as_a_message(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    # No rule matches: the default agency (governor), which takes no chats.
    token = start_chat(visitor, "When is the office open?", topic="", lang="es")
    page = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    assert 'id="unavailable"' in page and 'lang="es"' in page
    left = visitor.post(f"/help/c/{token}/end", data={"leave": "1", "lang": "es"})
    assert left.status_code == 303
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.channel == "chat")).one()
        assert "When is the office open?" in entry.body
        assert entry.fields["chat"]["ended_by"] == "message"
        assert entry.language == "es"


def test_transfer_moves_the_chat_to_another_agencys_queue(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    token = start_chat(visitor, "A pothole in the state park road.")
    chat_id = chat_id_of(rt, token)
    dot = operator_client(app, rt, "dot")
    csrf = csrf_from(dot.get(f"/staff/help/{chat_id}").get_data(as_text=True))
    refused = dot.post(f"/staff/help/{chat_id}/transfer",
                       data={"agency": "parks", "reason": " ", "csrf_token": csrf})
    assert refused.status_code == 303
    moved = dot.post(f"/staff/help/{chat_id}/transfer",
                     data={"agency": "parks", "reason": "Park roads are theirs",
                           "csrf_token": csrf})
    assert moved.status_code == 303
    assert dot.get(f"/staff/help/{chat_id}").status_code == 404
    parks = operator_client(app, rt, "parks", "Linus")
    assert parks.get(f"/staff/help/{chat_id}").status_code == 200
    bodies = [e["body"] for e in stream(visitor, f"/help/c/{token}/events")]
    assert bodies[-1] == "transferred:Department of Parks"
    # The transcript goes where the chat went, not where the rules (pothole: dot) send it.
    assert visitor.post(f"/help/c/{token}/end", data={}).status_code == 303
    with rt.db.session() as s:
        entry_id = s.scalar(select(ChatSession.entry_id).where(ChatSession.id == chat_id))
    rt.jobs.start()

    def routed() -> bool:
        with rt.db.session() as s:
            return s.get(Entry, entry_id).agency_id is not None  # type: ignore[union-attr]

    wait_for(routed, message="the transcript routed")
    with rt.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None and entry.agency_id == "parks"
        transfer = entry.fields["chat"]["transfers"][0]
        assert transfer["to"] == "parks" and transfer["reason"] == "Park roads are theirs"


def test_without_javascript_or_cookies_the_pages_work(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client(use_cookies=False)
    token = start_chat(visitor, "A pothole on the highway exit.")
    page = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    assert f"/help/c/{token}/log" in page  # the frame that refreshes itself
    frame = visitor.get(f"/help/c/{token}/log")
    assert '<meta http-equiv="refresh"' in frame.get_data(as_text=True)
    assert "frame-ancestors 'self'" in frame.headers["Content-Security-Policy"]
    sent = visitor.post(f"/help/c/{token}/messages", data={"message": "Still there?"})
    assert sent.status_code == 303 and f"/help/c/{token}" in sent.headers["Location"]
    assert "Still there?" in visitor.get(f"/help/c/{token}/log").get_data(as_text=True)


def test_hostile_input_is_refused_cleanly(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    assert visitor.get("/help/c/forged-token").status_code == 404
    assert visitor.get("/help/c/forged-token/events").status_code == 404
    assert visitor.post("/help", data={"message": ""}).status_code == 422
    assert visitor.post("/help", data={"message": "x" * 5000}).status_code == 422
    assert visitor.post("/help", data={"message": "hi", "topic": "<script>"}).status_code == 422
    assert visitor.post("/help", data={"message": "hi"},
                        headers={"Origin": "https://evil.example"}).status_code == 403
    token = start_chat(visitor, "<script>alert(1)</script> pothole")
    page = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert visitor.get(f"/help/c/{token}/events", headers={"Last-Event-ID": "zz"}
                       ).status_code == 200
    embed = visitor.get("/embed/help")
    # The contact form's origins (the packaged forms file) may frame it, and only they.
    assert "frame-ancestors https://www.examplia.gov" in embed.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in visitor.get("/help").headers["Content-Security-Policy"]


def test_a_chat_posts_at_most_its_rate(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_HELP=str(write_help(tmp_path)),
                             INTAKE_HELP_MESSAGE_RATE="3/minute",
                             INTAKE_FORM_RATE_LIMIT="1000/minute")
    runtime = Runtime(settings)
    runtime.rules.load()
    try:
        client = create_app(runtime=runtime).test_client()
        token = start_chat(client, "A pothole on Route 1.")
        codes = [client.post(f"/help/c/{token}/messages", data={"message": f"m{i}"}).status_code
                 for i in range(4)]
        assert codes[:2] == [303, 303] and codes[-1] == 429
    finally:
        runtime.close()


def test_bad_live_help_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    from intake.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="INTAKE_HELP_MESSAGE_RATE"):
        load_settings({"INTAKE_HELP_MESSAGE_RATE": "often", "INTAKE_SECRET_KEY": "k" * 40})
    with pytest.raises(SettingsError, match="INTAKE_HELP_STREAM_SECONDS"):
        load_settings({"INTAKE_HELP_STREAM_SECONDS": "0", "INTAKE_SECRET_KEY": "k" * 40})
    bad = tmp_path / "help.yaml"
    for text_, problem in (
            ("version: 1\nagencies: {dot: {hours: ['someday 08:00-17:00']}}\n", "not like"),
            ("version: 1\nagencies: {dot: {hours: ['mon 17:00-08:00']}}\n", "ends before"),
            ("version: 1\nwait_seconds: -1\n", "wait_seconds"),
            ("version: 2\n", "version: 1")):
        bad.write_text(text_)
        settings = load_settings({"INTAKE_HELP": str(bad), "INTAKE_SECRET_KEY": "k" * 40,
                                  "INTAKE_INSTANCE_PATH": str(tmp_path)})
        with pytest.raises(chat_service.HelpConfigError, match=problem):
            chat_service.load_help(settings)


def test_every_operator_route_hides_another_agencys_chat(app: Flask, rt: Runtime) -> None:
    visitor = app.test_client()
    token = start_chat(visitor, "A secret pothole on Route 9.", name="Secret Visitor")
    chat_id = chat_id_of(rt, token)
    # The parks administrator, and an agent of dot itself (not an operator).
    outsiders = [operator_client(app, rt, "parks", "Linus")]
    agent = make_account(rt, "agent@dot.examplia.gov", "dot")
    outsiders.append(app.test_client())
    login(outsiders[-1], agent)
    for client in outsiders:
        csrf = csrf_from(client.get("/staff/inbox").get_data(as_text=True))
        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("staff.help") or "chat_id" not in rule.arguments:
                continue
            url = app.url_map.bind("localhost").build(rule.endpoint, {"chat_id": chat_id})
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                response = client.open(url, method=method, data={
                    "csrf_token": csrf, "message": "hi", "agency": "parks",
                    "reason": "mine"} if method == "POST" else None)
                assert response.status_code in (403, 404), (rule.endpoint, method)
                assert "Secret Visitor" not in response.get_data(as_text=True)
    with rt.db.session() as s:
        chat_row = s.get(ChatSession, chat_id)
        assert chat_row is not None and chat_row.state == "waiting"
        assert chat_row.agency_id == "dot"


def test_the_transcript_copy_goes_through_the_gate_to_the_address_given(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_HELP=str(write_help(tmp_path)),
                             INTAKE_HELP_MESSAGE_RATE="1000/minute",
                             INTAKE_FORM_RATE_LIMIT="1000/minute",
                             INTAKE_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
                             INTAKE_RETRY_BASE="0.05", INTAKE_SWEEP_INTERVAL="0.2")
    runtime = Runtime(settings)
    runtime.rules.load()
    try:
        client = create_app(runtime=runtime).test_client()
        token = start_chat(client, "Pothole on Route 9, lane two.", lang="es")
        client.post(f"/help/c/{token}/messages", data={
            "message": "Mi SSN es 123-45-6789", "_confirm_sensitive": "seal"})
        client.post(f"/help/c/{token}/end", data={"copy": "1", "email": "ada@example.org"})
        runtime.jobs.start()
        wait_for(lambda: sink.to("ada@example.org"), message="the transcript copy")
        [mail] = sink.to("ada@example.org")
        message = email.message_from_bytes(mail.raw, policy=email.policy.default)
        parts = [part.get_content() for part in message.walk()
                 if part.get_content_type() in ("text/plain", "text/html")]
        assert len(parts) == 2
        for part in parts:
            assert "La transcripción de su chat:" in part
            assert "Pothole on Route 9, lane two." in part
            assert "123-45-6789" not in part  # sealed: the copy shows the marker
        # Only the visitor's address got it; the agency's forward does not carry it.
        for other in sink.all():
            if "ada@example.org" not in other.rcpt_tos:
                assert b"ada@example.org" not in other.raw
    finally:
        runtime.close()


def test_retention_leaves_nothing_of_the_chat_behind(app: Flask, rt: Runtime) -> None:
    from intake.services.retention import destroy_entries

    visitor = app.test_client()
    token = start_chat(visitor, "Pothole by the school on Elm Street.", name="Ada Lovelace")
    visitor.post(f"/help/c/{token}/messages", data={"message": "It is deep."})
    visitor.post(f"/help/c/{token}/end", data={})
    with rt.db.session() as s:
        entry_id = s.scalar(select(Entry.id).where(Entry.channel == "chat"))
        assert destroy_entries(s, [entry_id]) == [entry_id]
    with rt.db.engine.connect() as conn:
        for table in ("chat_sessions", "chat_messages", "entries", "submitters"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert "Elm Street" not in repr(row) and "Ada Lovelace" not in repr(row), table
                assert "It is deep" not in repr(row), table


def test_close_idle_records_the_chats_visitors_left(app: Flask, rt: Runtime,
                                                    tmp_path: Path) -> None:
    from datetime import timedelta

    from click.testing import CliRunner
    from sqlalchemy import update

    from intake.cli import cli
    from intake.db.models import utcnow
    from tests.conftest import TEST_SECRET

    visitor = app.test_client()
    left = start_chat(visitor, "Pothole, then I closed the page.")
    fresh = start_chat(visitor, "Pothole, still typing.")
    with rt.db.session() as s:
        old = chat_id_of(rt, left) - 1  # the first of the two
        s.execute(update(ChatMessage).where(ChatMessage.chat_id == old)
                  .values(at=utcnow() - timedelta(hours=13)))
    env = {"INTAKE_SECRET_KEY": TEST_SECRET, "INTAKE_DATABASE_URL": rt.settings.database_url,
           "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"), "INTAKE_RULES": str(SMALL_RULES),
           "INTAKE_HELP": str(write_help(tmp_path))}
    result = CliRunner().invoke(cli, ["chat", "close-idle", "--hours", "12"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 idle chat(s) ended" in result.output
    with rt.db.session() as s:
        states = dict(s.execute(select(ChatSession.id, ChatSession.state)).all())
        assert states[old] == "ended" and states[old + 1] == "waiting"
        entry = s.scalars(select(Entry).where(Entry.channel == "chat")).one()
        assert "closed the page" in entry.body and entry.fields["chat"]["ended_by"] == "idle"
    assert visitor.get(f"/help/c/{fresh}").status_code == 200
    bad = CliRunner().invoke(cli, ["chat", "close-idle", "--hours", "0"], env=env)
    assert bad.exit_code != 0


def test_nobody_accepting_within_the_wait_offers_the_message(app: Flask, rt: Runtime) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from intake.db.models import utcnow

    visitor = app.test_client(use_cookies=False)
    token = start_chat(visitor, "A pothole, and nobody answers.")
    page = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    # Within the wait: the offer is there for the script to show when the wait is over.
    assert re.search(r'id="unavailable" hidden data-wait-left="\d+"', page)
    with rt.db.session() as s:
        s.execute(update(ChatSession).values(started_at=utcnow() - timedelta(hours=1)))
    page = visitor.get(f"/help/c/{token}").get_data(as_text=True)
    assert '<div class="notice" id="unavailable">' in page
    frame = visitor.get(f"/help/c/{token}/log").get_data(as_text=True)
    assert 'target="_top"' in frame and "#unavailable" in frame


def test_live_help_visits_and_exit_answers_reach_the_statistics(tmp_path: Path,
                                                                db_url: str) -> None:
    """The start page and a started chat are counted like the forms; the exit interview's
    answers are counted on the staff dashboard like any survey's (issue 29 x issue 30)."""
    from intake.db.stats_models import VisitCount
    from intake.web.visits import EXTENSION

    settings = make_settings(tmp_path, db_url, INTAKE_RULES=str(SMALL_RULES),
                             INTAKE_HELP=str(write_help(tmp_path)),
                             INTAKE_HELP_MESSAGE_RATE="1000/minute",
                             INTAKE_FORM_RATE_LIMIT="1000/minute", INTAKE_STATS_MIN_CELL="1")
    runtime = Runtime(settings)
    runtime.rules.load()
    try:
        app = create_app(runtime=runtime)
        app.testing = True
        visitor = app.test_client()
        assert visitor.get("/help", headers=HEADERS).status_code == 200
        assert visitor.post("/help", data={"message": ""}, headers=HEADERS).status_code == 422
        token = start_chat(visitor, "A pothole on Route 9.")
        assert visitor.post(f"/help/c/{token}/end", data={"helped": "partly"},
                            headers=HEADERS).status_code == 303
        app.extensions[EXTENSION].flush()
        with runtime.db.session() as s:
            cells = {(c.route, c.outcome): c.hits for c in s.scalars(select(VisitCount))}
        assert cells[("/help", "view")] == 1
        assert cells[("/help", "invalid")] == 1
        assert cells[("/help", "submission")] == 1

        # The transcript is routed like any entry (the route work a worker would run).
        from intake.db.models import WorkItem

        with runtime.db.session() as s:
            routes = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
        assert routes
        for item_id in routes:
            assert runtime.jobs.perform(item_id, "test") == "done"
        staff = app.test_client()
        login(staff, make_account(runtime, "agent@dot.examplia.gov", "dot"))
        csv_text = staff.get("/staff/dashboard.csv?chart=survey-live-help-exit-helped"
                             ).get_data(as_text=True)
        assert "Partly,1" in csv_text.replace("\r", ""), csv_text
        page = staff.get("/staff/dashboard").get_data(as_text=True)
        assert "Did we answer your question?" in page
    finally:
        runtime.close()
