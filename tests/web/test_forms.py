"""The public forms over HTTP (WSGI test client, real database on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from intake import create_app
from intake.db.models import (
    Attachment,
    ConsentEventRow,
    Entry,
    Event,
    Original,
    PolicyTextRow,
    Submitter,
    WorkItem,
)
from intake.runtime import Runtime
from intake.services.consent import verify_chains
from intake.services.links import new_access_tokens
from intake.services.records import open_attachment, open_original
from tests.conftest import (
    AGENCY_ORIGIN,
    aged_token,
    contact_fields,
    make_settings,
    record_number_in,
    status_path_in,
    write_forms_file,
)

JSON = {"Accept": "application/json"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


def _count(rt: Runtime, model: type) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_contact_form_page_is_complete_and_consent_unticked(client: FlaskClient) -> None:
    page = client.get("/forms/contact")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="en">' in html
    for name in ("_token", "_gotcha", "name", "email", "phone", "postal_address", "topic",
                 "subject", "message", "attachments", "consent"):
        assert f'name="{name}"' in html, name
    consent_input = re.search(r'<input type="checkbox" id="consent"[^>]*>', html)
    assert consent_input and "checked" not in consent_input.group(0)
    assert "becomes a public record" in html
    assert "We use your address only to answer you" in html
    assert page.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert "Set-Cookie" not in page.headers


def test_contact_post_is_committed_with_consent_and_status_link(
        app: Flask, client: FlaskClient, rt: Runtime) -> None:
    page = client.get("/forms/contact").get_data(as_text=True)
    consent_text = re.search(r'<label for="consent">([^<]+)</label>', page).group(1).strip()
    fields = contact_fields(app, consent="share-identity-2026-01-en", phone="860-555-0142")
    response = client.post("/forms/contact", data=fields)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    number = record_number_in(html)
    assert number and number.startswith("EX-")
    status_path = status_path_in(html)
    assert status_path is not None
    assert "Set-Cookie" not in response.headers

    with rt.db.session() as s:
        entry = s.scalar(select(Entry).where(Entry.record_number == number))
        assert entry is not None
        assert (entry.channel, entry.kind, entry.form_slug) == ("web", "contact", "contact")
        assert entry.subject == "Trail closed" and "north trail" in entry.body
        assert entry.fields == {"topic": "parks", "lang": "en"}
        submitter = s.scalar(select(Submitter).where(Submitter.entry_id == entry.id))
        assert (submitter.name, submitter.email, submitter.phone) == \
            ("Ana Ortiz", "ana@example.com", "860-555-0142")
        original = s.scalar(select(Original).where(Original.entry_id == entry.id))
        assert original.content_type.startswith("application/x-www-form-urlencoded")
        raw = open_original(s, entry.id, rt.originals_key)
        assert b"name=Ana+Ortiz" in raw
        consent = s.scalar(select(ConsentEventRow).where(ConsentEventRow.entry_id == entry.id))
        assert (consent.action, consent.purpose, consent.recipient_class, consent.method) == \
            ("grant", "share-identity", "agency", "web-checkbox")
        assert consent.evidence_sha256 == hashlib.sha256(raw).hexdigest()
        policy = s.scalar(select(PolicyTextRow).where(
            PolicyTextRow.version == consent.policy_version))
        # The text recorded is exactly the text that was beside the checkbox.
        assert policy.text == consent_text
        assert s.scalar(select(WorkItem.kind).where(WorkItem.entry_id == entry.id)) == "route"

    status = client.get(status_path)
    assert status.status_code == 200 and number in status.get_data(as_text=True)


def test_no_consent_ticked_records_no_consent(app: Flask, client: FlaskClient,
                                              rt: Runtime) -> None:
    response = client.post("/forms/contact", data=contact_fields(app))
    assert record_number_in(response.get_data(as_text=True))
    assert _count(rt, ConsentEventRow) == 0


def test_json_answers_201_with_record_number_or_422_with_field_errors(
        app: Flask, client: FlaskClient, rt: Runtime) -> None:
    described = client.get("/forms/contact", headers=JSON).get_json()
    assert described["consent"]["value"] == "share-identity-2026-01-en"
    assert {f["name"] for f in described["fields"]} >= {"name", "email", "subject", "message"}

    bad = client.post("/forms/contact", headers=JSON, json=contact_fields(
        app, email="not-an-address", subject="two\r\nlines", name=""))
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) == {"email", "subject", "name"}
    assert _count(rt, Entry) == 0

    good = client.post("/forms/contact", headers=JSON, json=contact_fields(app))
    assert good.status_code == 201
    body = good.get_json()
    assert re.fullmatch(r"EX-\d{4}-\d{6}", body["record_number"])
    assert "/status/" in body["status_url"]
    assert _count(rt, Entry) == 1


def test_html_validation_errors_are_summarised_and_linked(app: Flask,
                                                          client: FlaskClient) -> None:
    response = client.post("/forms/contact", data=contact_fields(app, email="nope", topic=""))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "<title>Error:" in html
    assert 'href="#email"' in html and 'href="#topic"' in html
    assert 'aria-describedby="email-hint email-error"' in html
    assert 'value="Ana Ortiz"' in html  # what the person typed is kept


def test_sensitive_data_warns_then_stores_when_confirmed(app: Flask, client: FlaskClient,
                                                         rt: Runtime) -> None:
    fields = contact_fields(app, message="My SSN is 123-45-6789, please check my refund.")
    warned = client.post("/forms/contact", data=fields)
    html = warned.get_data(as_text=True)
    assert 'id="sensitive-warning"' in html and "a Social Security number" in html
    assert 'name="_confirm_sensitive"' in html
    assert _count(rt, Entry) == 0

    as_json = client.post("/forms/contact", headers=JSON, json=fields)
    assert as_json.status_code == 422 and as_json.get_json()["kinds"] == ["ssn"]

    removed = client.post("/forms/contact", data={**fields, "_token": aged_token(app, "contact"),
                                                  "message": "Please check my refund."})
    assert record_number_in(removed.get_data(as_text=True))
    confirmed = client.post("/forms/contact", data={**fields, "_confirm_sensitive": "1"})
    assert record_number_in(confirmed.get_data(as_text=True))
    assert _count(rt, Entry) == 2


def test_token_problems_are_clear_4xx_and_keep_the_answers(app: Flask, client: FlaskClient,
                                                           rt: Runtime) -> None:
    missing = client.post("/forms/contact", data=contact_fields(app, _token=None))
    assert missing.status_code == 400
    html = missing.get_data(as_text=True)
    assert "send the form again" in html and 'value="Ana Ortiz"' in html
    expired = client.post("/forms/contact", data=contact_fields(
        app, _token=aged_token(app, "contact", age=3 * 86400)))
    assert expired.status_code == 400
    too_fast = client.post("/forms/contact", data=contact_fields(
        app, _token=aged_token(app, "contact", age=0)))
    assert too_fast.status_code == 400
    other_form = client.post("/forms/contact", headers=JSON, json=contact_fields(
        app, _token=aged_token(app, "feedback")))
    assert other_form.status_code == 400 and other_form.get_json()["reason"] == "bad-signature"
    assert other_form.get_json()["token"]
    assert _count(rt, Entry) == 0


def test_bad_input_answers_4xx(app: Flask, client: FlaskClient, rt: Runtime) -> None:
    assert client.get("/forms/no-such-form").status_code == 404
    assert client.post("/forms/no-such-form", data={}).status_code == 404
    assert client.get("/embed/no-such-form").status_code == 404
    assert client.post("/forms/contact", data=b"hello",
                       content_type="text/plain").status_code == 415
    invalid_utf8 = client.post("/forms/contact", data=b"name=\xff\xfe&email=a%40b.example",
                               content_type="application/x-www-form-urlencoded")
    assert invalid_utf8.status_code == 400
    assert client.post("/forms/contact", data=b"[1, 2]", content_type="application/json",
                       headers=JSON).status_code == 400
    assert client.post("/forms/contact", data=b"{nope", content_type="application/json",
                       headers=JSON).status_code == 400
    huge = client.post("/forms/feedback", data={"comment": "x" * 300_000})
    assert huge.status_code == 413
    crlf = client.post("/forms/contact", data=contact_fields(app, name="Ana\r\nBcc: x@y.example"))
    assert crlf.status_code == 422
    assert _count(rt, Entry) == 0


def test_script_is_stored_as_sent_and_rendered_inert(app: Flask, client: FlaskClient,
                                                     rt: Runtime) -> None:
    script = "<script>alert('x')</script>"
    shown = client.post("/forms/contact", data=contact_fields(app, subject=script, email="bad"))
    assert script not in shown.get_data(as_text=True)
    assert "&lt;script&gt;" in shown.get_data(as_text=True)
    done = client.post("/forms/contact", data=contact_fields(app, subject=script))
    status_page = client.get(status_path_in(done.get_data(as_text=True))).get_data(as_text=True)
    assert script not in status_page and "&lt;script&gt;" in status_page
    with rt.db.session() as s:
        assert s.scalar(select(Entry.subject)) == script


def test_honeypot_gets_a_fake_success_and_nothing_is_stored(app: Flask, client: FlaskClient,
                                                           rt: Runtime) -> None:
    response = client.post("/forms/contact", data=contact_fields(app, _gotcha="http://spam"))
    assert response.status_code == 200
    assert "we have received your message" in response.get_data(as_text=True)
    assert record_number_in(response.get_data(as_text=True)) is None
    assert client.post("/forms/contact", headers=JSON, json=contact_fields(
        app, _gotcha="x")).status_code == 201
    assert _count(rt, Entry) == 0


def test_same_page_sent_twice_is_one_entry(app: Flask, client: FlaskClient,
                                           rt: Runtime) -> None:
    fields = contact_fields(app, consent="share-identity-2026-01-en")
    first = record_number_in(client.post("/forms/contact", data=fields).get_data(as_text=True))
    again = record_number_in(client.post("/forms/contact", data=fields).get_data(as_text=True))
    assert first == again
    assert _count(rt, Entry) == 1 and _count(rt, ConsentEventRow) == 1


def test_embed_frame_ancestors_cors_and_next(app: Flask, client: FlaskClient,
                                            rt: Runtime) -> None:
    embed = client.get("/embed/contact")
    assert embed.status_code == 200
    assert len(embed.headers.getlist("Content-Security-Policy")) == 1  # the page's own only
    csp = embed.headers["Content-Security-Policy"]
    assert f"frame-ancestors {AGENCY_ORIGIN}" in csp and "'none'" not in csp.split(
        "frame-ancestors")[1]
    assert 'name="_embed" value="1"' in embed.get_data(as_text=True)

    # Cross-origin plain HTML post from the agency, with _next back to the agency.
    fields = contact_fields(app, _next=f"{AGENCY_ORIGIN}/thanks?from=form")
    moved = client.post("/forms/contact", data=fields, headers={"Origin": AGENCY_ORIGIN})
    assert moved.status_code == 303
    assert moved.headers["Location"].startswith(f"{AGENCY_ORIGIN}/thanks?from=form&record=EX-")

    # An open redirect is refused: the person sees our own confirmation instead.
    evil = client.post("/forms/contact", headers={"Origin": AGENCY_ORIGIN}, data=contact_fields(
        app, _next="https://evil.example/", subject="Second"))
    assert evil.status_code == 200 and record_number_in(evil.get_data(as_text=True))

    refused = client.post("/forms/contact", data=contact_fields(app, subject="Third"),
                          headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403

    preflight = client.options("/forms/contact", headers={
        "Origin": AGENCY_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == AGENCY_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    cors = client.post("/forms/contact", json=contact_fields(app, subject="Fourth"),
                       headers={**JSON, "Origin": AGENCY_ORIGIN})
    assert cors.status_code == 201
    assert cors.headers["Access-Control-Allow-Origin"] == AGENCY_ORIGIN
    other = client.options("/forms/contact", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert _count(rt, Entry) == 3

    # A post from inside the iframe is answered inside the iframe too.
    framed = client.post("/forms/contact", data=contact_fields(app, _embed="1", subject="Fifth"))
    assert f"frame-ancestors {AGENCY_ORIGIN}" in framed.headers["Content-Security-Policy"]
    assert 'target="_blank"' in framed.get_data(as_text=True)


def test_attachments_checked_by_content_capped_and_hashed(app: Flask, client: FlaskClient,
                                                         rt: Runtime) -> None:
    from io import BytesIO

    def post(files: list[tuple[bytes, str]], **extra: str) -> object:
        data: dict[str, object] = dict(contact_fields(app, **extra))
        data["attachments"] = [(BytesIO(content), name) for content, name in files]
        return client.post("/forms/contact", data=data, content_type="multipart/form-data")

    ok = post([(PDF, "../../etc/report.pdf")])
    assert record_number_in(ok.get_data(as_text=True))
    with rt.db.session() as s:
        stored = s.scalar(select(Attachment))
        assert stored.sniffed_type == "application/pdf"
        assert stored.sha256 == hashlib.sha256(PDF).hexdigest() and stored.content != PDF
        opened = open_attachment(s, stored.entry_id, stored.id, rt.originals_key)
        assert opened is not None and opened.content == PDF
        assert "/" not in stored.filename and ".." not in stored.filename
        assert s.scalar(select(Entry.fields))["_attachments"] == [stored.filename]

    disguised = post([(b"MZ\x90\x00" + b"\x00" * 200, "invoice.pdf")], subject="Exe")
    assert disguised.status_code == 422
    assert "not a file type we accept" in disguised.get_data(as_text=True)
    too_big = post([(PDF + b"0" * 200_001, "big.pdf")], subject="Big")
    assert too_big.status_code == 413
    too_many = post([(PDF, "a.pdf"), (PDF, "b.pdf"), (PDF, "c.pdf")], subject="Many")
    assert too_many.status_code == 422
    assert _count(rt, Entry) == 1 and _count(rt, Attachment) == 1


def test_feedback_and_survey_store_structured_answers(app: Flask, client: FlaskClient,
                                                      rt: Runtime) -> None:
    page = client.get("/forms/feedback?about=/parks/lake-park").get_data(as_text=True)
    assert 'value="/parks/lake-park"' in page and "<fieldset" in page and "<legend>" in page
    feedback = client.post("/forms/feedback", data={
        "_token": aged_token(app, "feedback"), "rating": "4", "about": "/parks/lake-park",
        "comment": "Clear page."})
    assert record_number_in(feedback.get_data(as_text=True))
    no_rating = client.post("/forms/feedback", headers=JSON, json={
        "_token": aged_token(app, "feedback"), "comment": "?"})
    assert no_rating.status_code == 422 and "rating" in no_rating.get_json()["errors"]

    survey_page = client.get("/forms/survey").get_data(as_text=True)
    assert survey_page.count("<fieldset") == 4  # single, multiple, two scales
    survey = client.post("/forms/survey", data={
        "_token": aged_token(app, "survey"), "service": "state-parks",
        "channels": ["website", "phone"], "satisfaction": "5", "improve": "Longer hours"})
    assert record_number_in(survey.get_data(as_text=True))
    missing = client.post("/forms/survey", headers=JSON, json={
        "_token": aged_token(app, "survey"), "satisfaction": "9"})
    assert missing.status_code == 422
    assert set(missing.get_json()["errors"]) == {"service", "satisfaction"}
    with rt.db.session() as s:
        rows = {e.kind: e for e in s.scalars(select(Entry))}
        assert rows["feedback"].fields == {"rating": 4, "about": "/parks/lake-park",
                                           "lang": "en"}
        assert rows["survey"].fields == {
            "survey": "service-satisfaction", "lang": "en",
            "answers": {"service": "state-parks", "channels": ["website", "phone"],
                        "satisfaction": 5, "ease": None, "improve": "Longer hours"}}
    assert _count(rt, Submitter) == 0  # anonymous forms keep no personal data


def test_spanish_by_accept_language_and_switch(app: Flask, client: FlaskClient,
                                               rt: Runtime) -> None:
    by_header = client.get("/forms/contact", headers={"Accept-Language": "es-MX,es;q=0.9"})
    html = by_header.get_data(as_text=True)
    assert '<html lang="es">' in html and "Su nombre" in html
    assert 'href="/forms/contact?lang=en"' in html  # the switch back, without cookies
    by_switch = client.get("/forms/contact?lang=es").get_data(as_text=True)
    assert 'name="lang" value="es"' in by_switch and "Acepto que mi nombre" in by_switch
    assert "Vary" in by_header.headers and "Accept-Language" in by_header.headers["Vary"]

    fields = contact_fields(app, lang="es", consent="share-identity-2026-01-es", email="x")
    error = client.post("/forms/contact", data=fields).get_data(as_text=True)
    assert "Hay un problema" in error and "nombre@ejemplo.com" in error
    done = client.post("/forms/contact", data={**fields, "email": "ana@example.com"})
    assert "Su número de registro es" in done.get_data(as_text=True)
    with rt.db.session() as s:
        assert s.scalar(select(ConsentEventRow.policy_version)) == "share-identity-2026-01-es"
        assert s.scalar(select(Event.kind).where(Event.kind == "consent-grant"))
    # The status page speaks the language the person wrote in, whatever the browser asks.
    status = client.get(status_path_in(done.get_data(as_text=True)),
                        headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="es">' in status and "Saltar al contenido principal" in status


def test_csrf_stays_on_outside_the_public_pages(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    @app.post("/__csrf_probe")
    def probe() -> str:
        return "reached"

    @app.errorhandler(CSRFError)
    def refused(error: CSRFError) -> tuple[str, int]:
        return "csrf refused", 400

    response = app.test_client().post("/__csrf_probe", data={"x": "1"})
    assert response.status_code == 400 and response.get_data(as_text=True) == "csrf refused"


def test_rate_limit_answers_429_without_storing_the_address(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_FORM_RATE_LIMIT="3/minute")
    runtime = Runtime(settings)
    runtime.rules.load()
    try:
        app = create_app(runtime=runtime)
        client = app.test_client()
        addr = {"REMOTE_ADDR": "192.0.2.77"}
        codes = [client.post("/forms/feedback", environ_base=addr, data={
            "_token": aged_token(app, "feedback"), "rating": "3", "comment": f"n{i}"}).status_code
            for i in range(4)]
        assert codes == [200, 200, 200, 429]
        # Another address is not affected; GET pages are never limited.
        assert client.get("/forms/feedback", environ_base=addr).status_code == 200
        assert client.post("/forms/feedback", environ_base={"REMOTE_ADDR": "192.0.2.78"}, data={
            "_token": aged_token(app, "feedback"), "rating": "3"}).status_code == 200
        with runtime.db.session() as s:
            raws = b"".join(open_original(s, entry_id, runtime.originals_key)
                            for entry_id in s.scalars(select(Original.entry_id)))
            dumped = json.dumps([e.fields for e in s.scalars(select(Entry))])
        assert b"192.0.2.77" not in raws and "192.0.2.77" not in dumped
    finally:
        runtime.close()


def test_logs_carry_no_submitted_data(app: Flask, client: FlaskClient,
                                      caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    fields = contact_fields(app, email="secret.person@example.com",
                            message="My SSN is 123-45-6789", _confirm_sensitive="1")
    assert record_number_in(client.post("/forms/contact", data=fields).get_data(as_text=True))
    client.post("/forms/contact", data={**fields, "_token": ""})
    client.post("/forms/contact", data={**fields, "_gotcha": "spam"})
    logged = caplog.text
    assert "form contact: entry" in logged  # the logs do say what happened...
    for secret in ("secret.person", "123-45-6789", "Ana Ortiz", "Trail closed"):
        assert secret not in logged  # ...never with what was sent


def test_concurrent_posts_each_get_their_own_record_number(app: Flask, rt: Runtime) -> None:
    """Sixteen people send at once (their writes may share one commit): each confirmation
    names the entry holding that person's own message, with consent and attachment."""
    import threading

    pages: dict[str, str] = {}
    lock = threading.Lock()
    start = threading.Barrier(16)

    def send(n: int) -> None:
        client = app.test_client()
        fields = contact_fields(app, subject=f"Person {n} writes", name=f"Person {n}")
        if n % 4 == 0:
            fields["consent"] = "share-identity-2026-01-en"
        data: dict[str, object] = dict(fields)
        if n % 5 == 0:
            import io
            data["attachments"] = (io.BytesIO(PDF + str(n).encode()), f"scan-{n}.pdf")
        start.wait()
        response = client.post("/forms/contact", data=data)
        with lock:
            pages[f"Person {n} writes"] = response.get_data(as_text=True)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    numbers = {subject: record_number_in(html) for subject, html in pages.items()}
    assert len(numbers) == 16 and None not in numbers.values()
    # Each page's private status link opens that person's own entry.
    links = {subject: status_path_in(html) for subject, html in pages.items()}
    assert len(set(links.values())) == 16
    for subject in ("Person 0 writes", "Person 7 writes", "Person 15 writes"):
        status_page = app.test_client().get(links[subject]).get_data(as_text=True)
        assert numbers[subject] in status_page
        others = set(numbers.values()) - {numbers[subject]}
        assert not any(number in status_page for number in others)
    with rt.db.session() as s:
        stored = dict(s.execute(select(Entry.subject, Entry.record_number)).all())
        assert stored == numbers
        assert s.scalar(select(func.count()).select_from(ConsentEventRow)) == 4
        assert s.scalar(select(func.count()).select_from(Attachment)) == 4
        names = dict(s.execute(select(Entry.subject, Submitter.name)
                               .join(Submitter, Submitter.entry_id == Entry.id)).all())
        # The consent ledger's hash chain stays whole when consents share a commit.
        assert all(report.verdict.ok for report in verify_chains(s))
    assert names == {f"Person {n} writes": f"Person {n}" for n in range(16)}


def test_status_links_are_on_the_public_url_whatever_the_host_and_mount_point(
        app: Flask) -> None:
    from intake.web.forms import _status_url

    token = new_access_tokens(1)[0]
    public = app.extensions["intake"].settings.public_url
    for base in ["http://localhost/", "https://agency.example.gov/intake/",
                 "https://evil.example.org:8443/"]:
        with app.test_request_context("/forms/contact", base_url=base):
            assert _status_url(token) == f"{public}/status/{token}"
            assert _status_url("not url-safe/+=") == f"{public}/status/not%20url-safe%2F%2B%3D"
