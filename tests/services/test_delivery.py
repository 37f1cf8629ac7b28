"""Delivery: forwards, receipts, relays and failures, read from in-memory senders.

The services run as in production (in-process workers, a real database); only
the way out is :class:`~intake.outbound.memory.MemoryMailSender`, which keeps
the bytes an SMTP server would have received. One test runs the real
senders end to end (an aiosmtpd sink and a real webhook receiver on loopback);
tests/outbound/test_senders.py tests the real senders themselves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intake import create_app
from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.db.models import Event, SentMessage, WorkItem
from intake.outbound import webhook
from intake.outbound.memory import MemoryMailSender
from intake.runtime import Runtime
from intake.services.consent import disclosures_for, ensure_policy_text, record_consent
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from intake.services.work import retry_dead
from tests.conftest import (
    CITIZEN,
    DOT,
    ORIGINALS_KEY,
    POLICY,
    SmtpSink,
    _Receiver,
    _thread_message,
    make_runtime,
    memory_senders,
    wait_for,
)


@pytest.fixture
def outbox() -> MemoryMailSender:
    return MemoryMailSender()


@pytest.fixture
def rt(tmp_path: Path, db_url: str, outbox: MemoryMailSender) -> Iterator[Runtime]:
    # A mail server that is down is paused and probed again within a second or two.
    runtime = make_runtime(tmp_path, db_url, senders=memory_senders(outbox),
                           INTAKE_CIRCUIT_COOLDOWN="0.5", INTAKE_RETRY_CAP="1")
    yield runtime
    runtime.close()


def submit(rt: Runtime, body: str = "A pothole on Route 9 is huge.", *,
           email: str | None = CITIZEN, consent: str | None = None,
           fields: dict[str, Any] | None = None) -> tuple[int, str]:
    with rt.db.session() as s:
        ensure_policy_text(s, *POLICY)
        rec = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=f"{body}|{email}|{consent}".encode(),
            content_type="text/plain", subject=f"Road problem (write to {email})",
            body=f"{body} Please answer me at {email}.", form_slug="contact",
            fields=fields or {}, submitter=SubmitterData(name="Maria Lopez", email=email))],
                record_prefix="EX", pii_key=rt.pii_key, originals_key=ORIGINALS_KEY)[0]
        if consent:
            record_consent(s, entry_id=rec.entry_id, action=ConsentAction.GRANT,
                                   purpose=Purpose.SHARE_IDENTITY, recipient_class=consent,
                                   policy_version=POLICY[0], method=ConsentMethod.WEB_CHECKBOX,
                                   evidence=b"consent=on")
    return rec.entry_id, rec.record_number


def items(rt: Runtime, kind: str) -> list[WorkItem]:
    with rt.db.session() as s:
        return list(s.scalars(select(WorkItem).where(WorkItem.kind == kind)
                              .order_by(WorkItem.id)))


def test_forward_without_consent_carries_the_relay_not_the_citizen(
        rt: Runtime, outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    entry_id, record = submit(rt)
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="forward and receipt")
    forward = outbox.to(DOT)[0]
    msg = forward.message
    raw = forward.raw.decode("utf-8", "replace").lower()
    assert CITIZEN not in raw and "maria" not in raw and "lopez" not in raw
    assert str(msg["Subject"]).startswith(f"[#{record}]")
    assert msg["Reply-To"].startswith("reply+") and msg["Reply-To"].endswith(
        "@relay.examplia.gov")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert forward.mail_from == "intake@examplia.gov"
    assert "pothole on route 9" in raw
    # The sender has the message a moment before the handler's transaction commits.
    def kinds() -> list[str]:
        with rt.db.session() as s:
            return list(s.scalars(select(Event.kind).where(Event.entry_id == entry_id)))

    wait_for(lambda: {"forwarded", "acknowledged"} <= set(kinds()), message="events")
    with rt.db.session() as s:
        sent = s.scalars(select(SentMessage.message_id).where(SentMessage.kind == "forward"))
        assert list(sent) == [forward.message_id]


def test_receipt_has_record_number_and_a_working_status_link(rt: Runtime,
                                                             outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    _, record = submit(rt)
    wait_for(lambda: outbox.to(CITIZEN), message="receipt")
    # The link's token commits with the receipt's work item, just after the send.
    wait_for(lambda: [i.state for i in items(rt, "acknowledge")] == ["done"], message="ack done")
    receipt = outbox.to(CITIZEN)[0].message
    assert receipt["Auto-Submitted"] == "auto-replied"
    text = receipt.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert record in text and "Department of Transportation" in text
    link = next(line.strip() for line in text.splitlines()
                if line.strip().startswith("https://intake.examplia.gov/status/"))
    page = create_app(runtime=rt).test_client().get(link.removeprefix(
        "https://intake.examplia.gov"))
    assert page.status_code == 200 and record in page.get_data(as_text=True)


def test_forward_with_consent_carries_the_citizens_address(rt: Runtime,
                                                           outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    submit(rt, consent="agency:dot")
    wait_for(lambda: outbox.to(DOT), message="forward")
    msg = outbox.to(DOT)[0].message
    assert msg["Reply-To"] == CITIZEN
    assert CITIZEN in msg.get_content() and "Maria Lopez" in msg.get_content()


def test_consent_for_another_agency_does_not_cover_this_one(rt: Runtime,
                                                            outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    submit(rt, consent="agency:parks")
    wait_for(lambda: outbox.to(DOT), message="forward")
    assert CITIZEN not in outbox.to(DOT)[0].raw.decode("utf-8", "replace").lower()


def test_withdrawal_after_queueing_sends_content_only(rt: Runtime,
                                                      outbox: MemoryMailSender) -> None:
    entry_id, _ = submit(rt, consent="agency")
    route = items(rt, "route")[0]
    assert rt.jobs.perform(route.id, "test") == "done"  # route now; deliver later
    with rt.db.session() as s:
        record_consent(s, entry_id=entry_id, action=ConsentAction.WITHDRAW,
                               purpose=Purpose.SHARE_IDENTITY, recipient_class="agency",
                               policy_version=POLICY[0], method=ConsentMethod.WEB_CHECKBOX,
                               evidence=b"withdraw")
    rt.jobs.start()
    wait_for(lambda: outbox.to(DOT), message="content-only forward")
    assert CITIZEN not in outbox.to(DOT)[0].raw.decode("utf-8", "replace").lower()
    wait_for(lambda: [i.state for i in items(rt, "deliver")] == ["done"], message="deliver done")
    with rt.db.session() as s:
        ledger = [(d.nature, d.allowed, d.reason, d.include_identity)
                  for d in disclosures_for(s, entry_id) if d.nature == "forward"]
    assert ledger == [("forward", True, "consent", True),
                      ("forward", False, "consent-withdrawn", False),
                      ("forward", True, "notice", False)]


def test_crlf_in_subject_cannot_inject_headers(rt: Runtime, outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    with rt.db.session() as s:
        record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=b"inject", content_type="text/plain",
            subject="Pothole\r\nBcc: victim@evil.example", body="pothole here",
            submitter=SubmitterData(name="X\r\nBcc: other@evil.example", email=CITIZEN))],
            record_prefix="EX", originals_key=ORIGINALS_KEY)
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="mail")
    for received in outbox.all():
        assert not any("evil.example" in r for r in received.rcpt_tos)
        assert received.message["Bcc"] is None


def test_smtp_down_then_back_delivers_everything_once(rt: Runtime,
                                                     outbox: MemoryMailSender) -> None:
    outbox.go_down()  # the agency's mail server is down
    rt.jobs.start()
    submit(rt, "pothole one", email="a@example.org")
    submit(rt, "pothole two", email="b@example.org")
    # Read once per poll: the two deliveries, each deferred at least twice (no attempt
    # used up), each waiting with its SMTP error recorded.
    seen: list[list[tuple[int, str, str | None]]] = []

    def failed_twice_and_waiting() -> bool:
        snapshot = [(i.deferrals, i.attempts, i.state, i.last_error)
                    for i in items(rt, "deliver")]
        seen.append(snapshot)
        return len(snapshot) == 2 and all(
            deferrals >= 2 and attempts == 0 and state == "pending"
            and "SMTP unavailable" in (error or "")
            for deferrals, attempts, state, error in snapshot)

    try:
        wait_for(failed_twice_and_waiting, message="failed attempts while the server is down")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen[-3:]}") from None
    outbox.come_back()
    wait_for(lambda: len(outbox.to(DOT)) == 2 and len(outbox.all()) == 4, timeout=60,
             message="everything delivered")
    wait_for(lambda: all(i.state == "done" for i in items(rt, "deliver")), message="done")
    ids = [r.message_id for r in outbox.all()]
    assert len(ids) == len(set(ids)) == 4


def test_permanent_failure_is_a_dead_letter_and_can_be_retried(rt: Runtime,
                                                              outbox: MemoryMailSender) -> None:
    outbox.reject[DOT] = "550 5.1.1 <intake@dot.examplia.gov>: mailbox unavailable"
    rt.jobs.start()
    entry_id, _ = submit(rt)
    wait_for(lambda: items(rt, "deliver") and items(rt, "deliver")[0].state == "dead",
             message="dead letter")
    dead = items(rt, "deliver")[0]
    assert dead.attempts == 1
    assert dead.last_error == ("the mail server refused the message: 550 5.1.1 "
                               "<intake@dot.examplia.gov>: mailbox unavailable")
    assert outbox.to(DOT) == []
    del outbox.reject[DOT]
    with rt.db.session() as s:
        assert retry_dead(s, [dead.id]) == [dead.id]
    wait_for(lambda: len(outbox.to(DOT)) == 1, message="delivered after retry")


def test_acknowledgements_are_rate_limited_per_address(tmp_path: Path, db_url: str,
                                                      outbox: MemoryMailSender) -> None:
    rt = make_runtime(tmp_path, db_url, senders=memory_senders(outbox), INTAKE_ACK_LIMIT="1")
    try:
        rt.jobs.start()
        first, _ = submit(rt, "pothole one")
        wait_for(lambda: len(outbox.to(CITIZEN)) == 1, message="first receipt")
        second, _ = submit(rt, "pothole two")
        wait_for(lambda: len(outbox.to(DOT)) == 2, message="both forwards")
        wait_for(lambda: items(rt, "acknowledge")[-1].state == "done", message="second ack")
        assert len(outbox.to(CITIZEN)) == 1
        with rt.db.session() as s:
            skipped = s.scalar(select(func.count()).select_from(Event).where(
                Event.entry_id == second, Event.kind == "acknowledgement-skipped"))
        assert skipped == 1
    finally:
        rt.close()


def test_auto_replies_are_never_acknowledged(rt: Runtime, outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    entry_id, _ = submit(rt, fields={"_auto_submitted": "auto-submitted: auto-replied"})
    wait_for(lambda: outbox.to(DOT), message="forward")
    wait_for(lambda: items(rt, "route")[0].state == "done", message="routed")
    assert items(rt, "acknowledge") == []
    assert outbox.to(CITIZEN) == []


def test_relay_both_ways_keeps_the_citizens_address_inside(rt: Runtime,
                                                           outbox: MemoryMailSender) -> None:
    rt.jobs.start()
    entry_id, record = submit(rt)
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="first mail")
    _thread_message(rt, entry_id, "agency", "We will fix it on Monday.")
    wait_for(lambda: len(outbox.to(CITIZEN)) == 2, message="agency -> citizen")
    to_citizen = outbox.to(CITIZEN)[1].message
    assert to_citizen["From"].addresses[0].addr_spec == "intake@examplia.gov"
    assert to_citizen["Reply-To"].startswith("reply+")
    assert "We will fix it on Monday." in to_citizen.get_body(  # type: ignore[union-attr]
        ("plain",)).get_content()
    assert f"[#{record}]" in str(to_citizen["Subject"])

    _thread_message(rt, entry_id, "submitter",
                    f"Thank you! Reach me at {CITIZEN} anytime. My SSN is 518-22-4137.")
    wait_for(lambda: len(outbox.to(DOT)) == 2, message="citizen -> agency")
    to_agency = outbox.to(DOT)[1]
    assert to_agency.mail_from.startswith("reply+")
    assert CITIZEN not in to_agency.raw.decode("utf-8", "replace").lower()
    assert "518-22-4137" not in to_agency.message.get_content()  # P6: redacted in transit
    assert "Thank you!" in to_agency.message.get_content()
    with rt.db.session() as s:
        natures = [d.nature for d in disclosures_for(s, entry_id)]
    assert natures.count("relay") == 2


def test_webhook_delivery_is_signed_and_keeps_the_address_inside(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    """The real senders of the settings, end to end: the receipt over SMTP, the forward
    to a webhook receiver."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies, _Receiver.verified = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rt = make_runtime(tmp_path, db_url, sink.port, webhook_port=server.server_address[1])
    try:
        rt.jobs.start()
        _, record = submit(rt, "Is the campground open in July?")
        wait_for(lambda: _Receiver.bodies, message="webhook call")
        payload = _Receiver.bodies[0]
        assert _Receiver.verified == [True]
        assert payload["record_number"] == record
        assert CITIZEN not in json.dumps(payload).lower()
        assert payload["reply_to"].startswith("reply+")
        assert not webhook.verify(b"x" * 40, json.dumps(payload).encode(), "t=1,v1=00")
        wait_for(lambda: sink.to(CITIZEN), message="the receipt over real SMTP")
    finally:
        rt.close()
        server.shutdown()


