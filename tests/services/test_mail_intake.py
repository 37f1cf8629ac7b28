"""The mail intake service: new entries, threading, auto-replies, duplicates, quarantine."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.db.mail_models import QuarantinedMessage
from intake.db.models import (
    Attachment,
    Entry,
    Event,
    Original,
    PiiFinding,
    SentMessage,
    Submitter,
    ThreadMessage,
    WorkItem,
)
from intake.runtime import Runtime
from intake.services.links import relay_for
from intake.services.mail_intake import (
    MailContext,
    MailOutcome,
    ReceivedMail,
    open_quarantined,
    store_messages,
)
from intake.services.records import open_attachment, open_thread_message
from tests.conftest import REPO, SMALL_RULES, subprocess_env

AGENCY = "roads@dot.examplia.gov"


def context(runtime: Runtime, mailbox: str = "info") -> MailContext:
    return MailContext.from_settings(runtime.settings, mailbox, pii_key=runtime.pii_key,
                                     agency_addresses=[AGENCY])


def mail(*, sender: str = "Ana Pérez <ana@example.org>", to: str = "info@examplia.gov",
         subject: str = "Pothole on Elm", body: str = "There is a pothole.\n",
         headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((sender, subject, body)))}@example.org>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def ingest(runtime: Runtime, raw: bytes) -> MailOutcome:
    return store_messages(runtime.db, [ReceivedMail(raw)], context(runtime))[0]


@pytest.fixture
def first(runtime: Runtime) -> MailOutcome:
    outcome = ingest(runtime, mail(body="My SSN is 123-45-6789, please fix the pothole.\n"))
    assert outcome.outcome == "stored" and outcome.entry_id is not None
    return outcome


def _sent(runtime: Runtime, entry_id: int, message_id: str) -> None:
    """What the delivery side records for every message it sends."""
    with runtime.db.session() as s:
        s.add(SentMessage(message_id=message_id, entry_id=entry_id, kind="acknowledge",
                          recipient_kind="submitter", recipient_id="submitter"))


def test_new_entry_has_submitter_original_fields_and_pii(runtime: Runtime,
                                                         first: MailOutcome) -> None:
    with runtime.db.session() as s:
        entry = s.get(Entry, first.entry_id)
        assert entry is not None
        assert (entry.channel, entry.kind, entry.subject) == ("email", "email", "Pothole on Elm")
        assert entry.fields["_mailbox"] == "info" and entry.fields["_attachments"] == []
        assert "_auto_submitted" not in entry.fields
        submitter = s.scalars(select(Submitter).where(Submitter.entry_id == entry.id)).one()
        assert (submitter.name, submitter.email) == ("Ana Pérez", "ana@example.org")
        original = s.scalars(select(Original).where(Original.entry_id == entry.id)).one()
        assert original.content_type == "message/rfc822"
        kinds = set(s.scalars(select(PiiFinding.kind).where(PiiFinding.entry_id == entry.id)))
        assert "ssn" in kinds
        route = s.scalars(select(WorkItem).where(WorkItem.entry_id == entry.id)).one()
        assert route.kind == "route"


def test_same_bytes_twice_is_a_duplicate(runtime: Runtime, first: MailOutcome) -> None:
    raw = mail(body="My SSN is 123-45-6789, please fix the pothole.\n")
    again = ingest(runtime, raw)
    assert (again.outcome, again.entry_id) == ("duplicate", first.entry_id)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 1


def test_a_batch_finds_what_was_stored_or_quarantined_before_and_within_it(
        runtime: Runtime, first: MailOutcome) -> None:
    """The batch's transaction looks its digests up once (BatchFacts); the answers are
    those of a lookup per message: stored before, stored earlier in the batch, a
    quarantined message that now stores (its row resolved), a thread message's bytes."""
    from intake.services.mail_intake import quarantine

    stored_before = mail(body="My SSN is 123-45-6789, please fix the pothole.\n")
    twice = mail(subject="Streetlight out")
    retried = mail(subject="Graffiti on the bridge")
    with runtime.db.session() as s:
        quarantine(s, retried, RuntimeError("the database was read-only"), mailbox="info",
                   originals_key=runtime.settings.originals_key())
    assert first.entry_id is not None
    _sent(runtime, first.entry_id, "<ack-7@intake.examplia.gov>")
    reply = mail(subject="Re: Pothole on Elm", body="Thanks!\n",
                 headers={"In-Reply-To": "<ack-7@intake.examplia.gov>"})
    outcomes = store_messages(runtime.db, [ReceivedMail(raw) for raw in (
        stored_before, twice, retried, reply, twice, reply)], context(runtime))
    assert [o.outcome for o in outcomes] == ["duplicate", "stored", "stored", "thread-reply",
                                             "duplicate", "duplicate"]
    assert outcomes[0].entry_id == first.entry_id
    assert outcomes[4].entry_id == outcomes[1].entry_id
    assert outcomes[5].thread_message_id == outcomes[3].thread_message_id
    with runtime.db.session() as s:
        row = s.scalars(select(QuarantinedMessage)).one()
        assert row.resolved and row.resolved_by == "stored-on-retry"
        assert s.scalar(select(func.count()).select_from(Entry)) == 3


