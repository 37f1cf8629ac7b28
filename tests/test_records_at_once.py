"""The form writer's ways without a session: the one-statement PostgreSQL path writes exactly
what the statement-a-step path writes; SQLite's batches go on a Core connection."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from intake.db import Database, WriterQueue
from intake.services import privacy
from intake.services.forms import (
    FormSubmission,
    PendingSubmission,
    form_writer,
    load_forms_file,
    new_submission,
    packaged_forms_path,
)
from intake.services.privacy import detect_places
from intake.services.records import (
    NewSubmission,
    SubmitterData,
    open_original,
    record_submission,
    record_submissions,
    stored_texts,
)
from intake.services.records_at_once import at_once_input, record_at_once
from tests.conftest import ORIGINALS_KEY, _truncate_postgres, wait_for

KEY = b"k" * 32
CONTACT = load_forms_file(packaged_forms_path()).forms["contact"]
WHEN = datetime(2026, 12, 1, 15, 30, 0, 123456, tzinfo=UTC)


def _submission(n: int, *, raw: str | None = None, who: bool = True,
                body: str = "The north trail is closed.", year: int = 2026) -> NewSubmission:
    return NewSubmission(
        channel="web", kind="contact", raw=(raw or f"raw bytes {n}").encode(),
        content_type="application/x-www-form-urlencoded", subject=f"Subject {n}\r\n<b>x</b>",
        body=body, form_slug="contact", fields={"topic": "parks", "lang": "es", "n": n},
        submitter=SubmitterData(name=f"Persona {n} Ñ", email=f"p{n}@example.com",
                                phone="860 555 0142", postal_address=None) if who
        else SubmitterData(),
        received_at=WHEN.replace(year=year))


def _batch() -> list[NewSubmission]:
    return [
        _submission(1, body="My SSN is 123-45-6789 and my card 4111 1111 1111 1111."),
        _submission(2, who=False),
        _submission(3, raw="raw bytes 1"),  # the same bytes as the first: a duplicate
        _submission(5, body="born 04/05/1961 (date of birth)"),
    ]


def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the writes made, ids replaced by record numbers, times they set left out."""
    queries = {
        "entries": "SELECT record_number, channel, kind, form_slug, received_at, subject, body, "
                   "fields::text, status, agency_id, idempotency_key, tags::text FROM entries",
        "submitters": "SELECT e.record_number, s.name, s.email, s.phone, s.postal_address "
                      "FROM submitters s JOIN entries e ON e.id = s.entry_id",
        # o.raw: sealed under a random key (below: opened).
        "originals": "SELECT e.record_number, o.content_type, o.sha256, o.size, "
                     "o.received_at FROM originals o JOIN entries e ON e.id = o.entry_id",
        "entry_keys": "SELECT e.record_number, k.created_at, length(k.wrapped_key) "
                      "FROM entry_keys k JOIN entries e ON e.id = k.entry_id",
        "events": "SELECT e.record_number, v.kind, v.at, v.actor, v.detail::text "
                  "FROM events v JOIN entries e ON e.id = v.entry_id",
        "pii_findings": "SELECT e.record_number, f.place, f.kind, f.start, f.\"end\", "
                        "f.detector, f.severity, f.value_hash "
                        "FROM pii_findings f JOIN entries e ON e.id = f.entry_id",
        "work_items": "SELECT e.record_number, w.kind, replace(w.dedupe_key, e.id::text, "
                      "e.record_number), w.state, w.attempts, w.resends, w.payload::text, "
                      "w.next_attempt_at = w.created_at, w.enqueued_at = w.created_at, "
                      "w.updated_at = w.created_at "
                      "FROM work_items w JOIN entries e ON e.id = w.entry_id",
        "access_links": "SELECT e.record_number, a.token_sha256 "
                        "FROM access_links a JOIN entries e ON e.id = a.entry_id",
        "record_counters": "SELECT prefix, year, last_value FROM record_counters",
    }
    with db.engine.connect() as conn:
        tables = {name: sorted(tuple(r) for r in conn.execute(text(sql)))
                  for name, sql in queries.items()}
        tables["opened originals"] = sorted(
            (number, open_original(conn, entry_id, ORIGINALS_KEY))
            for entry_id, number in conn.execute(text("SELECT id, record_number FROM entries")))
        return tables