def test_mail_to_the_relay_address_is_passed_on_through_the_email_intake(
        rt: Runtime, outbox: MemoryMailSender) -> None:
    """Citizen <-> agency through reply+token@..., from the IMAP intake's entry point."""
    from intake.services.mail_intake import MailContext, ReceivedMail, store_messages

    rt.jobs.start()
    entry_id, record = submit(rt)
    wait_for(lambda: outbox.to(DOT) and outbox.to(CITIZEN), message="forward and receipt")
    relay = str(outbox.to(DOT)[0].message["Reply-To"])
    agencies = [a.email for a in rt.rules.current().agencies.values() if a.email]
    context = MailContext.from_settings(rt.settings, "INBOX", pii_key=rt.pii_key,
                                        agency_addresses=agencies)

    # The agency answers the forward: it reaches the citizen from the system address.
    agency_reply = (f"From: Road Crew <{DOT}>\r\nTo: {relay}\r\n"
                    f"Subject: Re: [#{record}] Road problem\r\n"
                    f"Message-ID: <crew-1@dot.examplia.gov>\r\n\r\n"
                    "We will patch it on Monday.\r\n").encode()
    outcome = store_messages(rt.db, [ReceivedMail(agency_reply)], context)[0]
    assert (outcome.outcome, outcome.via, outcome.author) == ("thread-reply", "relay-token",
                                                               "agency")
    wait_for(lambda: len(outbox.to(CITIZEN)) == 2, message="agency reply relayed to the citizen")
    to_citizen = outbox.to(CITIZEN)[-1]
    assert to_citizen.mail_from == "intake@examplia.gov"
    assert "We will patch it on Monday." in to_citizen.message.get_body(  # type: ignore[union-attr]
        ("plain",)).get_content()
    assert DOT not in str(to_citizen.message["From"])

    # The citizen answers: it reaches the agency from the relay address, not theirs.
    citizen_reply = (f"From: Maria Lopez <{CITIZEN}>\r\nTo: {relay}\r\n"
                     f"Subject: Re: [#{record}] Road problem\r\n"
                     f"Message-ID: <maria-2@example.org>\r\n\r\n"
                     f"Thanks! You can also call me. {CITIZEN}\r\n").encode()
    outcome = store_messages(rt.db, [ReceivedMail(citizen_reply)], context)[0]
    assert (outcome.outcome, outcome.author) == ("thread-reply", "submitter")
    wait_for(lambda: len(outbox.to(DOT)) == 2, message="citizen reply relayed to the agency")
    to_agency = outbox.to(DOT)[-1]
    assert to_agency.mail_from == relay
    assert CITIZEN not in to_agency.raw.decode("utf-8", "replace").lower()
    assert "Thanks!" in to_agency.message.get_content()
    # The same bytes again (a re-fetch after a crash) relay nothing twice.
    assert store_messages(rt.db, [ReceivedMail(citizen_reply)], context)[0].outcome == "duplicate"
    with rt.db.session() as s:
        relays = [d for d in disclosures_for(s, entry_id) if d.nature == "relay"]
    assert [(d.recipient_kind, d.allowed) for d in relays] == [("submitter", True),
                                                                ("agency", True)]
