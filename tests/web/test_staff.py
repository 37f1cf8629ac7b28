"""The staff inbox over HTTP (Flask test client) against real databases.

The session cookie keeps its ``Secure`` flag: Werkzeug's test client sends
secure cookies to ``http://localhost`` like browsers do for localhost, so
nothing is relaxed for these tests.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from intake import create_app
from intake.db.models import Disclosure, Entry, Event, RoutingDecision, ThreadMessage, WorkItem
from intake.db.staff_models import AccessLogEntry, StaffAccount, StaffSession
from intake.runtime import Runtime
from intake.services import inbox
from intake.services.work import enqueue
from intake.web.security import SESSION_COOKIE_NAME
from tests.conftest import (
    csrf,
    csrf_from,
    login,
    make_account,
    make_entry,
)


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def client_for(app: Flask) -> FlaskClient:
    return app.test_client()


# -- login, TOTP, sessions ------------------------------------------------------------------


def test_login_with_totp_rotates_the_session_and_logout_ends_it(
        app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    make_entry(runtime, "dot", subject="Pothole on Elm Street")
    client = client_for(app)

    response = client.get("/staff/inbox")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]

    client.get("/staff/login")
    before = client.get_cookie(SESSION_COOKIE_NAME)
    assert before is not None and before.secure and before.http_only
    login(client, agent)
    after = client.get_cookie(SESSION_COOKIE_NAME)
    assert after is not None and after.value != before.value

    page = client.get("/staff/inbox")
    assert page.status_code == 200
    assert "Pothole on Elm Street" in page.get_data(as_text=True)
    for header, value in (("X-Content-Type-Options", "nosniff"),
                          ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store")):
        assert page.headers[header] == value
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]

    # Logging out ends the server-side session: the old cookie no longer works.
    token = csrf(client)
    stolen = client.get_cookie(SESSION_COOKIE_NAME)
    assert stolen is not None
    assert client.post("/staff/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/staff/inbox").status_code == 302
    replay = client_for(app)
    replay.set_cookie(SESSION_COOKIE_NAME, stolen.value, domain="localhost")
    assert replay.get("/staff/inbox").status_code == 302
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(StaffSession)
                        .where(StaffSession.ended_at.is_(None))) == 0


def test_idle_session_expires(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "idle@dot.examplia.gov", "dot")
    client = client_for(app)
    login(client, agent)
    assert client.get("/staff/inbox").status_code == 200
    with runtime.db.session() as s:
        row = s.scalar(select(StaffSession).where(StaffSession.staff_id == agent.id))
        assert row is not None
        row.last_seen_at = datetime.now(UTC) - timedelta(hours=1)
    assert client.get("/staff/inbox").status_code == 302


def test_totp_code_is_required_and_works_once(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "once@dot.examplia.gov", "dot")
    client = client_for(app)
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    response = client.post("/staff/login", data={"email": agent.email,
                                                  "password": agent.password,
                                                  "csrf_token": token})
    assert response.headers["Location"].endswith("/staff/login/code")
    # The password alone gives no access.
    assert client.get("/staff/inbox").status_code == 302
    code = agent.code()
    login(client_for(app), agent, code=code)
    # The same code a second time is refused.
    other = client_for(app)
    token = csrf_from(other.get("/staff/login").get_data(as_text=True))
    other.post("/staff/login", data={"email": agent.email, "password": agent.password,
                                     "csrf_token": token})
    token = csrf_from(other.get("/staff/login/code").get_data(as_text=True))
    refused = other.post("/staff/login/code", data={"code": code, "csrf_token": token})
    assert refused.status_code == 401
    assert other.get("/staff/inbox").status_code == 302


def test_unknown_and_wrong_answers_look_the_same(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "same@dot.examplia.gov", "dot")
    client = client_for(app)
    answers = []
    for email in ("nobody@dot.examplia.gov", agent.email):
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
        answers.append(client.post("/staff/login", data={"email": email, "password": "nope",
                                                         "csrf_token": token}))
    assert [a.status_code for a in answers] == [401, 401]
    bodies = [a.get_data(as_text=True) for a in answers]
    assert bodies[0].replace(csrf_from(bodies[0]), "") == bodies[1].replace(
        csrf_from(bodies[1]), "")


# -- CSRF -------------------------------------------------------------------------------------


def test_posts_without_a_csrf_token_are_refused(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "csrf@dot.examplia.gov", "dot")
    entry_id = make_entry(runtime, "dot")
    client = client_for(app)
    # Even the login form needs the token.
    assert client.post("/staff/login", data={"email": agent.email,
                                             "password": agent.password}).status_code == 400
    login(client, agent)
    url = f"/staff/entries/{entry_id}/status"
    assert client.post(url, data={"status": "closed"}).status_code == 400
    assert client.post(url, data={"status": "closed", "csrf_token": "forged"}).status_code == 400
    token = csrf(client)
    cross = client.post(url, data={"status": "closed", "csrf_token": token},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.post("/staff/logout").status_code == 400
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None and entry.status == "new"
    ok = client.post(url, data={"status": "closed", "csrf_token": token})
    assert ok.status_code == 303
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None and entry.status == "closed"


# -- isolation ----------------------------------------------------------------------------------


def _dead_item(runtime: Runtime, entry_id: int) -> int:
    with runtime.db.session() as s:
        item = s.get(WorkItem, enqueue(s, "deliver", dedupe_key=f"test-dead:{entry_id}",
                                       entry_id=entry_id))
        assert item is not None
        item.state = "dead"
        item.last_error = "PermanentError: refused"
        return item.id


def test_every_staff_route_hides_another_agencys_entry(app: Flask, runtime: Runtime) -> None:
    secret_subject = "Secret DOT matter"
    entry_id = make_entry(runtime, "dot", subject=secret_subject, name="Grace Hopper",
                          attachment=("plan.txt", b"hello"))
    with runtime.db.session() as s:
        attachment_id = s.scalar(text("SELECT id FROM attachments WHERE entry_id = :e"),
                                 {"e": entry_id})
    dead_id = _dead_item(runtime, entry_id)
    # An agency administrator of another agency: the most a neighbour can be.
    outsider = make_account(runtime, "admin@parks.examplia.gov", "parks", role="agency_admin")
    client = client_for(app)
    login(client, outsider)
    token = csrf(client)
    dot_agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    values = {"entry_id": entry_id, "attachment_id": attachment_id, "item_id": dead_id,
              "quarantine_id": 1, "account_id": dot_agent.id, "action": "disable",
              "log_id": 1, "hold_id": 1, "chat_id": 1}
    form = {"csrf_token": token, "status": "closed", "staff_id": "me", "tags": "x",
            "body": "hello", "agency": "parks", "reason": "mine now", "keep_copy": "1"}

    walked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff."):
            continue
        if not rule.arguments:
            continue
        url = app.url_map.bind("localhost").build(
            rule.endpoint, {k: values[k] for k in rule.arguments})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data=form if method == "POST" else None)
            assert response.status_code in (403, 404), (rule.endpoint, method,
                                                        response.status_code)
            body = response.get_data(as_text=True)
            assert secret_subject not in body and "Grace Hopper" not in body
            walked += 1
    assert walked >= 12
    # Routes without an entry in the URL don't show it either.
    for url in ("/staff/inbox", "/staff/inbox?q=Secret", "/staff/admin", "/staff/"):
        body = client.get(url, follow_redirects=True).get_data(as_text=True)
        assert secret_subject not in body
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None and entry.status == "new" and entry.agency_id == "dot"
        assert s.get(WorkItem, dead_id).state == "dead"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(AccessLogEntry)) == 0


def test_agents_cannot_open_admin_views(app: Flask, runtime: Runtime) -> None:
    agent = make_account(runtime, "agent2@dot.examplia.gov", "dot")
    entry_id = make_entry(runtime, "dot")
    dead_id = _dead_item(runtime, entry_id)
    client = client_for(app)
    login(client, agent)
    assert client.get("/staff/admin").status_code == 403
    response = client.post(f"/staff/admin/dead-letters/{dead_id}/retry",
                           data={"csrf_token": csrf(client)})
    assert response.status_code == 403


def test_a_cc_agency_may_read_but_not_act(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot", cc=("parks",), subject="Trail and road")
    reader = make_account(runtime, "reader@parks.examplia.gov", "parks")
    client = client_for(app)
    login(client, reader)
    page = client.get(f"/staff/entries/{entry_id}")
    assert page.status_code == 200 and "Trail and road" in page.get_data(as_text=True)
    response = client.post(f"/staff/entries/{entry_id}/status",
                           data={"status": "closed", "csrf_token": csrf(client)})
    assert response.status_code == 403


# -- the entry view and the access log ------------------------------------------------------


def test_viewing_personal_information_is_logged(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot", attachment=("photo.txt", b"content"),
                          body="Call (217) 555-0143. My SSN is 123-45-6789.")
    agent = make_account(runtime, "viewer@dot.examplia.gov", "dot")
    officer = make_account(runtime, "records@dot.examplia.gov", "dot", role="records_officer")
    client = client_for(app)
    login(client, agent)
    page = client.get(f"/staff/entries/{entry_id}")
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    # The agency's rendition: no consent, so no address, name or phone (P5); no SSN (P6).
    assert "ada@example.org" not in shown and "Ada Lovelace" not in shown
    assert "Member of the public" in shown and "(217) 555-0143" not in shown
    assert "123-45-6789" not in shown and "6789" not in shown
    assert "[redacted: Social Security number]" in shown
    assert "Viewed (entry)" not in shown  # agents don't see the access log
    with runtime.db.session() as s:
        attachment_id = s.scalar(text("SELECT id FROM attachments WHERE entry_id = :e"),
                                 {"e": entry_id})
    download = client.get(f"/staff/entries/{entry_id}/attachments/{attachment_id}")
    assert download.status_code == 200 and download.data == b"content"
    with runtime.db.session() as s:
        rows = s.execute(select(AccessLogEntry.staff_id, AccessLogEntry.entry_id,
                                AccessLogEntry.what).order_by(AccessLogEntry.id)).all()
    assert [tuple(r) for r in rows] == [(agent.id, entry_id, "entry"),
                                        (agent.id, entry_id, "attachment")]

    records = client_for(app)
    login(records, officer)
    timeline = records.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert "Viewed (entry)" in timeline and agent.email in timeline

    # The access log is evidence: the database refuses to change it.
    with pytest.raises(Exception, match="append-only"), runtime.db.session() as s:
        s.execute(text("UPDATE access_log SET what = 'x'"))


XSS = {
    "subject": "<script>alert('subject')</script>",
    "body": "<img src=x onerror=alert('body')> and </textarea><script>alert(2)</script>",
    "name": '"><svg onload=alert("name")>',
    "filename": "<img src=x onerror=alert('file')>.html",
}


def test_xss_payloads_render_inert(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot", subject=XSS["subject"], body=XSS["body"],
                          name=XSS["name"], attachment=(XSS["filename"], b"<script>x</script>"))
    agent = make_account(runtime, "xss@dot.examplia.gov", "dot")
    client = client_for(app)
    login(client, agent)
    with runtime.db.session() as s:
        inbox.add_note(s, s.get(StaffAccount, agent.id), s.get(Entry, entry_id),  # type: ignore[arg-type]
                       "<script>alert('note')</script>")
    for url in ("/staff/inbox", f"/staff/entries/{entry_id}", "/staff/inbox?q=script"):
        page = client.get(url).get_data(as_text=True)
        for payload in XSS.values():
            assert payload not in page
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "<svg" not in page
    entry_page = client.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert html.escape(XSS["subject"]) in entry_page or "&lt;script&gt;" in entry_page
    with runtime.db.session() as s:
        attachment_id = s.scalar(text("SELECT id FROM attachments WHERE entry_id = :e"),
                                 {"e": entry_id})
    download = client.get(f"/staff/entries/{entry_id}/attachments/{attachment_id}")
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "<" not in download.headers["Content-Disposition"]
    assert download.headers["Content-Security-Policy"].startswith("sandbox")
    assert download.headers["X-Content-Type-Options"] == "nosniff"


# -- the inbox: keyset pages, counts, unread, filters, search -------------------------------


def test_inbox_pages_counts_unread_filters_and_search(app: Flask, runtime: Runtime) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ids = [make_entry(runtime, "dot", subject=f"Report number {i}",
                      body=f"Body {i} " + ("streetlight broken" if i % 3 == 0 else "pothole"),
                      received_at=start + timedelta(hours=i), key=f"k{i}") for i in range(8)]
    make_entry(runtime, "parks", subject="Trail closed", key="parks-1")
    agent = make_account(runtime, "pages@dot.examplia.gov", "dot")
    with runtime.db.session() as s:
        user = s.get(StaffAccount, agent.id)
        assert user is not None
        seen: list[int] = []
        cursor = None
        while True:
            page = inbox.inbox_page(s, user, inbox.InboxFilter(), cursor=cursor, limit=3,
                                    relay_domain=runtime.settings.relay_domain)
            seen.extend(r.id for r in page.rows)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == list(reversed(ids))  # newest first, every entry once, no other agency
        inbox.set_status(s, user, s.get(Entry, ids[0]), "closed")  # type: ignore[arg-type]

    client = client_for(app)
    login(client, agent)
    page = client.get("/staff/inbox").get_data(as_text=True)
    assert page.count('class="badge">Unread') == 8
    assert "Trail closed" not in page
    assert 'Closed <span class="count">1</span>' in page
    assert 'New <span class="count">7</span>' in page

    client.get(f"/staff/entries/{ids[3]}")
    page = client.get("/staff/inbox").get_data(as_text=True)
    assert page.count('class="badge">Unread') == 7

    found = client.get("/staff/inbox?q=streetlight").get_data(as_text=True)
    assert {f"Report number {i}" for i in (0, 3, 6)} == {
        f"Report number {i}" for i in range(8) if f"Report number {i}<" in found}
    assert "Report number 1<" not in client.get("/staff/inbox?q=streetlight+broken").get_data(
        as_text=True)
    # Search input is data, never syntax.
    for query in ('"', "NEAR(", "a OR", "*", "-x", "body:x", "'; DROP TABLE entries; --"):
        assert client.get("/staff/inbox", query_string={"q": query}).status_code == 200

    closed = client.get("/staff/inbox?status=closed").get_data(as_text=True)
    assert "Report number 0<" in closed and "Report number 1<" not in closed
    dated = client.get("/staff/inbox?from=2026-03-01&to=2026-03-01").get_data(as_text=True)
    assert dated.count('class="record-number"') == 8
    none = client.get("/staff/inbox?from=2026-03-02").get_data(as_text=True)
    assert "No entries match." in none


# -- actions ------------------------------------------------------------------------------------


def _post(client: FlaskClient, url: str, **data: str) -> int:
    return client.post(url, data={"csrf_token": csrf(client), **data}).status_code


def test_assign_status_tags_and_notes(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot")
    agent = make_account(runtime, "actor@dot.examplia.gov", "dot")
    colleague = make_account(runtime, "colleague@dot.examplia.gov", "dot")
    stranger = make_account(runtime, "stranger@parks.examplia.gov", "parks")
    client = client_for(app)
    login(client, agent)
    base = f"/staff/entries/{entry_id}"
    assert _post(client, f"{base}/assign", staff_id=str(colleague.id)) == 303
    assert _post(client, f"{base}/assign", staff_id=str(stranger.id)) == 303  # refused, shown
    assert _post(client, f"{base}/status", status="open") == 303
    assert _post(client, f"{base}/status", status="bogus") == 303
    assert _post(client, f"{base}/tags", tags="Road, urgent ,road") == 303
    assert _post(client, f"{base}/note", body="Called the district office.") == 303
    page = client.get(base).get_data(as_text=True)
    assert "That person cannot be assigned" not in page  # flashes shown once, earlier
    assert "Called the district office." in page
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None
        assert entry.status == "open" and entry.tags == ["road", "urgent"]
        assignee = inbox.assignment_of(s, entry_id)
        assert assignee is not None and assignee.id == colleague.id
        kinds = [e.kind for e in s.scalars(select(Event).where(Event.entry_id == entry_id))]
        assert {"assigned", "status-changed", "tags-changed", "note-added"} <= set(kinds)
        note = s.scalar(select(ThreadMessage).where(ThreadMessage.direction == "note"))
        assert note is not None and note.author_id == str(agent.id)
    mine = client.get(f"/staff/inbox?assignee={colleague.id}").get_data(as_text=True)
    assert "colleague@dot.examplia.gov" in mine and "No entries match." not in mine
    assert "No entries match." in client.get("/staff/inbox?assignee=none").get_data(
        as_text=True)
    assert "No entries match." not in client.get("/staff/inbox?tag=urgent").get_data(
        as_text=True)
    assert "No entries match." in client.get("/staff/inbox?tag=other").get_data(as_text=True)


def test_reply_goes_through_the_gate(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot")
    agent = make_account(runtime, "reply@dot.examplia.gov", "dot")
    client = client_for(app)
    login(client, agent)
    assert _post(client, f"/staff/entries/{entry_id}/reply",
                 body="We will fix it this week.") == 303
    with runtime.db.session() as s:
        message = s.scalar(select(ThreadMessage).where(ThreadMessage.direction == "out"))
        assert message is not None and message.author_kind == "staff"
        assert message.body == "We will fix it this week."
        ledger = s.scalar(select(Disclosure).where(Disclosure.nature == "reply"))
        assert ledger is not None and ledger.allowed and ledger.purpose == "respond"
        assert ledger.recipient_kind == "submitter"
        assert ledger.recipient_address == "ada@example.org"
        item = s.get(WorkItem, ledger.work_item_id)
        assert item is not None and item.kind == "reply"
        assert item.payload["thread_message_id"] == message.id
        entry = s.get(Entry, entry_id)
        assert entry is not None and entry.status == "waiting"


def test_reroute_moves_the_entry_and_delivers_through_the_gate(
        app: Flask, runtime: Runtime) -> None:
    moved = make_entry(runtime, "dot", subject="Really about a park", key="m1")
    kept = make_entry(runtime, "dot", subject="Shared with parks", key="m2")
    agent = make_account(runtime, "router@dot.examplia.gov", "dot")
    parks = make_account(runtime, "ranger@parks.examplia.gov", "parks")
    client = client_for(app)
    login(client, agent)
    response = client.post(f"/staff/entries/{moved}/reroute",
                           data={"csrf_token": csrf(client), "agency": "parks",
                                 "reason": "It is about a trail."})
    assert response.status_code == 303 and response.headers["Location"].endswith("/staff/inbox")
    assert client.get(f"/staff/entries/{moved}").status_code == 404
    assert _post(client, f"/staff/entries/{kept}/reroute", agency="parks",
                 reason="Both of us.", keep_copy="1") == 303
    assert client.get(f"/staff/entries/{kept}").status_code == 200
    assert _post(client, f"/staff/entries/{kept}/status", status="closed") == 403
    with runtime.db.session() as s:
        entry = s.get(Entry, moved)
        assert entry is not None and entry.agency_id == "parks" and entry.status == "new"
        decision = inbox.latest_decision(s, moved)
        assert decision is not None and decision.route_to == "parks" and decision.cc == []
        assert s.scalar(select(func.count()).select_from(RoutingDecision)
                        .where(RoutingDecision.entry_id == moved)) == 2
        event = s.scalar(select(Event).where(Event.entry_id == moved,
                                             Event.kind == "rerouted"))
        assert event is not None and event.detail["previous_agency"] == "dot"
        ledger = s.scalar(select(Disclosure).where(Disclosure.entry_id == moved,
                                                   Disclosure.nature == "reroute"))
        assert ledger is not None and ledger.allowed and ledger.recipient_id == "parks"
        assert ledger.purpose == "redirect"
        item = s.get(WorkItem, ledger.work_item_id)
        assert item is not None and item.kind == "deliver"
        note = s.scalar(select(ThreadMessage).where(ThreadMessage.entry_id == moved))
        assert note is not None and "It is about a trail." in note.body
    other = client_for(app)
    login(other, parks)
    assert "Really about a park" in other.get("/staff/inbox").get_data(as_text=True)


def test_admins_see_and_retry_their_dead_letters(app: Flask, runtime: Runtime) -> None:
    entry_id = make_entry(runtime, "dot")
    dead_id = _dead_item(runtime, entry_id)
    admin = make_account(runtime, "admin@dot.examplia.gov", "dot", role="agency_admin")
    client = client_for(app)
    login(client, admin)
    page = client.get("/staff/admin").get_data(as_text=True)
    assert "PermanentError: refused" in page and "Routing rules file" in page
    response = client.post(f"/staff/admin/dead-letters/{dead_id}/retry",
                           data={"csrf_token": csrf(client, "/staff/admin")})
    assert response.status_code == 303
    with runtime.db.session() as s:
        item = s.get(WorkItem, dead_id)
        assert item is not None and item.state == "pending"


def test_staff_add_command(sqlite_url: str, tmp_path: object) -> None:
    from click.testing import CliRunner

    from intake.cli import cli
    from tests.conftest import SMALL_RULES, TEST_SECRET

    env = {"INTAKE_DATABASE_URL": sqlite_url, "INTAKE_SECRET_KEY": TEST_SECRET,
           "INTAKE_RULES": str(SMALL_RULES), "INTAKE_INSTANCE_PATH": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(cli, ["staff", "add", "--email", "New@dot.examplia.gov",
                                 "--agency", "dot", "--role", "agency_admin"],
                           input="a long enough password\n", env=env)
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/" in result.output and "secret:" in result.output
    again = runner.invoke(cli, ["staff", "add", "--email", "new@dot.examplia.gov",
                                "--agency", "dot"], input="a long enough password\n", env=env)
    assert again.exit_code != 0 and "already exists" in again.output
    assert "Traceback" not in again.output
    bad = runner.invoke(cli, ["staff", "add", "--email", "x@dot.examplia.gov",
                              "--agency", "nowhere"], input="a long enough password\n", env=env)
    assert bad.exit_code != 0 and "unknown agency" in bad.output
    admin_without_totp = runner.invoke(
        cli, ["staff", "add", "--email", "y@dot.examplia.gov", "--agency", "dot",
              "--role", "system_admin", "--no-totp"], input="a long enough password\n", env=env)
    assert admin_without_totp.exit_code != 0 and "second factor" in admin_without_totp.output


def test_an_administrator_without_a_second_factor_cannot_log_in(runtime: Runtime) -> None:
    from intake.services import staff as accounts

    admin = make_account(runtime, "nofactor@dot.examplia.gov", "dot", role="agency_admin")
    with runtime.db.session() as s:
        row = s.get(StaffAccount, admin.id)
        assert row is not None
        row.totp_secret = None
    # Not even with the development setting that lets agents in without one.
    attempt = accounts.Attempt(client="192.0.2.1", secret=b"k" * 32, allow_without_totp=True)
    with runtime.db.session() as s:
        step = accounts.check_password(s, admin.email, admin.password, attempt)
    assert not step.ok and step.reason == "totp-missing"


RAW_MAIL = (b"From: Ada <ada@example.org>\r\nTo: intake@examplia.gov\r\n"
            b"Subject: Streetlight out\r\nMessage-ID: <q1@example.org>\r\n"
            b"Date: Sun, 22 Nov 2026 07:00:00 +0000\r\n\r\nThe streetlight is out.\r\n")


def test_system_admins_retry_and_dismiss_quarantined_messages(
        app: Flask, runtime: Runtime) -> None:
    from intake.db.mail_models import MailboxState, QuarantinedMessage

    with runtime.db.session() as s:
        good = QuarantinedMessage(sha256=hashlib.sha256(RAW_MAIL).hexdigest(), raw=RAW_MAIL,
                                  size=len(RAW_MAIL), error_class="OperationalError",
                                  error_message="", mailbox="inbox", resolved=False, attempts=1)
        junk = QuarantinedMessage(sha256="b" * 64, raw=b"junk", size=4,
                                  error_class="UnstorableMessage", error_message="",
                                  mailbox="inbox", resolved=False, attempts=1)
        s.add_all([good, junk, MailboxState(name="inbox", last_uid=7, messages_stored=3,
                                            messages_quarantined=2)])
        s.flush()
        good_id, junk_id = good.id, junk.id
    agency_admin = make_account(runtime, "aa@dot.examplia.gov", "dot", role="agency_admin")
    system = make_account(runtime, "root@governor.examplia.gov", "governor",
                          role="system_admin")
    client = client_for(app)
    login(client, agency_admin)
    assert "Quarantined messages" not in client.get("/staff/admin").get_data(as_text=True)
    assert _post(client, f"/staff/admin/quarantine/{junk_id}/dismiss") == 403

    client = client_for(app)
    login(client, system)
    page = client.get("/staff/admin").get_data(as_text=True)
    assert "Quarantined messages" in page and "UnstorableMessage" in page
    assert "Mailbox pollers" in page and ">inbox<" in page
    assert "junk" not in page  # the raw bytes are never shown
    assert _post(client, f"/staff/admin/quarantine/{good_id}/retry") == 303
    assert _post(client, f"/staff/admin/quarantine/{junk_id}/dismiss") == 303
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)
                        .where(Entry.subject == "Streetlight out")) == 1
        stored = s.get(QuarantinedMessage, good_id)
        dismissed = s.get(QuarantinedMessage, junk_id)
        assert stored is not None and stored.resolved
        assert dismissed is not None and dismissed.resolved
        assert dismissed.resolved_by == f"staff:{system.id}"