def test_a_message_failing_after_its_writes_is_quarantined_and_the_batch_stored(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """The batch runs under one savepoint; a message whose INSERT fails (a trigger refuses
    it) rolls that back, and the batch is stored again message by message: the others
    stored once, with their route work, the failing one quarantined. The log says so
    once it is committed: no line names an entry the rolled-back savepoint took back."""
    from tests.services.test_pii_at_rest import _poison_entries

    batch = [mail(subject="Pothole on Oak"), mail(subject="POISON on Main"),
             mail(subject="Broken bench")]
    _poison_entries(runtime, True)
    caplog.set_level(logging.INFO)
    try:
        outcomes = store_messages(runtime.db, [ReceivedMail(raw) for raw in batch],
                                  context(runtime))
    finally:
        _poison_entries(runtime, False)
    assert [o.outcome for o in outcomes] == ["stored", "quarantined", "stored"]
    with runtime.db.session() as s:
        subjects = sorted(s.scalars(select(Entry.subject)))
        assert subjects == ["Broken bench", "Pothole on Oak"]
        routes = s.scalars(select(WorkItem.entry_id).where(WorkItem.kind == "route")).all()
        assert sorted(routes) == sorted(o.entry_id for o in outcomes if o.entry_id)
        row = s.scalars(select(QuarantinedMessage)).one()
        assert row.sha256 == outcomes[1].sha256 and not row.resolved
        kept = set(s.scalars(select(Entry.id)))
    messages = [r.getMessage() for r in caplog.records]
    logged_stored = [int(m.split()[4]) for m in messages if m.startswith("mail stored as entry")]
    logged_recorded = [int(m.split()[1]) for m in messages
                       if m.startswith("entry ") and " recorded (" in m]
    assert sorted(logged_stored) == sorted(kept)
    assert sorted(logged_recorded) == sorted(kept)
    assert sum(m.startswith("message quarantined") for m in messages) == 1


def test_reply_by_in_reply_to_from_the_submitter_joins_and_is_relayed(
        runtime: Runtime, first: MailOutcome) -> None:
    assert first.entry_id is not None
    _sent(runtime, first.entry_id, "<ack-1@intake.examplia.gov>")
    reply = mail(sender="ana@example.org", subject="Re: something else entirely",
                 body="Thanks, here is a photo.\n",
                 headers={"In-Reply-To": "<ack-1@intake.examplia.gov>"})
    outcome = ingest(runtime, reply)
    assert (outcome.outcome, outcome.entry_id, outcome.via, outcome.author) == (
        "thread-reply", first.entry_id, "in-reply-to", "submitter")
    assert outcome.record_number == first.record_number
    with runtime.db.session() as s:
        message = s.get(ThreadMessage, outcome.thread_message_id)
        assert message is not None and message.direction == "in"
        assert open_thread_message(s, message.id, runtime.originals_key) == reply
        relay = s.scalars(select(WorkItem).where(WorkItem.kind == "relay")).one()
        assert relay.dedupe_key == f"relay:{message.id}"
        assert relay.payload == {"thread_message_id": message.id}
        assert relay.entry_id == first.entry_id
        event = s.scalars(select(Event).where(Event.kind == "reply-received")).one()
        assert event.detail["thread_message_id"] == message.id
        assert s.scalar(select(func.count()).select_from(Entry)) == 1
    assert ingest(runtime, reply).outcome == "duplicate"


def test_record_tag_in_an_edited_subject_joins(runtime: Runtime, first: MailOutcome) -> None:
    reply = mail(sender="ANA@example.org",
                 subject=f"follow-up (was: pothole) [#{first.record_number}] urgent",
                 body="Any news?\n")
    outcome = ingest(runtime, reply)
    assert (outcome.outcome, outcome.via, outcome.author) == (
        "thread-reply", "record-tag", "submitter")


def test_agency_reply_to_the_relay_address_joins_and_is_relayed(
        runtime: Runtime, first: MailOutcome) -> None:
    assert first.entry_id is not None
    with runtime.db.session() as s:
        address = relay_for(s, first.entry_id, runtime.settings.relay_domain)
    outcome = ingest(runtime, mail(sender="Jo <jo@dot.examplia.gov>", to=address,
                                   subject="Re: your report", body="Fixed tomorrow.\n"))
    assert (outcome.outcome, outcome.via, outcome.author) == (
        "thread-reply", "relay-token", "agency")
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkItem)
                        .where(WorkItem.kind == "relay")) == 1


