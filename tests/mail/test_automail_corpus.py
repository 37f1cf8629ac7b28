"""Automatic mail, end to end: a corpus of auto-replies, bounces, list and bulk mail, spam and
challenge-response requests (tests/data/mail/auto/<category>--<name>.eml) and of people's mail
that must not be caught (tests/data/mail/auto/human/*.eml, hard negatives and two web-form
relays).

A real IMAP server (pymap) -> the mailbox poller -> the job worker (routing, delivery) -> a
real SMTP server (aiosmtpd): every message is stored, the automatic ones are neither forwarded
nor acknowledged (the SMTP server receives nothing about them), every person's message is
forwarded and acknowledged, a relayed one to its Reply-To.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.core.mail import parse_message
from intake.core.mail.automatic import (
    CATEGORIES,
    AutoConfig,
    classify,
    from_relay,
    header_map,
    relay_person,
)
from intake.db.automail_models import AutomaticEntry
from intake.db.models import Entry, Event, Submitter, WorkItem
from intake.mail.imap import ImapMailbox
from intake.mail.poller import MailboxPoller
from tests.conftest import SmtpSink, make_runtime, wait_for
from tests.mail.conftest import ImapServer, start_pymap

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mail" / "auto"
AUTOMATIC = sorted(CORPUS.glob("*--*.eml"))
HUMAN = sorted((CORPUS / "human").glob("*.eml"))
RELAYED = {"web-form-relay-wordpress.eml": "sofia.reyes@example.com",
           "web-form-relay-noreply-auto-generated.eml": "omar.haddad@example.org"}
# From a relay without a Reply-To: forwarded, but nobody to acknowledge (not the relay).
UNKNOWN_PERSON = "web-form-relay-without-reply-to.eml"
AGENCIES = {"governor@examplia.gov", "intake@dot.examplia.gov", "parks@examplia.gov"}


def expected(path: Path) -> str:
    return path.name.split("--", 1)[0]


def test_the_corpus_is_big_enough_and_covers_every_category() -> None:
    assert len(AUTOMATIC) >= 30 and len(HUMAN) >= 15
    assert {expected(p) for p in AUTOMATIC} == set(CATEGORIES)


@pytest.mark.parametrize("path", AUTOMATIC + HUMAN, ids=lambda p: p.name)
def test_each_message_gets_its_category(path: Path) -> None:
    raw = path.read_bytes()
    parsed = parse_message(raw, record_tag_prefix="EX")
    verdict = classify(parsed, header_map(raw))
    if path in HUMAN:
        assert verdict is None, f"a person's message caught as {verdict}"
        person = relay_person(parsed, AutoConfig())
        assert (person.address if person else None) == RELAYED.get(path.name)
        assert from_relay(parsed, AutoConfig()) == (path.name in (*RELAYED, UNKNOWN_PERSON))
    else:
        assert verdict is not None and verdict.category == expected(path), verdict


def test_configured_spam_header_and_relay_senders() -> None:
    raw = (b"From: Ann <ann@example.org>\r\nTo: contact@examplia.gov\r\nSubject: Hi\r\n"
           b"X-Barracuda-Spam-Flag: YES\r\n\r\nHello\r\n")
    parsed = parse_message(raw)
    assert classify(parsed, header_map(raw)) is None, "not a default spam header"
    custom = AutoConfig(spam_headers=("X-Barracuda-Spam-Flag: yes",))
    verdict = classify(parsed, header_map(raw), custom)
    assert verdict is not None and verdict.category == "spam"
    relayed = (b"From: Site <robot@cms.example>\r\nReply-To: bo@example.org\r\n"
               b"Subject: Form\r\n\r\nHello\r\n")
    assert relay_person(parse_message(relayed), AutoConfig()) is None
    person = relay_person(parse_message(relayed), AutoConfig(relay_senders=("@cms.example",)))
    assert person is not None and person.address == "bo@example.org"


@pytest.fixture(scope="module")
def pymap() -> Iterator[ImapServer]:
    yield from start_pymap()


def test_automatic_mail_over_imap_is_stored_but_nobody_is_sent_anything(
        tmp_path: Path, sqlite_url: str, pymap: ImapServer, sink: SmtpSink) -> None:
    rt = make_runtime(tmp_path, sqlite_url, smtp_port=sink.port)
    try:
        config = pymap.mailbox("contact")
        pymap.append(config.folder, *(p.read_bytes() for p in AUTOMATIC + HUMAN))
        poller = MailboxPoller(rt.db, rt.settings, config, pii_key=rt.pii_key,
                               open_mailbox=ImapMailbox.open,
                               agency_addresses=lambda: sorted(AGENCIES))
        report = poller.poll_once()
        assert report.stored == len(AUTOMATIC) + len(HUMAN) and not report.quarantined
        rt.jobs.start()

        def settled() -> bool:
            with rt.db.session() as s:
                states = set(s.scalars(select(WorkItem.state)))
            return bool(states) and states <= {"done"}

        wait_for(settled, 60, message="routing and every delivery done")
        with rt.db.session() as s:
            entries = {e.id: e for e in s.scalars(select(Entry))}
            automatic = {a.entry_id: a.category for a in s.scalars(select(AutomaticEntry))}
            submitters = {x.entry_id: x.email for x in s.scalars(select(Submitter))}
            skipped = {e.entry_id for e in s.scalars(
                select(Event).where(Event.kind == "delivery-skipped"))}
            kinds = {w.kind for w in s.scalars(select(WorkItem))}
        assert len(entries) == len(AUTOMATIC) + len(HUMAN), "every message stored"
        assert sorted(automatic.values()) == sorted(expected(p) for p in AUTOMATIC)
        assert kinds == {"route", "deliver", "acknowledge"}

        received = sink.all()
        by_record: dict[str, list[set[str]]] = {}
        for mail in received:
            message = email.message_from_bytes(mail.raw, policy=email.policy.default)
            by_record.setdefault(str(message["X-Intake-Record"]), []).append(set(mail.rcpt_tos))
        for entry_id, entry in entries.items():
            sent = by_record.get(entry.record_number, [])
            if entry_id in automatic:
                assert sent == [], f"{entry.subject!r} ({automatic[entry_id]}) was sent on"
                continue
            forwards = [r for r in sent if r & AGENCIES]
            acks = [r for r in sent if not r & AGENCIES]
            assert len(forwards) == 1, f"{entry.subject!r} forwarded once"
            if submitters.get(entry_id):
                assert acks == [{submitters[entry_id]}], f"{entry.subject!r} acknowledged once"
            else:
                assert acks == [] and entry.fields["_web_form_relay"] == "villagepark.example"
        # Nothing at all reached an automatic sender, a relay or a list.
        everyone = {a for mail in received for a in mail.rcpt_tos}
        for path in AUTOMATIC:
            parsed = parse_message(path.read_bytes())
            if parsed.from_:
                assert parsed.from_.address.lower() not in everyone, path.name
        # Web-form relays: the person in Reply-To is the submitter and got the receipt.
        for person in RELAYED.values():
            assert person in submitters.values()
            assert len(sink.to(person)) == 1
        assert not {"wordpress@smalltown.example", "noreply@forms.example.net",
                    "wordpress@villagepark.example"} & everyone
        assert len(received) == 2 * len(HUMAN) - 1
        assert skipped == set(automatic), "each automatic entry says why nothing was sent"
    finally:
        rt.close()