def _findings(batch: list[NewSubmission]) -> list[dict[str, list[Any]]]:
    return [detect_places(stored_texts(s), KEY) for s in batch]


def _digests(count: int, batch: str = "") -> list[str]:
    return [privacy.access_token_digest(f"token {batch} {n}") for n in range(count)]


def _step_by_step(db: Database, batch: list[NewSubmission]) -> list[tuple[str, bool]]:
    """The statement-a-step path, with the same status-link digests as the other."""
    with db.session() as session:
        recorded = record_submissions(session, batch, "EX", _findings(batch),
                originals_key=ORIGINALS_KEY)
        now = datetime.now(UTC)
        privacy.ACCESS_LINKS_INSERT.run(session.connection(), [
            privacy.access_link_row(digest, rec.entry_id, now)
            for digest, rec in zip(_digests(len(batch)), recorded, strict=True)])
    return [(r.record_number, r.created) for r in recorded]


def _at_once(db: Database, batch: list[NewSubmission],
             links: str = "") -> list[tuple[str, bool]] | None:
    with db.engine.connect() as conn:
        now = datetime.now(UTC)
        outcomes = record_at_once(conn.execution_options(isolation_level="AUTOCOMMIT"), [
            at_once_input(conn.dialect, s, f, d, now,
                    originals_key=ORIGINALS_KEY) for s, f, d in zip(
                batch, _findings(batch), _digests(len(batch), links), strict=True)], "EX")
    if outcomes is None:
        return None
    return [(o.recorded.record_number, o.recorded.created) for o in outcomes]


def _store_one_before(db: Database) -> None:
    with db.session() as session:
        record_submission(session, _submission(0, raw="stored before"), "EX", pii_key=KEY,
                originals_key=ORIGINALS_KEY)