def test_unknown_sender_to_the_relay_address_joins_but_is_not_relayed(
        runtime: Runtime, first: MailOutcome) -> None:
    assert first.entry_id is not None
    with runtime.db.session() as s:
        address = relay_for(s, first.entry_id, runtime.settings.relay_domain)
    outcome = ingest(runtime, mail(sender="stranger@elsewhere.example", to=f"X <{address}>",
                                   body="Hello?\n"))
    assert (outcome.outcome, outcome.author) == ("thread-reply", "unknown")
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkItem)
                        .where(WorkItem.kind == "relay")) == 0
        event = s.scalars(select(Event).where(Event.kind == "reply-received")).one()
        assert event.detail["relayed"] is False


def test_a_third_party_reply_all_opens_a_new_related_entry(runtime: Runtime,
                                                           first: MailOutcome) -> None:
    assert first.entry_id is not None
    _sent(runtime, first.entry_id, "<ack-2@intake.examplia.gov>")
    outcome = ingest(runtime, mail(sender="neighbour@example.net", subject="Re: Pothole",
                                   body="Me too.\n",
                                   headers={"In-Reply-To": "<ack-2@intake.examplia.gov>"}))
    assert outcome.outcome == "stored" and outcome.entry_id != first.entry_id
    with runtime.db.session() as s:
        entry = s.get(Entry, outcome.entry_id)
        assert entry is not None and entry.fields["_related_record"] == first.record_number
        # The neighbour's address went to the new entry, not into Ana's thread.
        assert s.scalar(select(func.count()).select_from(ThreadMessage)) == 0


def test_auto_reply_in_a_thread_is_recorded_never_relayed(runtime: Runtime,
                                                          first: MailOutcome) -> None:
    assert first.entry_id is not None
    _sent(runtime, first.entry_id, "<fwd-1@intake.examplia.gov>")
    outcome = ingest(runtime, mail(sender="roads@dot.examplia.gov", subject="Out of office",
                                   body="I am away.\n",
                                   headers={"Auto-Submitted": "auto-replied",
                                            "In-Reply-To": "<fwd-1@intake.examplia.gov>"}))
    assert (outcome.outcome, outcome.author) == ("thread-reply", "auto")
    assert outcome.auto_submitted
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkItem)
                        .where(WorkItem.kind == "relay")) == 0
        assert s.scalars(select(Event.kind).where(Event.kind == "auto-reply-received")).one()


