"""The public-record store on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError

from intake.db import Database, allocate_record_numbers
from intake.db.metadata import metadata
from intake.db.models import Entry, Event, Original, Submitter, WorkItem
from intake.services.records import (
    NewSubmission,
    SubmitterData,
    open_original,
    record_submissions,
)
from tests.conftest import ORIGINALS_KEY


def test_migrations_and_models_agree(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        db.dispose()


def _submission(**kw: object) -> NewSubmission:
    values: dict[str, object] = {
        "channel": "web", "kind": "contact", "raw": b'{"message": "hello"}',
        "content_type": "application/json", "subject": "Hello", "body": "A pothole on Route 9",
        "form_slug": "contact", "fields": {"topic": "transportation"},
        "submitter": SubmitterData(name="Ada Lovelace", email="ada@example.org"),
    }
    values.update(kw)
    return NewSubmission(**values)  # type: ignore[arg-type]


def test_record_submission_stores_everything_once(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            first = record_submissions(s, [_submission()],
                record_prefix="EX", originals_key=ORIGINALS_KEY)[0]
        with db.session() as s:
            again = record_submissions(s, [_submission()], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
        assert first.created and not again.created
        assert again.record_number == first.record_number
        year = datetime.now(UTC).year
        assert first.record_number == f"EX-{year}-000001"
        with db.session() as s:
            entry = s.get(Entry, first.entry_id)
            assert entry is not None and entry.status == "new"
            assert s.scalar(select(func.count()).select_from(Entry)) == 1
            sub = s.scalar(select(Submitter))
            assert sub is not None and sub.email == "ada@example.org"
            original = s.scalar(select(Original))
            raw = open_original(s, first.entry_id, ORIGINALS_KEY)
            assert original is not None and raw == b'{"message": "hello"}'
            assert original.sha256 == hashlib.sha256(raw).hexdigest()
            kinds = s.scalars(select(Event.kind)).all()
            assert kinds == ["received"]
            items = s.scalars(select(WorkItem)).all()
            assert [(i.kind, i.state, i.entry_id) for i in items] == [
                ("route", "pending", first.entry_id)]
            # The entry text holds no submitter field: PII lives in one place.
            assert "ada@example.org" not in (entry.subject + entry.body + str(entry.fields))
    finally:
        db.dispose()


def test_crlf_in_subject_is_flattened(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            rec = record_submissions(s, [_submission(subject="Hi\r\nBcc: evil@example.com")],
                                     record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0]
        with db.session() as s:
            entry = s.get(Entry, rec.entry_id)
            assert entry is not None and entry.subject == "Hi Bcc: evil@example.com"
    finally:
        db.dispose()


@pytest.mark.parametrize("statement", [
    "UPDATE originals SET raw = :junk",
    "DELETE FROM originals",
    "UPDATE events SET kind = 'forged'",
    "DELETE FROM events",
])
def test_sealed_original_and_timeline_are_append_only(db_url: str, statement: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            record_submissions(s, [_submission()], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
        with pytest.raises(DBAPIError, match="append-only"):
            with db.session() as s:
                s.execute(text(statement), {"junk": b"x"} if ":junk" in statement else {})
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Original)) == 1
            entry_id = s.scalar(select(Original.entry_id))
            assert entry_id is not None
            assert open_original(s, entry_id, ORIGINALS_KEY) == b'{"message": "hello"}'
    finally:
        db.dispose()


def _allocate_concurrently(url: str, threads: int, per_thread: int) -> list[str]:
    db = Database(url)
    numbers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    when = datetime(2026, 5, 1, tzinfo=UTC)

    def run() -> None:
        start.wait()
        try:
            for _ in range(per_thread):
                with db.session() as s:
                    n = allocate_record_numbers(s, "EX", [when])[0]
                with lock:
                    numbers.append(n)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    db.dispose()
    assert errors == []
    return numbers


def test_concurrent_record_numbers_postgres(pg_url: str) -> None:
    numbers = _allocate_concurrently(pg_url, threads=8, per_thread=200)
    assert len(numbers) == 1600
    assert len(set(numbers)) == 1600
    assert sorted(numbers) == [f"EX-2026-{i:06d}" for i in range(1, 1601)]


def test_concurrent_record_numbers_sqlite(sqlite_url: str) -> None:
    numbers = _allocate_concurrently(sqlite_url, threads=8, per_thread=50)
    assert len(set(numbers)) == 400
    assert sorted(numbers) == [f"EX-2026-{i:06d}" for i in range(1, 401)]


def test_record_numbers_restart_each_year(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            a = allocate_record_numbers(s, "EX", [datetime(2025, 12, 31, tzinfo=UTC)])[0]
            b = allocate_record_numbers(s, "EX", [datetime(2026, 1, 1, tzinfo=UTC)])[0]
            c = allocate_record_numbers(s, "EX", [datetime(2026, 1, 2, tzinfo=UTC)])[0]
        assert (a, b, c) == ("EX-2025-000001", "EX-2026-000001", "EX-2026-000002")
    finally:
        db.dispose()


def test_duplicate_submission_leaves_no_gap_in_record_numbers(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            first = record_submissions(s, [_submission()], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
            again = record_submissions(s, [_submission()], record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0]  # same bytes, same transaction
        with db.session() as s:
            later = record_submissions(s, [_submission(raw=b'{"message": "other"}')],
                record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0]
        year = datetime.now(UTC).year
        assert (first.created, again.created, later.created) == (True, False, True)
        assert again.entry_id == first.entry_id
        assert [first.record_number, later.record_number] == [
            f"EX-{year}-000001", f"EX-{year}-000002"]
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Entry)) == 2
            assert s.scalar(select(func.count()).select_from(WorkItem)) == 2
    finally:
        db.dispose()


def test_concurrent_duplicates_are_one_entry(db_url: str) -> None:
    """Eight writers send the same bytes (and one new message each) at once: every
    duplicate finds the one entry, and the record numbers have no gap."""
    db = Database(db_url)
    results: list[tuple[str, bool, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def run(n: int) -> None:
        start.wait()
        try:
            for raw in (b"the same bytes", f"writer {n}".encode()):
                with db.session() as s:
                    rec = record_submissions(s, [_submission(raw=raw)], record_prefix="EX",
                            originals_key=ORIGINALS_KEY)[0]
                with lock:
                    results.append((raw.decode(), rec.created, rec.record_number))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    try:
        assert errors == []
        same = [r for r in results if r[0] == "the same bytes"]
        assert sum(created for _, created, _ in same) == 1
        assert len({number for _, _, number in same}) == 1
        year = datetime.now(UTC).year
        assert sorted({number for _, _, number in results}) == [
            f"EX-{year}-{i:06d}" for i in range(1, 10)]
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Entry)) == 9
    finally:
        db.dispose()


def test_sqlite_writers_queue_on_a_lock_file_across_processes(sqlite_url: str) -> None:
    """While one process holds its turn, another cannot take the lock file; after, it can."""
    import subprocess
    import sys

    db = Database(sqlite_url)
    assert db.writers is not None and db.writers.lock_path is not None
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    print('busy')\n"
        "else:\n"
        "    print('free')\n"
    )

    def other_process_sees() -> str:
        out = subprocess.run([sys.executable, "-c", probe, str(db.writers.lock_path)],
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout.strip()

    try:
        with db.session() as s:
            record_submissions(s, [_submission()], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
            assert other_process_sees() == "busy"
        assert other_process_sees() == "free"
    finally:
        db.dispose()


def test_record_submissions_writes_a_batch_like_one_at_a_time(db_url: str) -> None:
    from intake.core.pii import detect
    from intake.db.models import PiiFinding
    from intake.services.records import record_submissions, stored_texts

    db = Database(db_url)
    year = datetime.now(UTC).year
    try:
        with db.session() as s:
            a = record_submissions(s, [_submission(raw=b"a")], record_prefix="EX",
                originals_key=ORIGINALS_KEY)[0]
        batch = [
            _submission(raw=b"b", body="My SSN is 123-45-6789"),
            _submission(raw=b"a"),                       # stored before
            _submission(raw=b"c", submitter=SubmitterData()),  # anonymous
            _submission(raw=b"b"),                       # same bytes as the first
            _submission(raw=b"d", received_at=datetime(2025, 12, 31, 23, 0, tzinfo=UTC)),
        ]
        batch = [replace(x, findings={"body": detect(stored_texts(x)["body"], key=b"k")})
                 for x in batch]
        with db.session() as s:
            out = record_submissions(s, batch, record_prefix="EX", originals_key=ORIGINALS_KEY)
        assert [r.created for r in out] == [True, False, True, False, True]
        assert out[1] == a.__class__(a.entry_id, a.record_number, created=False)
        assert out[3].entry_id == out[0].entry_id
        assert [out[0].record_number, out[2].record_number, out[4].record_number] == [
            f"EX-{year}-000002", f"EX-{year}-000003", "EX-2025-000001"]
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Entry)) == 4
            assert s.scalar(select(func.count()).select_from(Original)) == 4
            assert s.scalar(select(func.count()).select_from(Submitter)) == 3
            assert s.scalar(select(func.count()).select_from(Event)) == 4
            items = s.scalars(select(WorkItem.dedupe_key).order_by(WorkItem.id)).all()
            assert items == [f"route:{r.entry_id}" for r in (a, out[0], out[2], out[4])]
            kinds = s.execute(select(PiiFinding.entry_id, PiiFinding.kind)).all()
            assert [(e, k) for e, k in kinds if k == "ssn"] == [(out[0].entry_id, "ssn")]
            body = s.scalar(select(Entry.body).where(Entry.id == out[0].entry_id))
            # Stored at rest with its marker; the finding re-based onto it.
            assert body == "My SSN is [redacted: Social Security number]"
            ssn = s.execute(select(PiiFinding.start, PiiFinding.end).where(
                PiiFinding.kind == "ssn")).one()
            assert body[ssn.start:ssn.end] == "[redacted: Social Security number]"
    finally:
        db.dispose()


def test_duplicates_inside_a_batch_of_one_year_leave_no_gap_in_the_numbers(
        db_url: str) -> None:
    """New submissions around stored ones get consecutive numbers; a batch of nothing
    but stored ones draws none (on PostgreSQL the counter and the entries are one
    statement, so the numbers are put right afterwards)."""
    db = Database(db_url)
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    try:
        with db.session() as s:
            [a] = record_submissions(s, [_submission(raw=b"a", received_at=when)],
                                     record_prefix="EX", originals_key=ORIGINALS_KEY)
        batch = [_submission(raw=raw, received_at=when) for raw in (b"b", b"a", b"c", b"b")]
        with db.session() as s:
            out = record_submissions(s, batch, record_prefix="EX", originals_key=ORIGINALS_KEY)
        assert [r.created for r in out] == [True, False, True, False]
        assert (out[1].entry_id, out[3].entry_id) == (a.entry_id, out[0].entry_id)
        assert [a.record_number, out[0].record_number, out[2].record_number] == [
            "EX-2026-000001", "EX-2026-000002", "EX-2026-000003"]
        with db.session() as s:
            again = record_submissions(s, [_submission(raw=b"c", received_at=when),
                                           _submission(raw=b"a", received_at=when)],
                                       record_prefix="EX", originals_key=ORIGINALS_KEY)
            assert [r.record_number for r in again] == ["EX-2026-000003", "EX-2026-000001"]
            [d] = record_submissions(s, [_submission(raw=b"d", received_at=when)],
                                     record_prefix="EX", originals_key=ORIGINALS_KEY)
        assert d.record_number == "EX-2026-000004"
        with db.session() as s:
            numbers = sorted(s.scalars(select(Entry.record_number)))
        assert numbers == [f"EX-2026-{n:06d}" for n in range(1, 5)]
    finally:
        db.dispose()


def test_record_numbers_past_a_million_keep_every_digit(db_url: str) -> None:
    db = Database(db_url)
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    try:
        with db.session() as s:
            allocate_record_numbers(s, "EX", [when])
            s.execute(text("UPDATE record_counters SET last_value = 999999"))
        with db.session() as s:
            out = record_submissions(s, [_submission(raw=b"x", received_at=when),
                                         _submission(raw=b"y", received_at=when)],
                                     record_prefix="EX", originals_key=ORIGINALS_KEY)
        assert [r.record_number for r in out] == ["EX-2026-1000000", "EX-2026-1000001"]
    finally:
        db.dispose()


def test_what_a_writer_turn_deferred_runs_even_if_its_body_raises(tmp_path: Path) -> None:
    """A session committed inside an outer turn left its job messages for after it: the
    outer body failing later must not lose them (they would wait for the sweeper)."""
    from intake.db import WriterQueue

    turns = WriterQueue(tmp_path / "lock")
    ran: list[str] = []
    with pytest.raises(RuntimeError), turns.turn():
        with turns.turn():
            turns.after_turn(lambda: ran.append("sent"))
        assert ran == []  # the outer turn is still held
        raise RuntimeError("the outer body fails after the inner commit")
    assert ran == ["sent"]
    turns.after_turn(lambda: ran.append("now"))  # no turn held: at once
    assert ran == ["sent", "now"]


def test_utc_datetimes_bind_on_sqlite_as_sqlalchemy_would() -> None:
    from datetime import timedelta, timezone

    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    from intake.db.models import UTCDateTime

    dialect = sqlite.dialect()
    column = UTCDateTime()
    ours = column.dialect_impl(dialect).bind_processor(dialect)
    reference = TypeDecorator.bind_processor(column.dialect_impl(dialect), dialect)
    assert ours is not None and reference is not None
    assert ours.__qualname__.startswith("UTCDateTime.bind_processor")  # the one-step path
    values = [
        datetime(2026, 12, 1, 20, 10, 25, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 20, 10, 25, tzinfo=UTC),  # no microseconds: still written
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # a year of one digit: still four
        datetime(999, 7, 4, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 8, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        None,
    ]
    for value in values:
        assert ours(value) == reference(value), value
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 1, 1))


def _old_entry(conn: Connection, subject: str, body: str) -> None:
    """Entry 1 as a release before sealing stored it: plain SQL, no record store."""
    conn.execute(text(
        "INSERT INTO entries (id, record_number, channel, kind, received_at, subject, body, "
        "fields, status, idempotency_key, tags) VALUES (1, 'EX-2026-000001', 'web', 'contact', "
        "'2026-01-01 00:00:00', :subject, :body, '{}', 'new', 'k1', '[]')"),
        {"subject": subject, "body": body})


def test_migration_0011_indexes_existing_entries_without_their_contact_data(
        tmp_path: Path) -> None:
    """Entries stored before 0011 get a search text without the citizen's name, address
    or phone, and the rebuilt index finds them by their other words only."""
    from intake.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0010")
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            _old_entry(conn, "Pothole, from Ada Lovelace",
                       "Pothole on Route 9; write to ada@example.org")
            conn.execute(text("INSERT INTO submitters (entry_id, name, email) "
                              "VALUES (1, 'Ada Lovelace', 'ada@example.org')"))
        upgrade(url)
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT search_text FROM entries")).scalar_one()
            assert "Pothole" in stored and "Route 9" in stored
            assert "Ada" not in stored and "Lovelace" not in stored and "ada@" not in stored

            def found(words: str) -> list[int]:
                return list(conn.execute(text(
                    "SELECT rowid FROM entries_fts WHERE entries_fts MATCH :q"),
                    {"q": words}).scalars())

            assert found("pothole") == [1] and found('"route" "9"') == [1]
            assert found("lovelace") == [] and found('"ada"') == []
    finally:
        db.dispose()


def test_originals_and_attachments_stored_before_sealing_still_open(tmp_path: Path) -> None:
    """An upgrade loses nothing: bytes written before sealing (revisions 0008, 0010) are
    recognised by their own SHA-256 and open as they are; the sealed ones still need the key."""
    from intake.db.migrate import upgrade
    from intake.services.records import open_attachment, open_original

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0007")
    raw, content = b"From: a@example.org\r\n\r\nold message", b"old attachment"
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            _old_entry(conn, "Old", "old message")
            conn.execute(text(
                "INSERT INTO originals (entry_id, content_type, raw, sha256, size, received_at) "
                "VALUES (1, 'message/rfc822', :raw, :sha, :size, '2026-01-01 00:00:00')"),
                {"raw": raw, "sha": hashlib.sha256(raw).hexdigest(), "size": len(raw)})
            conn.execute(text(
                "INSERT INTO attachments (id, entry_id, filename, declared_type, sniffed_type, "
                "size, sha256, content, inline, created_at) VALUES (1, 1, 'a.txt', "
                "'text/plain', 'text/plain', :size, :sha, :content, 0, '2026-01-01 00:00:00')"),
                {"content": content, "sha": hashlib.sha256(content).hexdigest(),
                 "size": len(content)})
        upgrade(url)
        with db.engine.connect() as conn:
            assert open_original(conn, 1, ORIGINALS_KEY) == raw
            opened = open_attachment(conn, 1, 1, ORIGINALS_KEY)
            assert opened is not None and opened.content == content
    finally:
        db.dispose()
