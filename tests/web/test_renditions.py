"""Renditions over HTTP: what each audience meets of a citizen's contact data.

A non-consenting citizen's e-mail address, phone and postal address (and
name) appear in no staff page (inbox, entry, search) of any audience, in no
forward, webhook or relayed reply; a consenting citizen's name and e-mail
reach exactly the agency the consent names; a records officer sees them only
through an explicit, logged reveal. Real app, real databases, the real SMTP
sink and a webhook receiver on loopback.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.core.routing import Decision
from intake.db.models import Attachment, Disclosure, Entry, Event
from intake.db.staff_models import AccessLogEntry
from intake.runtime import Runtime
from intake.services.consent import ensure_policy_text, record_consent
from intake.services.links import create_access_link
from intake.services.records import (
    NewSubmission,
    SubmitterData,
    record_submissions,
    seal_for_entry,
)
from intake.services.routing import apply_decision
from tests.conftest import (
    CITIZEN,
    DOT,
    POLICY,
    Account,
    SmtpSink,
    _Receiver,
    _thread_message,
    csrf,
    login,
    make_account,
    make_runtime,
    wait_for,
)

NAME = "Maria Lopez"
PHONE = "(217) 555-0143"
ADDRESS = "12 Elm Street\nSpringfield, IL 62701"
SSN = "518-22-4137"
BODY = (f"A pothole on Route 9 is huge. Write to {CITIZEN.upper()} or call 217.555.0143; "
        f"I am {NAME}, I live at 12 Elm Street. My SSN is {SSN}.")


def leaks(text: str) -> list[str]:
    """Which of the citizen's contact data (and the SSN) appear in ``text``."""
    found = []
    low = text.lower()
    if CITIZEN in low or CITIZEN.replace("@", "%40") in low:
        found.append("email")
    if re.search(r"217\W{0,3}555\W{0,3}0143", text):
        found.append("phone")
    if "elm street" in low or "springfield, il" in low:
        found.append("address")
    if re.search(r"maria\s+lopez", low):
        found.append("name")
    if SSN in text or "••-4137" in text:
        found.append("ssn")
    return found


def submit(runtime: Runtime, *, consent: str | None = None, body: str = BODY,
           route: tuple[str, tuple[str, ...]] | None = ("dot", ("parks",))) -> int:
    with runtime.db.session() as s:
        ensure_policy_text(s, *POLICY)
        recorded = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=f"{body}|{consent}".encode(),
            content_type="text/plain", subject=f"Pothole, from {NAME}", body=body,
            form_slug="contact", fields={"topic": "transportation", "about": CITIZEN},
            submitter=SubmitterData(name=NAME, email=CITIZEN, phone=PHONE,
                                    postal_address=ADDRESS))],
                                        record_prefix=runtime.settings.record_prefix,
                                            pii_key=runtime.pii_key,
            originals_key=runtime.originals_key)[0]
        if consent:
            record_consent(s, entry_id=recorded.entry_id, action=ConsentAction.GRANT,
                                   purpose=Purpose.SHARE_IDENTITY, recipient_class=consent,
                                   policy_version=POLICY[0], method=ConsentMethod.WEB_CHECKBOX,
                                   evidence=b"consent=on")
        if route is not None:
            entry = s.get(Entry, recorded.entry_id)
            assert entry is not None
            apply_decision(s, entry, Decision(
                route_to=route[0], cc=route[1], tags=(), matched_rules=(), decided_by=None,
                captures={}, trace=(), rules_sha256=runtime.rules.current().sha256),
                actor="rules")
        return recorded.entry_id


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Flask]:
    application = create_app(runtime=runtime)
    application.testing = True
    yield application


def logged_in(app: Flask, account: Account) -> FlaskClient:
    client = app.test_client()
    login(client, account)
    return client