def test_one_statement_writes_row_for_row_what_the_steps_write(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        _store_one_before(db)
        stepped = _step_by_step(db, _batch())
        by_steps = _tables(db)
        _truncate_postgres(pg_url)
        _store_one_before(db)
        at_once = _at_once(db, _batch())
        assert at_once == stepped == [
            ("EX-2026-000002", True), ("EX-2026-000003", True), ("EX-2026-000002", False),
            ("EX-2026-000004", True)]
        assert _tables(db) == by_steps
        kinds = {row[2] for row in by_steps["pii_findings"]}
        assert {"ssn", "card", "birth_date"} <= kinds  # the findings travelled too
        assert len(by_steps["access_links"]) == 4 and len(by_steps["work_items"]) == 4
    finally:
        db.dispose()


def test_a_duplicate_of_a_stored_entry_writes_nothing_and_is_left_to_the_steps(
        pg_url: str) -> None:
    db = Database(pg_url)
    try:
        with db.session() as session:
            stored = record_submission(session, new_submission(_page(b"sent before")), "EX",
                    originals_key=ORIGINALS_KEY)
        before = _tables(db)
        assert _at_once(db, [new_submission(_page(b"new")),
                             new_submission(_page(b"sent before"))]) is None
        assert _tables(db) == before  # nothing written, the counter unmoved
        writer = form_writer(db, record_prefix="EX", pii_key=KEY, originals_key=ORIGINALS_KEY)
        answers = [writer.write(PendingSubmission(_page(b"new"), {})),
                   writer.write(PendingSubmission(_page(b"sent before"), {}))]
        assert writer.stats.batches == 2  # the duplicate's batch, written by the steps
        assert [(a.record_number, a.created) for a in answers] == [
            ("EX-2026-000002", True), (stored.record_number, False)]
        assert stored.record_number == "EX-2026-000001"
        assert _tables(db)["record_counters"] == [("EX", 2026, 2)]
        assert len(_tables(db)["access_links"]) == 2  # each page its status link
    finally:
        db.dispose()


def test_the_first_submission_of_a_year_creates_its_counter(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        assert _at_once(db, [_submission(1), _submission(2)]) == [
            ("EX-2026-000001", True), ("EX-2026-000002", True)]
        assert _tables(db)["record_counters"] == [("EX", 2026, 2)]
    finally:
        db.dispose()


def test_a_batch_across_new_year_is_left_to_the_steps(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        assert _at_once(db, [_submission(1, year=2026), _submission(2, year=2027)]) is None
        assert all(rows == [] for rows in _tables(db).values())
    finally:
        db.dispose()


def _page(raw: bytes, subject: str = "Subject") -> FormSubmission:
    return FormSubmission(
        form=CONTACT, raw=raw, content_type="application/x-www-form-urlencoded",
        subject=subject, body="Body", fields={"topic": "parks", "lang": "en"},
        submitter=SubmitterData(name="A", email="a@example.com"))


def _pages(count: int) -> list[PendingSubmission]:
    return [PendingSubmission(_page(f"page {n}".encode(), f"Subject {n}"), {})
            for n in range(count)]


def _three_pages_queued_behind_a_held_turn(writer: Any, lock: Path) -> list[Any]:
    """Three pages written while another queue on ``lock`` (as another process of the host
    would) holds the writers' turn; their confirmations."""
    confirmations: dict[int, Any] = {}
    pages = _pages(3)

    def write(n: int) -> None:
        confirmations[n] = writer.write(pages[n])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    with WriterQueue(lock).turn():
        for t in threads:
            t.start()
        wait_for(lambda: len(writer._queue) == 3, message="three pages queued")
    for t in threads:
        t.join(timeout=30)
    return [confirmations[n] for n in range(3)]


def _assert_one_batch_of_three(db: Database, writer: Any, confirmations: list[Any],
                               sent_item_ids: list[int]) -> None:
    """One batch wrote the three; their work items' messages were handed on; each
    page's status link leads to its entry."""
    assert writer.stats.batches == 1 and writer.stats.largest == 3
    assert sorted(c.record_number for c in confirmations) == [
        "EX-2026-000001", "EX-2026-000002", "EX-2026-000003"]
    with db.engine.connect() as conn:
        items = sorted(conn.exec_driver_sql(
            "SELECT id FROM work_items WHERE kind = 'route'").scalars())
    assert sorted(sent_item_ids) == items and len(items) == 3
    with db.sessions() as s:
        for c in confirmations:
            assert privacy.entry_for_access_token(s, c.status_token) == c.entry_id


def test_form_batches_on_postgresql_go_in_one_statement_and_send_their_work(
        pg_url: str, tmp_path: Any) -> None:
    """Three pages queued while another process of the host holds the writers' turn are
    one batch: one statement, on the writer's own connection, no session; the new work
    items' messages are handed on once it committed, after the turn."""
    db = Database(pg_url)
    sent: list[tuple[int, datetime]] = []
    lock = tmp_path / "form-writer.lock"
    writer = form_writer(db, record_prefix="EX", pii_key=KEY, turn_lock=lock,
                         send_committed=sent.extend, originals_key=ORIGINALS_KEY)
    checkouts: list[str] = []
    statements: list[str] = []
    event.listen(db.engine, "checkout", lambda *_args: checkouts.append("checkout"))
    event.listen(db.sessions, "after_begin", lambda *_args: statements.append("session"))
    try:
        confirmations = _three_pages_queued_behind_a_held_turn(writer, lock)
        assert checkouts == ["checkout"] and statements == []  # its connection, no session
        _assert_one_batch_of_three(db, writer, confirmations, [i for i, _due in sent])
    finally:
        writer.close()
        db.dispose()


def test_the_form_writers_connection_lost_or_idle_is_replaced(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed under it: the batch is written once more on a new connection. Idle: it goes
    back to the pool, which tests it before use."""
    import intake.services.forms

    db = Database(pg_url)
    writer = form_writer(db, record_prefix="EX", pii_key=KEY, originals_key=ORIGINALS_KEY)
    admin = Database(pg_url)

    def kill_the_writers_connection() -> None:
        assert writer._conn is not None
        pid = writer._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})").scalar()

    try:
        first, second, third = _pages(3)
        assert writer.write(first).created
        kill_the_writers_connection()
        assert writer.write(second).created
        assert writer.stats.reconnected == 1
        monkeypatch.setattr(intake.services.forms, "PING_AFTER_IDLE_SECONDS", 0.0)
        monkeypatch.setattr(intake.db, "PING_AFTER_IDLE_SECONDS", 0.0)
        kill_the_writers_connection()
        assert writer.write(third).created
        assert writer.stats.reconnected == 1  # the pool's test found it dead, not the write
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM entries").scalar() == 3
    finally:
        writer.close()
        admin.dispose()
        db.dispose()


def test_the_statement_reads_no_entries_whatever_the_statistics(pg_url: str) -> None:
    """The plan a connection caches is kept until the table is analysed again (never, if
    autovacuum is off): one made while the entries were few must not scan them, or every
    submission costs more than the one before. The statement reads no entries at all;
    here is its generic plan, made on a table never analysed."""
    from intake.services.records_at_once import _statement

    db = Database(pg_url)
    try:
        with db.engine.connect() as conn:
            sql = _statement(conn.dialect)
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            cursor.execute("PREPARE batch (text, int, bigint, text, json, bigint, json, json) "
                           f"AS {numbered}")
            cursor.execute("EXPLAIN EXECUTE batch ('EX', 2026, 1, 'EX-2026-', '[]', 1, '[]', "
                           "'[]')")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("DEALLOCATE batch")
            conn.rollback()
        on_entries = [line.strip() for line in plan.splitlines() if " on entries" in line]
        assert on_entries and all(line.startswith("->  Insert on entries")
                                  for line in on_entries), plan
    finally:
        db.dispose()


def test_a_double_click_that_reached_another_process_first_gets_that_entry(
        pg_url: str) -> None:
    """Another process stores the same page while the statement waits on its row: the
    statement fails with nothing written, and the steps answer with the stored entry."""
    page = _page(b"the same page, clicked twice")
    db = Database(pg_url)
    other = Database(pg_url)
    try:
        with db.session() as session:  # the counter row exists, as after any submission
            record_submission(session, _submission(0), "EX", originals_key=ORIGINALS_KEY)
        first_click = other.sessions()
        first_click.begin()
        stored = record_submission(first_click, new_submission(page), "EX",
                originals_key=ORIGINALS_KEY)  # not committed
        answers: list[Any] = []

        writer = form_writer(db, record_prefix="EX", pii_key=KEY, originals_key=ORIGINALS_KEY)

        def second_click() -> None:
            answers.append(writer.write(PendingSubmission(page, {})))

        clicked = threading.Thread(target=second_click)
        clicked.start()
        def second_waits_on_first() -> bool:
            # A transaction of its own each time: pg_stat_activity is read once a transaction.
            with db.engine.connect() as conn:
                return bool(conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).scalar())

        wait_for(second_waits_on_first, timeout=10,
                 message="the second click waiting on the first")
        first_click.commit()
        first_click.close()
        clicked.join(timeout=30)
        assert len(answers) == 1 and not answers[0].created
        assert answers[0].record_number == stored.record_number == "EX-2026-000002"
        assert writer.stats.batches == 1  # by the steps, after the statement failed
        writer.close()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM entries").scalar() == 2
            assert conn.exec_driver_sql("SELECT last_value FROM record_counters").scalar() == 2
    finally:
        other.dispose()
        db.dispose()


def test_sqlite_form_batches_go_on_a_connection_and_send_their_work_after_the_turn(
        sqlite_url: str) -> None:
    """SQLite: pages queued while another process holds the write turn are one batch, in
    one transaction of a Core connection (no ORM session); their work items' messages
    are handed on once the batch committed and the turn is released."""
    db = Database(sqlite_url)
    writers = db.writers
    assert writers is not None and writers.lock_path is not None
    sent: list[tuple[int, bool]] = []
    writer = form_writer(db, record_prefix="EX", pii_key=KEY,
                         send_committed=lambda sends: sent.extend(
                             (item_id, writers._owner is None) for item_id, _due in sends),
                                     originals_key=ORIGINALS_KEY)
    sessions: list[str] = []
    event.listen(db.sessions, "after_begin", lambda *_args: sessions.append("session"))
    try:
        confirmations = _three_pages_queued_behind_a_held_turn(writer, Path(writers.lock_path))
        assert sessions == []
        _assert_one_batch_of_three(db, writer, confirmations, [i for i, _ in sent])
        assert all(released for _, released in sent)  # sent with the turn released
    finally:
        writer.close()
        db.dispose()