def test_unthreaded_auto_reply_is_stored_and_marked(runtime: Runtime) -> None:
    outcome = ingest(runtime, mail(subject="Automatic reply", body="Away.\n",
                                   headers={"X-Autoreply": "yes", "Precedence": "bulk"}))
    assert outcome.outcome == "stored" and outcome.auto_submitted
    with runtime.db.session() as s:
        entry = s.get(Entry, outcome.entry_id)
        assert entry is not None and entry.fields["_auto_submitted"] == outcome.auto_submitted


def test_bounce_of_a_message_we_sent_joins_its_entry(runtime: Runtime,
                                                     first: MailOutcome) -> None:
    assert first.entry_id is not None
    _sent(runtime, first.entry_id, "<fwd-9@intake.examplia.gov>")
    bounce = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: info@examplia.gov\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx.example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@y.example\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <fwd-9@intake.examplia.gov>\r\nSubject: Fwd\r\n"
        b"--B--\r\n")
    outcome = ingest(runtime, bounce)
    assert (outcome.outcome, outcome.entry_id, outcome.author) == (
        "thread-reply", first.entry_id, "auto")


def test_attachments_are_stored_with_hashes_and_types(runtime: Runtime) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "=?iso-8859-1?q?Se=F1al_rota?="
    msg.set_content("See attached.\n")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    msg.add_attachment(png, maintype="application", subtype="octet-stream",
                       filename="photo.png")
    outcome = ingest(runtime, msg.as_bytes())
    with runtime.db.session() as s:
        entry = s.get(Entry, outcome.entry_id)
        assert entry is not None and entry.subject == "Señal rota"
        att = s.scalars(select(Attachment)).one()
        assert (att.filename, att.declared_type, att.sniffed_type, att.size) == (
            "photo.png", "application/octet-stream", "image/png", len(png))
        assert att.content != png and len(att.sha256) == 64  # sealed
        opened = open_attachment(s, att.entry_id, att.id, runtime.originals_key)
        assert opened is not None and opened.content == png


def test_unstorable_bytes_are_quarantined_not_lost(runtime: Runtime) -> None:
    outcome = ingest(runtime, b"\r\n\r\n")
    assert outcome.outcome == "quarantined" and outcome.quarantine_id is not None
    again = ingest(runtime, b"\r\n\r\n")
    assert again.quarantine_id == outcome.quarantine_id
    with runtime.db.session() as s:
        row = s.get(QuarantinedMessage, outcome.quarantine_id)
        assert row is not None and row.attempts == 2 and row.raw != b"\r\n\r\n"  # sealed
        assert open_quarantined(row, runtime.originals_key) == b"\r\n\r\n"
        assert row.error_class == "UnstorableMessage"


def test_a_batch_stores_each_message_and_quarantines_only_the_bad_one(
        runtime: Runtime) -> None:
    """One transaction for the batch, with what the caller commits with it."""
    good = [mail(subject=f"Pothole {n}") for n in range(2)]
    batch = [ReceivedMail(good[0], uid=7), ReceivedMail(b"\r\n\r\n", uid=8),
             ReceivedMail(good[1], uid=9), ReceivedMail(good[0], uid=10)]
    seen: list[tuple[int | None, str]] = []

    def also(session: Session, done: Sequence[tuple[ReceivedMail, MailOutcome]]) -> None:
        assert session.in_transaction()
        seen.extend((m.uid, o.outcome) for m, o in done)

    outcomes = store_messages(runtime.db, batch, context(runtime), also=also)
    assert [o.outcome for o in outcomes] == ["stored", "quarantined", "stored", "duplicate"]
    assert seen == [(7, "stored"), (8, "quarantined"), (9, "stored"), (10, "duplicate")]
    assert outcomes[3].entry_id == outcomes[0].entry_id
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 2
        row = s.get(QuarantinedMessage, outcomes[1].quarantine_id)
        assert row is not None and row.uid == 8


def test_when_what_is_committed_with_a_batch_fails_nothing_of_it_is_stored(
        runtime: Runtime) -> None:
    """The poller's "last UID done" cannot be moved (its lease was lost): the messages
    are not stored either, and the caller fetches them again later."""
    class LeaseLost(Exception):
        """What the poller's ``also`` raises when another poller took the mailbox."""

    def also(session: Session, done: Sequence[tuple[ReceivedMail, MailOutcome]]) -> None:
        raise LeaseLost

    with pytest.raises(LeaseLost):
        store_messages(runtime.db, [ReceivedMail(mail(subject="A")),
                                    ReceivedMail(mail(subject="B"))], context(runtime),
                       also=also)
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0
        assert s.scalar(select(func.count()).select_from(WorkItem)) == 0