def staff_pages(client: FlaskClient, entry_id: int) -> dict[str, str]:
    pages = {}
    for url in ("/staff/inbox", f"/staff/entries/{entry_id}", "/staff/inbox?q=Maria+Lopez",
                "/staff/inbox?q=pothole", "/staff/inbox?q=Elm+Street"):
        response = client.get(url)
        assert response.status_code == 200, url
        # The search box repeats what the staff member typed: that is not a leak.
        pages[url] = re.sub(r'<input id="q"[^>]*>', "", response.get_data(as_text=True))
    return pages


def test_no_staff_page_shows_a_non_consenting_citizens_contact_data(
        app: Flask, runtime: Runtime) -> None:
    entry_id = submit(runtime)
    with runtime.db.session() as s:  # a file name can name the citizen too
        content = b"a letter"
        digest = hashlib.sha256(content).hexdigest()
        attachment = Attachment(
            entry_id=entry_id, filename=f"{NAME} {CITIZEN}.txt", declared_type="text/plain",
            sniffed_type="text/plain", size=len(content), sha256=digest,
            content=seal_for_entry(s, entry_id, runtime.originals_key, content, digest))
        s.add(attachment)
        s.flush()
        attachment_id = attachment.id
    accounts = [
        make_account(runtime, "agent@dot.examplia.gov", "dot"),
        make_account(runtime, "admin@dot.examplia.gov", "dot", role="agency_admin"),
        make_account(runtime, "reader@parks.examplia.gov", "parks"),  # cc
        make_account(runtime, "records@dot.examplia.gov", "dot", role="records_officer"),
        make_account(runtime, "sysadmin@dot.examplia.gov", "dot", role="system_admin"),
    ]
    clients = [logged_in(app, account) for account in accounts]  # a code works once
    for account, client in zip(accounts, clients, strict=True):
        pages = staff_pages(client, entry_id)
        for url, page in pages.items():
            assert leaks(page) == [], (account.role, account.agency, url)
        download = client.get(f"/staff/entries/{entry_id}/attachments/{attachment_id}")
        assert download.status_code == 200 and download.data == content
        assert leaks(download.headers["Content-Disposition"]) == [], account.role
        entry_page = pages[f"/staff/entries/{entry_id}"]
        assert "Pothole" in entry_page and "Route 9" in entry_page
        if account.role in ("agent", "agency_admin"):
            assert "Member of the public" in entry_page
            assert re.search(r"reply\+[a-z0-9]+@", entry_page)  # the relay stands for it
    # The owning agency's list and search find the entry, under its rendered subject.
    agent = clients[0]
    for url in ("/staff/inbox", "/staff/inbox?q=pothole"):
        assert "Pothole, from Member of the public" in agent.get(url).get_data(as_text=True)
    # The search is no oracle: the citizen's name, address or phone find nothing, for
    # anyone (the index holds the public rendition without its removed spans).
    for client in clients:
        for q in ("Maria Lopez", CITIZEN, CITIZEN.split("@")[0], PHONE, "Lopez"):
            page = client.get("/staff/inbox", query_string={"q": q}).get_data(as_text=True)
            assert "Pothole" not in page, (q, page)

    # Replies still work without the address: they go through the relay.
    response = agent.post(f"/staff/entries/{entry_id}/reply",
                          data={"body": "We will fix it.", "csrf_token": csrf(agent)})
    assert response.status_code == 303
    with runtime.db.session() as s:
        ledger = s.scalar(select(Disclosure).where(Disclosure.nature == "reply"))
        assert ledger is not None and ledger.allowed
    page = agent.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert "We will fix it." in page and leaks(page) == []


