"""A bounce of one of our acknowledgements marks the address undeliverable (as a keyed hash):
later acknowledgements to it are not sent, with the reason on the entry's timeline. Over a real
SMTP server (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from intake.core.mail.automatic import BOUNCE
from intake.db.automail_models import AutomaticEntry, UndeliverableAddress
from intake.db.models import Event, WorkItem
from intake.runtime import Runtime
from intake.services import automail
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from tests.conftest import SmtpSink, make_runtime, wait_for

PERSON = "lena.fischer@example.org"
GOVERNOR = "governor@examplia.gov"


def citizen_mail(n: int, sender: str = PERSON) -> bytes:
    return (f"From: Lena Fischer <{sender}>\r\nTo: contact@examplia.gov\r\n"
            f"Subject: Library hours {n}\r\nMessage-ID: <lena-{n}@example.org>\r\n\r\n"
            f"When does the state library open on Saturdays? ({n})\r\n").encode()


def dsn(original_id: str, recipient: str, action: str = "failed") -> bytes:
    return (
        "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: intake@examplia.gov\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{action}-{original_id.strip('<>')}>\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
        f"\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: 5.1.1\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: intake@examplia.gov\r\nTo: {recipient}\r\nMessage-ID: {original_id}\r\n"
        "\r\n--b--\r\n").encode()


def context(rt: Runtime) -> MailContext:
    return MailContext.from_settings(rt.settings, "contact", pii_key=rt.pii_key,
                                     agency_addresses=[GOVERNOR])


def settled(rt: Runtime) -> bool:
    with rt.db.session() as s:
        states = set(s.scalars(select(WorkItem.state)))
    return bool(states) and states <= {"done"}


def test_a_bounced_acknowledgement_stops_later_ones(tmp_path: Path, db_url: str,
                                                    sink: SmtpSink) -> None:
    rt = make_runtime(tmp_path, db_url, smtp_port=sink.port)
    try:
        rt.jobs.start()
        first = store_messages(rt.db, [ReceivedMail(citizen_mail(1))], context(rt))[0]
        wait_for(lambda: sink.to(PERSON) and sink.to(GOVERNOR), 30,
                 message="the first receipt and forward")
        # Recorded as sent (the SMTP server's "250" comes just before the commit).
        wait_for(lambda: settled(rt), 30, message="the receipt recorded")
        ack_id = sink.to(PERSON)[0].message_id

        # A delay warning is not a failure: nothing is marked.
        delayed = store_messages(rt.db, [ReceivedMail(dsn(ack_id, PERSON, "delayed"))],
                                 context(rt))[0]
        assert delayed.auto_category == BOUNCE
        with rt.db.session() as s:
            assert not automail.is_undeliverable(
                s, rt.settings.derived_key(automail.KEY_PURPOSE), PERSON)

        bounce = store_messages(rt.db, [ReceivedMail(dsn(ack_id, PERSON.upper()))],
                                context(rt))[0]
        # The bounce of our receipt joins the entry's thread, never relayed.
        assert (bounce.outcome, bounce.entry_id, bounce.author, bounce.auto_category) == (
            "thread-reply", first.entry_id, "auto", BOUNCE)
        with rt.db.session() as s:
            rows = list(s.scalars(select(UndeliverableAddress)))
            assert [r.bounces for r in rows] == [1]
            assert rows[0].address_hash == automail.address_hash(
                rt.settings.derived_key(automail.KEY_PURPOSE), PERSON)
            stored = " ".join(str(getattr(r, c.key)) for r in rows
                              for c in UndeliverableAddress.__table__.columns).lower()
            assert PERSON not in stored and "lena" not in stored, "only a keyed hash is kept"
            assert rows[0].last_message_id == ack_id

        second = store_messages(rt.db, [ReceivedMail(citizen_mail(2))], context(rt))[0]
        wait_for(lambda: len(sink.to(GOVERNOR)) == 2, 30, message="the second forward")
        wait_for(lambda: settled(rt), 30, message="every work item done")
        assert len(sink.to(PERSON)) == 1, "no receipt to an address that bounced"
        with rt.db.session() as s:
            reasons = [e.detail for e in s.scalars(
                select(Event).where(Event.entry_id == second.entry_id,
                                    Event.kind == "acknowledgement-skipped"))]
            assert [r["reason"] for r in reasons] == ["undeliverable"]
            # A thread bounce is not an entry of its own; the person's entries are not
            # automatic mail.
            assert list(s.scalars(select(AutomaticEntry.entry_id))) == []

        # Someone else is still acknowledged.
        store_messages(rt.db, [ReceivedMail(citizen_mail(3, "other.person@example.org"))],
                       context(rt))
        wait_for(lambda: sink.to("other.person@example.org"), 30, message="another receipt")
    finally:
        rt.close()


def test_bounces_mark_only_addresses_we_wrote_to(tmp_path: Path, sqlite_url: str,
                                                 sink: SmtpSink) -> None:
    """Exim's bounce without a report part (X-Failed-Recipients, the original quoted in the
    text) marks an address we acknowledged; a bounce naming someone we never wrote to, or a
    Message-ID that is not ours, marks nobody."""
    rt = make_runtime(tmp_path, sqlite_url, smtp_port=sink.port)
    try:
        rt.jobs.start()
        store_messages(rt.db, [ReceivedMail(citizen_mail(1))], context(rt))
        wait_for(lambda: sink.to(PERSON), 30, message="the receipt")
        wait_for(lambda: settled(rt), 30, message="the receipt recorded")
        key = rt.settings.derived_key(automail.KEY_PURPOSE)

        stranger = dsn("<not-ours@elsewhere.example>", "stranger@example.net")
        out = store_messages(rt.db, [ReceivedMail(stranger)], context(rt))[0]
        assert (out.outcome, out.auto_category) == ("stored", BOUNCE)
        exim = ("Return-path: <>\r\nFrom: Mail Delivery System <Mailer-Daemon@mx.example>\r\n"
                "To: intake@examplia.gov\r\nSubject: Mail delivery failed: returning message "
                f"to sender\r\nX-Failed-Recipients: {PERSON}\r\nAuto-Submitted: auto-replied\r\n"
                "Message-Id: <exim-1@mx.example>\r\n\r\nA message that you sent could not be "
                f"delivered.\r\n\r\n  {PERSON}\r\n    No Such User Here\r\n").encode()
        with rt.db.session() as s:
            assert not automail.is_undeliverable(s, key, PERSON)
            assert not automail.is_undeliverable(s, key, "stranger@example.net")
        out = store_messages(rt.db, [ReceivedMail(exim)], context(rt))[0]
        assert (out.outcome, out.auto_category) == ("stored", BOUNCE)
        with rt.db.session() as s:
            assert automail.is_undeliverable(s, key, PERSON)
            assert not automail.is_undeliverable(s, key, "stranger@example.net")
            categories = sorted(a.category for a in s.scalars(select(AutomaticEntry)))
        assert categories == [BOUNCE, BOUNCE], "both bounces are kept as automatic records"
        wait_for(lambda: settled(rt), 30, message="every work item done")
        assert len(sink.to(PERSON)) == 1 and not sink.to("stranger@example.net")
    finally:
        rt.close()