def _corpus() -> list[Path]:
    import test  # CPython's own test package, with its e-mail test data

    return sorted((Path(test.__file__).parent / "test_email" / "data").glob("msg_*.txt"))


def test_every_message_of_the_cpython_corpus_ingests_or_quarantines(runtime: Runtime) -> None:
    files = _corpus()
    if not files:
        pytest.skip("this Python has no test/test_email/data (python3-test not installed)")
    outcomes = {path.name: ingest(runtime, path.read_bytes()).outcome for path in files}
    assert set(outcomes.values()) <= {"stored", "quarantined", "duplicate"}
    stored = [n for n, o in outcomes.items() if o == "stored"]
    assert len(stored) >= len(files) - 3, outcomes


def run_ingest(tmp_path: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(INTAKE_DATABASE_URL=db, INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    return subprocess.run([sys.executable, "-m", "intake", "ingest", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ingest_command_eml_and_mbox_with_json(tmp_path: Path, sqlite_url: str) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(mail(subject="Broken light"))
    box = tmp_path / "two.mbox"
    box.write_bytes(b"From a@example.org Sat Jan  3 01:05:34 2026\n"
                    + mail(subject="First in mbox").replace(b"\r\n", b"\n") + b"\n"
                    + b"From b@example.org Sat Jan  3 01:05:35 2026\n"
                    + mail(subject="Second in mbox", sender="b@example.org").replace(
                        b"\r\n", b"\n") + b"\n")
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"\n\n")
    done = run_ingest(tmp_path, sqlite_url, "--json", str(eml), str(box), str(eml), str(empty))
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["outcome"] for r in rows] == ["stored", "stored", "stored", "duplicate",
                                            "quarantined"]
    assert rows[1]["file"].endswith("two.mbox#1") and rows[2]["file"].endswith("two.mbox#2")
    assert rows[3]["record_number"] == rows[0]["record_number"]
    assert rows[0]["record_number"].startswith("EX-")
    assert rows[4]["error_class"] == "UnstorableMessage"
    assert "Traceback" not in done.stderr


def test_ingest_command_pipelines_an_mbox_through_the_mail_pool(tmp_path: Path,
                                                                sqlite_url: str) -> None:
    """150 messages: two batches, the second parsed in the pool's workers while the first
    commits; an unstorable one is quarantined, the others stored, each once."""
    box = tmp_path / "many.mbox"
    with box.open("wb") as out:
        for n in range(150):
            raw = (b"\n" if n == 120 else
                   mail(subject=f"Report {n}", body=f"Pothole number {n}.\n"))
            out.write(b"From a@example.org Sat Jan  3 01:05:34 2026\n"
                      + raw.replace(b"\r\n", b"\n") + b"\n")
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_RULES=str(SMALL_RULES),
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_MAIL_WORKERS="2")
    done = subprocess.run([sys.executable, "-m", "intake", "ingest", "--json", str(box)],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"].rpartition("#")[2] for r in rows] == [str(n) for n in range(1, 151)]
    assert [r["outcome"] for r in rows] == ["stored"] * 120 + ["quarantined"] + ["stored"] * 29
    assert len({r["record_number"] for r in rows if r["outcome"] == "stored"}) == 149


def test_ingest_command_on_a_missing_file_fails_cleanly(tmp_path: Path, sqlite_url: str) -> None:
    done = run_ingest(tmp_path, sqlite_url, str(tmp_path / "nope.eml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "nope.eml" in done.stderr


def test_poll_without_mailboxes_says_what_to_set(tmp_path: Path, sqlite_url: str) -> None:
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url,
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run([sys.executable, "-m", "intake", "poll", "--once"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "INTAKE_IMAP_URL" in done.stderr
    assert "Traceback" not in done.stderr