def test_a_consenting_citizens_address_reaches_only_the_agency_it_names(
        app: Flask, runtime: Runtime) -> None:
    entry_id = submit(runtime, consent="agency:dot")
    owner = logged_in(app, make_account(runtime, "agent@dot.examplia.gov", "dot"))
    page = owner.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    # The consent names the name and the e-mail address: no more.
    assert CITIZEN in page and NAME in page
    assert "phone" not in leaks(page) and "address" not in leaks(page)
    assert "ssn" not in leaks(page)
    for other in (make_account(runtime, "reader@parks.examplia.gov", "parks"),
                  make_account(runtime, "records@dot.examplia.gov", "dot",
                               role="records_officer")):
        for url, shown in staff_pages(logged_in(app, other), entry_id).items():
            assert leaks(shown) == [], (other.role, other.agency, url)


def test_reveal_is_for_records_officers_with_a_reason_and_is_logged(
        app: Flask, runtime: Runtime) -> None:
    entry_id = submit(runtime)
    agent = logged_in(app, make_account(runtime, "agent@dot.examplia.gov", "dot"))
    admin = logged_in(app, make_account(runtime, "admin@dot.examplia.gov", "dot",
                                        role="agency_admin"))
    officer_account = make_account(runtime, "records@dot.examplia.gov", "dot",
                                   role="records_officer")
    officer = logged_in(app, officer_account)
    url = f"/staff/entries/{entry_id}/reveal"
    ask = {"reason": "Subpoena served on the records office", "citation": "Case No. 2026-CV-118"}
    for client in (agent, admin):
        assert client.post(url, data={**ask, "csrf_token": csrf(client)}).status_code == 403
    assert officer.post(url, data=ask).status_code == 400  # no CSRF token

    refused = officer.post(url, data={"citation": ask["citation"], "csrf_token": csrf(officer)})
    assert refused.status_code == 400 and leaks(refused.get_data(as_text=True)) == []
    no_law = officer.post(url, data={"reason": ask["reason"], "citation": "because",
                                     "csrf_token": csrf(officer)})
    assert no_law.status_code == 400 and leaks(no_law.get_data(as_text=True)) == []
    with runtime.db.session() as s:
        assert s.scalars(select(AccessLogEntry).where(AccessLogEntry.what == "reveal")).all() \
            == []

    shown = officer.post(url, data={**ask, "csrf_token": csrf(officer)})
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    assert CITIZEN in page and "217) 555-0143" in page and "Springfield, IL 62701" in page
    assert SSN not in page  # P6 stays redacted: only the sealed original keeps it
    # Once: the next view is the records officer's rendition again.
    assert leaks(officer.get(f"/staff/entries/{entry_id}").get_data(as_text=True)) == []

    demand = officer.post(url, data={**ask, "legal_demand": "1",
                                     "requester": "Circuit Court of Examplia",
                                     "requester_address": "1 Court Square",
                                     "csrf_token": csrf(officer)})
    assert demand.status_code == 200 and CITIZEN in demand.get_data(as_text=True)
    with runtime.db.session() as s:
        log = s.execute(select(AccessLogEntry.staff_id, AccessLogEntry.what)
                        .where(AccessLogEntry.what == "reveal")).all()
        assert [tuple(r) for r in log] == [(officer_account.id, "reveal")] * 2
        # The reason is kept in the access log, not on the timeline every agent reads.
        reasons = list(s.scalars(select(AccessLogEntry.detail).where(
            AccessLogEntry.entry_id == entry_id, AccessLogEntry.what == "reveal")
            .order_by(AccessLogEntry.id)))
        assert not s.scalars(select(Event).where(Event.kind.like("access-%"))).all()
        assert reasons[0] == {"reason": ask["reason"], "citation": ask["citation"]}
        assert reasons[1]["disclosed_to"] == "Circuit Court of Examplia"
        legal = s.scalars(select(Disclosure).where(Disclosure.nature == "legal-demand")).all()
        assert [(d.purpose, d.recipient_kind, d.allowed, d.citation, d.include_identity)
                for d in legal] == [("legal-obligation", "third-party", True,
                                     ask["citation"], True)]
    # The records office reads why in the entry's access log; agents do not see it.
    assert ask["citation"] in officer.get(f"/staff/entries/{entry_id}").get_data(as_text=True)
    assert ask["citation"] not in agent.get(f"/staff/entries/{entry_id}").get_data(as_text=True)


