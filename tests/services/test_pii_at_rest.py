"""PII at rest: P6 values only in the sealed originals, and those encrypted per entry.

A person who confirms "send as is" on the form, or who mails an SSN, must
not leave it readable in a database dump: every table (the full-text index
included) holds the markers, the originals are AES-GCM ciphertexts under the
entry's own key, and deleting that key destroys them while the rest works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, inspect, select, text

from intake import create_app
from intake.core import sealing
from intake.core.pii import KINDS, SENSITIVE_KINDS, Finding, detect, redact
from intake.core.pii.at_rest import redact_at_rest
from intake.core.pii.redact import marker_for
from intake.core.rendition import Audience, EntryValues, render
from intake.db.mail_models import QuarantinedMessage
from intake.db.models import (
    Attachment,
    Entry,
    EntryKey,
    Original,
    PiiFinding,
    ThreadMessage,
    WorkItem,
)
from intake.runtime import Runtime
from intake.services.consent import verify_chains
from intake.services.findings import findings_for
from intake.services.links import relay_for
from intake.services.mail_intake import MailContext, ReceivedMail, store_messages
from intake.services.records import (
    OriginalUnavailable,
    open_original,
    open_thread_message,
)
from intake.settings import load_settings
from tests.conftest import (
    SMALL_RULES,
    SmtpSink,
    aged_token,
    contact_fields,
    csrf,
    login,
    make_account,
    make_settings,
    record_number_in,
    write_forms_file,
)

SSN = "536-22-8815"
CARD = "4539 1488 0343 6467"  # Luhn-valid
# What must appear nowhere: the values with and without separators...
SECRETS = (SSN, SSN.replace("-", ""), CARD, CARD.replace(" ", ""), CARD.replace(" ", "-"))
# ...and, in the full-text indexes, none of their parts as a term.
TERMS = {"536", "8815", "536228815", "4539", "1488", "0343", "6467", "4539148803436467"}


# -- the re-basing function ------------------------------------------------------------------


def _finding(kind: str, start: int, end: int) -> Finding:
    return Finding(kind=kind, start=start, end=end, detector="test", severity="high",
                   value_hash="h")


spans = st.tuples(st.sampled_from(KINDS), st.integers(0, 60), st.integers(0, 60))


@given(st.text(max_size=60), st.lists(spans, max_size=6))
def test_stored_text_is_the_p6_redaction_and_other_findings_still_line_up(
        value: str, raw: list[tuple[str, int, int]]) -> None:
    n = len(value)  # the detector's findings lie within the text
    findings = [_finding(kind, min(a, b, n), min(max(a, b), n)) for kind, a, b in raw]
    at_rest = redact_at_rest(value, findings)
    p6 = [f for f in findings if f.kind in SENSITIVE_KINDS]
    assert at_rest.text == redact(value, p6).text
    assert len(at_rest.findings) == len(findings)
    covered = [(f.start, f.end) for f in p6]
    for old, new in zip(findings, at_rest.findings, strict=True):
        assert new.kind == old.kind and 0 <= new.start <= new.end <= len(at_rest.text)
        start, end = old.start, old.end
        if old.kind in SENSITIVE_KINDS:
            if end > start:  # spans its marker (one of several merged, maybe)
                assert at_rest.text[new.start:new.end].startswith("[redacted: ")
                assert at_rest.text[new.start:new.end].endswith("]")
        elif not any(s < end and start < e or s == e == start for s, e in covered
                     if e > s):
            assert at_rest.text[new.start:new.end] == value[start:end]


def test_detected_values_become_markers_and_keep_their_kinds() -> None:
    value = f"Call 860-555-0142. SSN {SSN}, card {CARD}; write to ana@example.com"
    at_rest = redact_at_rest(value, detect(value, key=b"k" * 32))
    assert at_rest.text == ("Call 860-555-0142. SSN [redacted: Social Security number], "
                            "card [redacted: card number]; write to ana@example.com")
    shown = {f.kind: at_rest.text[f.start:f.end] for f in at_rest.findings}
    assert shown == {"phone": "860-555-0142", "ssn": marker_for("ssn"),
                     "card": marker_for("card"), "email": "ana@example.com"}
    # The records officer's rendition (staff view) marks the marker where it is stored.
    shown = render(EntryValues(texts={"body": at_rest.text}), Audience.RECORDS_OFFICER,
                   consents=[], findings={"body": at_rest.findings}, agency_id=None,
                   relay_address="reply+t@relay.example", at=datetime.now(UTC))
    assert [g.text for g in shown.segments["body"] if g.kind == "ssn"] == [marker_for("ssn")]


def test_sealed_values_open_only_with_their_key_and_place() -> None:
    key, other = sealing.new_data_key(), sealing.new_data_key()
    raw = b"message=" + SSN.encode() + bytes(range(256))
    context = sealing.original_context("a" * 64)
    sealed = sealing.seal(key, raw, context)
    assert SSN.encode() not in sealed and len(sealed) == len(raw) + 28
    assert sealing.unseal(key, sealed, context) == raw
    with pytest.raises(sealing.SealError):
        sealing.unseal(other, sealed, context)
    with pytest.raises(sealing.SealError):
        sealing.unseal(key, sealed, sealing.original_context("b" * 64))
    with pytest.raises(sealing.SealError):
        sealing.unseal(key, sealed[:-1] + bytes([sealed[-1] ^ 1]), context)


# -- a database dump -------------------------------------------------------------------------


def _cells(conn: Connection) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) of every cell of every table, FTS5 shadow tables included."""
    if conn.dialect.name == "sqlite":
        tables = list(conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
    else:
        tables = inspect(conn).get_table_names()
    assert "entry_keys" in tables
    for table in tables:
        result = conn.execute(text(f'SELECT * FROM "{table}"'))
        columns = list(result.keys())
        for row in result:
            for column, value in zip(columns, row, strict=True):
                yield table, column, value


def _index_terms(conn: Connection) -> set[str]:
    """Every term of the entries' full-text index."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms "
                          "USING fts5vocab(main, entries_fts, 'row')"))
        return set(conn.execute(text("SELECT term FROM temp.fts_terms")).scalars())
    terms = conn.execute(text("SELECT unnest(tsvector_to_array(search_vector)) FROM entries"))
    return {t.strip("-") for t in terms.scalars()}


def assert_dump_is_clean(rt: Runtime) -> None:
    """No secret in any cell (bytes included), no part of one in the full-text index."""
    seen_tables: set[str] = set()
    with rt.db.engine.connect() as conn:
        for table, column, value in _cells(conn):
            seen_tables.add(table)
            if isinstance(value, bytes | bytearray | memoryview):
                blob = bytes(value)
                found = [s for s in SECRETS if s.encode() in blob]
            else:
                shown = value if isinstance(value, str) else json.dumps(value, default=str)
                found = [s for s in SECRETS if s in shown]
            assert not found, f"{table}.{column} holds {found}"
        terms = _index_terms(conn)
    assert terms and not (terms & TERMS), terms & TERMS
    if rt.db.dialect == "sqlite":
        assert {"entries_fts_data", "entries_fts_idx"} <= seen_tables


def _route_all(rt: Runtime) -> None:
    """Run the routing of every new entry (what reads the texts after they are stored)."""
    with rt.db.session() as s:
        items = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
    for item in items:
        rt.jobs.perform(item, "test")


# -- over HTTP: the form, confirmed "send as is" ---------------------------------------------


def test_a_confirmed_ssn_and_card_are_nowhere_in_the_database_but_the_sealed_original(
        app: Flask, client: FlaskClient, rt: Runtime) -> None:
    message = f"My SSN is {SSN} and my card {CARD} was charged twice."
    fields = contact_fields(app, subject=f"Refund for {SSN}", message=message)
    warned = client.post("/forms/contact", data=fields).get_data(as_text=True)
    assert 'id="sensitive-warning"' in warned and record_number_in(warned) is None
    assert "a Social Security number" in warned and "card number" in warned
    confirmed = client.post("/forms/contact", data={**fields, "_confirm_sensitive": "1"})
    number = record_number_in(confirmed.get_data(as_text=True))
    # A feedback form keeps its free text in the entry's fields as well.
    feedback = client.post("/forms/feedback", data={
        "_token": aged_token(app, "feedback"), "rating": "2", "about": f"my SSN {SSN}",
        "comment": f"card {CARD}", "_confirm_sensitive": "1"})
    assert number and record_number_in(feedback.get_data(as_text=True))
    _route_all(rt)

    assert_dump_is_clean(rt)
    with rt.db.session() as s:
        entry = s.scalars(select(Entry).where(Entry.record_number == number)).one()
        assert entry.subject == f"Refund for {marker_for('ssn')}"
        assert entry.body == (f"My SSN is {marker_for('ssn')} and my card {marker_for('card')} "
                              "was charged twice.")
        # The findings still point at what is stored (the staff view highlights them).
        for place, stored in (("subject", entry.subject), ("body", entry.body)):
            for f in findings_for(s, entry.id, place):
                if f.kind in SENSITIVE_KINDS:
                    assert stored[f.start:f.end] == marker_for(f.kind)
        about = s.scalars(select(Entry.fields).where(Entry.form_slug == "feedback")).one()
        assert about["about"] == f"my SSN {marker_for('ssn')}"
        # The sealed original is the exact request, and only it holds the numbers.
        raw = open_original(s, entry.id, rt.originals_key)
        sealed = s.scalars(select(Original.raw).where(Original.entry_id == entry.id)).one()
    assert b"536-22-8815" in raw and b"4539+1488+0343+6467" in raw
    assert raw not in sealed and b"536-22-8815" not in sealed


def test_a_deleted_entry_key_destroys_the_original_and_nothing_else(
        app: Flask, client: FlaskClient, rt: Runtime) -> None:
    fields = contact_fields(app, message=f"SSN {SSN}", _confirm_sensitive="1")
    number = record_number_in(client.post("/forms/contact", data=fields).get_data(as_text=True))
    other = record_number_in(client.post("/forms/contact", data=contact_fields(
        app, message="The trail is still closed.")).get_data(as_text=True))
    with rt.db.session() as s:
        ids = {n: s.scalars(select(Entry.id).where(Entry.record_number == n)).one()
               for n in (number, other)}
        assert b"SSN" in open_original(s, ids[number], rt.originals_key)
        # Another entry's blob does not open under this entry's key, nor with another key.
        with pytest.raises(sealing.SealError):
            open_original(s, ids[number], sealing.new_data_key())
        blob, digest = s.execute(select(Original.raw, Original.sha256).where(
            Original.entry_id == ids[other])).one()
        wrapped = s.scalars(select(EntryKey.wrapped_key).where(
            EntryKey.entry_id == ids[number])).one()
        key = sealing.unseal(rt.originals_key, wrapped, sealing.WRAPPED_KEY_CONTEXT)
        with pytest.raises(sealing.SealError):
            sealing.unseal(key, blob, sealing.original_context(digest))
    with rt.db.session() as s:
        s.execute(delete(EntryKey).where(EntryKey.entry_id == ids[number]))
    with rt.db.session() as s:
        with pytest.raises(OriginalUnavailable):
            open_original(s, ids[number], rt.originals_key)
        assert open_original(s, ids[other], rt.originals_key).startswith(b"_token=")
        entry = s.get(Entry, ids[number])
        assert entry is not None and entry.body == f"SSN {marker_for('ssn')}"
        assert all(report.verdict.ok for report in verify_chains(s))
    _route_all(rt)
    with rt.db.session() as s:
        assert s.scalars(select(Entry.agency_id).where(Entry.id == ids[number])).one()


# -- by e-mail: a new entry and a reply ------------------------------------------------------


def _mail(subject: str, body: str, to: str = "info@examplia.gov") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ana Pérez <ana@example.org>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((subject, body)))}@example.org>"
    msg.set_content(body)
    return msg.as_bytes()


def test_an_emailed_ssn_and_its_reply_are_sealed_and_redacted(runtime: Runtime) -> None:
    context = MailContext.from_settings(runtime.settings, "info", pii_key=runtime.pii_key)
    first = _mail(f"SSN {SSN}", f"My SSN is {SSN}, card {CARD}. Please fix the pothole.\n")
    stored = store_messages(runtime.db, [ReceivedMail(first)], context)[0]
    assert stored.outcome == "stored" and stored.entry_id is not None
    with runtime.db.session() as s:
        relay = relay_for(s, stored.entry_id, runtime.settings.relay_domain)
    reply = _mail("Re: pothole", f"Sorry, the right one is {CARD} (SSN {SSN}).\n", to=relay)
    joined = store_messages(runtime.db, [ReceivedMail(reply)], context)[0]
    assert joined.outcome == "thread-reply" and joined.thread_message_id is not None
    _route_all(runtime)

    assert_dump_is_clean(runtime)
    with runtime.db.session() as s:
        assert open_original(s, stored.entry_id, runtime.originals_key) == first
        assert open_thread_message(s, joined.thread_message_id, runtime.originals_key) == reply
        message = s.get(ThreadMessage, joined.thread_message_id)
        assert message is not None
        assert message.body.strip() == (f"Sorry, the right one is {marker_for('card')} "
                                        f"(SSN {marker_for('ssn')}).")
        place = f"thread:{message.id}:body"
        kinds = s.execute(select(PiiFinding.kind, PiiFinding.start, PiiFinding.end).where(
            PiiFinding.place == place)).all()
        assert {k for k, _, _ in kinds} == {"card", "ssn"}
        assert all(message.body[a:b] == marker_for(k) for k, a, b in kinds)
        # The same bytes again are a duplicate: the SHA-256 is of the plaintext.
    assert store_messages(runtime.db, [ReceivedMail(first)], context)[0].outcome == "duplicate"


def test_without_a_secret_key_the_originals_key_is_kept_in_the_instance_folder(
        tmp_path: Path) -> None:
    env = {"INTAKE_INSTANCE_PATH": str(tmp_path / "instance")}
    first, second = load_settings(env), load_settings(env)
    assert first.secret_key != second.secret_key  # random per process...
    assert first.originals_key() == second.originals_key()  # ...the originals still open
    key_file = tmp_path / "instance" / "originals.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    configured = load_settings({**env, "INTAKE_SECRET_KEY": "s" * 40})
    assert configured.originals_key() not in (first.originals_key(), b"s" * 32)
    assert configured.originals_key() == load_settings(
        {**env, "INTAKE_SECRET_KEY": "s" * 40}).originals_key()


# -- attachments and quarantined messages ----------------------------------------------------


AGENCY_EMAIL = {"governor": "constituent@governor.examplia.gov",  # as in SMALL_RULES
                "dot": "intake@dot.examplia.gov", "parks": "hello@parks.examplia.gov"}
NOTE = f"Statement\nSSN: {SSN}\ncard: {CARD}\n".encode()


@pytest.fixture
def mailing(tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Runtime]:
    settings = make_settings(tmp_path, db_url, INTAKE_FORMS=str(write_forms_file(tmp_path)),
                             INTAKE_FORM_RATE_LIMIT="1000/minute", INTAKE_RULES=str(SMALL_RULES),
                             INTAKE_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
                             INTAKE_MAIL_FROM="intake@examplia.gov",
                             INTAKE_RELAY_DOMAIN="relay.examplia.gov",
                             INTAKE_PUBLIC_URL="https://intake.examplia.gov")
    runtime = Runtime(settings)
    runtime.rules.load()
    yield runtime
    runtime.close()


def _run_all(rt: Runtime) -> None:
    """Run every due work item, and those they add (route, then forward and receipt)."""
    done: set[int] = set()
    while True:
        with rt.db.session() as s:
            todo = set(s.scalars(select(WorkItem.id))) - done
        if not todo:
            return
        for item in sorted(todo):
            rt.jobs.perform(item, "test")
        done |= todo


def _attachment_of(rt: Runtime, entry_id: int) -> int:
    with rt.db.session() as s:
        return s.scalars(select(Attachment.id).where(Attachment.entry_id == entry_id)).one()


def test_attachments_are_sealed_and_open_for_staff_and_the_forward_until_the_key_goes(
        mailing: Runtime, sink: SmtpSink) -> None:
    rt = mailing
    app = create_app(runtime=rt)
    form = app.test_client()
    fields = contact_fields(app, message="See the attached statement.")
    posted = form.post("/forms/contact", content_type="multipart/form-data", data={
        **fields, "attachments": [(BytesIO(NOTE), "statement.txt")]})
    number = record_number_in(posted.get_data(as_text=True))
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ana@example.org", "info@examplia.gov", "Refund"
    msg.set_content("My statement is attached.\n")
    msg.add_attachment(NOTE, maintype="text", subtype="plain", filename="statement.txt")
    context = MailContext.from_settings(rt.settings, "info", pii_key=rt.pii_key)
    mailed = store_messages(rt.db, [ReceivedMail(msg.as_bytes())], context)[0]
    assert number and mailed.outcome == "stored" and mailed.entry_id is not None
    with rt.db.session() as s:
        web_id = s.scalars(select(Entry.id).where(Entry.record_number == number)).one()
    assert_dump_is_clean(rt)

    _route_all(rt)
    with rt.db.session() as s:
        agency = {r.id: r.agency_id for r in s.execute(select(Entry.id, Entry.agency_id))}
    staff = {}
    for entry_id in (web_id, mailed.entry_id):
        staff[entry_id] = app.test_client()
        login(staff[entry_id], make_account(rt, f"agent{entry_id}@examplia.gov",
                                            agency[entry_id]))
        got = staff[entry_id].get(
            f"/staff/entries/{entry_id}/attachments/{_attachment_of(rt, entry_id)}")
        assert got.status_code == 200 and got.data == NOTE
    # The e-mailed entry's key is destroyed before its forward goes out.
    with rt.db.session() as s:
        s.execute(delete(EntryKey).where(EntryKey.entry_id == mailed.entry_id))
    _run_all(rt)
    forwards = [m.message for m in sink.to(AGENCY_EMAIL[agency[web_id]])]
    assert len(forwards) == 1 and number in str(forwards[0]["Subject"])
    files = [(p.get_filename(), p.get_payload(decode=True))
             for p in forwards[0].iter_attachments()]
    assert files == [("statement.txt", NOTE)]
    with rt.db.session() as s:
        dead = s.execute(select(WorkItem.state, WorkItem.last_error).where(
            WorkItem.entry_id == mailed.entry_id, WorkItem.kind != "route")).all()
    assert [(state, "original destroyed" in (error or "")) for state, error in dead
            if state != "done"] == [("dead", True)]
    gone = staff[mailed.entry_id].get(f"/staff/entries/{mailed.entry_id}/attachments/"
                     f"{_attachment_of(rt, mailed.entry_id)}")
    assert gone.status_code == 410 and "destroyed" in gone.get_data(as_text=True)
    assert_dump_is_clean(rt)


def _poison_entries(rt: Runtime, on: bool) -> None:
    """A trigger that refuses entries whose subject says POISON: the message is quarantined."""
    with rt.db.session() as s:
        if rt.db.dialect == "sqlite":
            s.execute(text("DROP TRIGGER IF EXISTS poison"))
            if on:
                s.execute(text("CREATE TRIGGER poison BEFORE INSERT ON entries "
                               "WHEN NEW.subject LIKE '%POISON%' "
                               "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))
            return
        s.execute(text("DROP TRIGGER IF EXISTS poison ON entries"))
        if on:
            s.execute(text("CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                           "IF NEW.subject LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned'; "
                           "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            s.execute(text("CREATE TRIGGER poison BEFORE INSERT ON entries "
                           "FOR EACH ROW EXECUTE FUNCTION poison()"))


def test_a_quarantined_message_is_sealed_and_a_retry_still_stores_it(rt: Runtime,
                                                                      app: Flask) -> None:
    raw = _mail("POISON pothole", f"My SSN is {SSN}, card {CARD}.\n")
    context = MailContext.from_settings(rt.settings, "info", pii_key=rt.pii_key)
    # An entry besides: the dump check wants a full-text index with terms.
    store_messages(rt.db, [ReceivedMail(_mail("Streetlight", "The streetlight is out.\n"))],
                   context)
    _poison_entries(rt, True)
    try:
        outcome = store_messages(rt.db, [ReceivedMail(raw)], context)[0]
    finally:
        _poison_entries(rt, False)
    assert outcome.outcome == "quarantined" and outcome.quarantine_id is not None
    assert_dump_is_clean(rt)
    admin = app.test_client()
    login(admin, make_account(rt, "root@governor.examplia.gov", "governor",
                              role="system_admin"))
    retried = admin.post(f"/staff/admin/quarantine/{outcome.quarantine_id}/retry",
                         data={"csrf_token": csrf(admin)})
    assert retried.status_code == 303
    with rt.db.session() as s:
        row = s.get(QuarantinedMessage, outcome.quarantine_id)
        assert row is not None and row.resolved
        entry_id = s.scalars(select(Entry.id).where(Entry.subject == "POISON pothole")).one()
        assert open_original(s, entry_id, rt.originals_key) == raw
    assert_dump_is_clean(rt)