# -- the ways out ---------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies, _Receiver.verified = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_forward_webhook_and_relayed_replies_carry_no_contact_data_without_consent(
        tmp_path: Path, db_url: str, sink: SmtpSink, receiver: int) -> None:
    rt = make_runtime(tmp_path, db_url, sink.port, webhook_port=receiver)
    try:
        rt.jobs.start()
        entry_id = submit(rt, route=None)  # "pothole": the rules route it to DOT by e-mail
        submit(rt, route=None, body=BODY.replace("pothole", "campground"))  # parks: webhook
        wait_for(lambda: sink.to(DOT) and _Receiver.bodies, message="forward and webhook")
        forward = sink.to(DOT)[0]
        assert leaks(forward.raw.decode("utf-8", "replace")) == []
        assert leaks(forward.message.get_body().get_content()) == []  # type: ignore[union-attr]
        assert "Route 9" in forward.message.get_body().get_content()  # type: ignore[union-attr]
        payload = json.dumps(_Receiver.bodies[0])
        assert leaks(payload) == [] and _Receiver.bodies[0]["reply_to"].startswith("reply+")
        assert _Receiver.bodies[0]["submitter"]["identity_shared"] is False

        _thread_message(rt, entry_id, "submitter",
                        f"Thanks! {NAME} here, {CITIZEN}, 217 555 0143, 12 Elm Street. "
                        f"SSN {SSN}.")
        wait_for(lambda: len(sink.to(DOT)) == 2, message="citizen reply relayed to the agency")
        relayed = sink.to(DOT)[1]
        assert leaks(relayed.raw.decode("utf-8", "replace")) == []
        assert "Thanks!" in relayed.message.get_content()
    finally:
        rt.close()


def test_forward_with_consent_carries_name_and_address_not_phone_or_postal(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    rt = make_runtime(tmp_path, db_url, sink.port)
    try:
        rt.jobs.start()
        submit(rt, consent="agency:dot", route=None)
        wait_for(lambda: sink.to(DOT), message="forward")
        forward = sink.to(DOT)[0]
        text = forward.message.get_body().get_content()  # type: ignore[union-attr]
        assert CITIZEN in text.lower() and NAME in text
        assert str(forward.message["Reply-To"]) == CITIZEN
        assert "phone" not in leaks(text) and "address" not in leaks(text)
        assert "ssn" not in leaks(text)
    finally:
        rt.close()


# -- the submitter's status page ----------------------------------------------------------------


def test_status_page_tells_the_consent_history_after_a_withdrawal(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    rt = make_runtime(tmp_path, db_url, sink.port)
    app = create_app(runtime=rt)
    app.testing = True
    try:
        entry_id = submit(rt, consent="agency:dot", route=None)
        with rt.db.session() as s:
            token = create_access_link(s, entry_id)
        rt.jobs.start()
        wait_for(lambda: sink.to(DOT), message="forward with identity")
        client = app.test_client()
        wait_for(lambda: "Shared with Department of Transportation" in client.get(
            f"/status/{token}").get_data(as_text=True), message="ledger row committed")
        response = client.post(f"/status/{token}/withdraw",
                               data={"purpose": "share-identity",
                                     "recipient_class": "agency:dot"})
        assert response.status_code == 303
        page = client.get(f"/status/{token}").get_data(as_text=True)
        state = re.search(r'<p class="consent-state">(.*?)</p>', page, re.S)
        assert state is not None
        text = " ".join(re.sub(r"<[^>]+>", "", state.group(1)).split())
        assert re.search(r"Given on .+; Shared with Department of Transportation on .+; "
                         r"Withdrawn on .+; not shared since\. Now: not given\.", text), text
        assert "Yes" not in page.split("Who has received your message")[0]
        assert SSN not in page  # the submitter's rendition: P6 redacted
    finally:
        rt.close()
