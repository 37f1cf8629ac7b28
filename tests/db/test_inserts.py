"""PreparedInsert: rows written on the DB-API cursor read back through the ORM exactly as
SQLAlchemy would have written them, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from intake.db import Database
from intake.db.inserts import InsertBatch, PreparedInsert
from intake.db.models import Entry, Event, WorkItem

_ENTRIES = cast(Table, Entry.__table__)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        database.dispose()


_COLUMNS = ("record_number", "channel", "kind", "form_slug", "received_at", "subject", "body",
            "fields", "status", "idempotency_key", "tags")


def _row(n: int, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "record_number": f"EX-2026-{n:06d}", "channel": "web", "kind": "contact",
        "form_slug": "contact", "subject": f"Subject {n} <script>alert(1)</script>",
        "body": "Ünïcødé \u2028 text\r\nwith lines", "fields": {"topic": "parks", "n": n,
                                                               "nested": [1, "two", None]},
        "status": "new", "idempotency_key": f"key-{n}", "tags": ["a", "b"],
        # Not UTC on purpose: the column's own bind processor converts it.
        "received_at": datetime(2026, 12, 1, 10, 0, n, 123456,
                                tzinfo=timezone(timedelta(hours=-5))),
    }
    row.update(over)
    return row


def test_rows_read_back_as_the_orm_writes_them(db: Database) -> None:
    prepared = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id", "idempotency_key"))
    with db.engine.begin() as conn:
        returned = prepared.run(conn, [_row(1), _row(2), _row(3)])
        # Row 1 again through SQLAlchemy, but for its unique columns.
        conn.execute(insert(_ENTRIES), [_row(1, idempotency_key="key-4",
                                             record_number="EX-2026-000004")])
    assert sorted(key for _, key in returned) == ["key-1", "key-2", "key-3"]
    with db.sessions() as s:
        entries = {e.idempotency_key: e for e in s.scalars(select(Entry))}
    ours, theirs = entries["key-1"], entries["key-4"]
    assert dict(returned)[ours.id] == "key-1"
    for name in ("channel", "kind", "form_slug", "subject", "body", "status", "tags",
                 "fields", "received_at"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.fields == {"topic": "parks", "n": 1, "nested": [1, "two", None]}
    # Stored alike too (SQLite keeps datetimes as text: queries compare that text).
    with db.engine.connect() as conn:
        stored = {r[0]: r[1:] for r in conn.exec_driver_sql(
            "SELECT idempotency_key, received_at, fields, tags FROM entries")}
    assert stored["key-1"] == stored["key-4"]
    assert ours.received_at == datetime(2026, 12, 1, 15, 0, 1, 123456, tzinfo=UTC)
    assert ours.received_at.utcoffset() == theirs.received_at.utcoffset() == timedelta(0)


def test_many_rows_without_returning_and_one_statement_per_chunk(db: Database) -> None:
    prepared = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id", "idempotency_key"))
    events = PreparedInsert(cast(Table, Event.__table__), ("entry_id", "kind", "at", "actor",
                                                           "detail"))
    with db.engine.begin() as conn:
        # More rows than one statement may carry parameters for: split, none lost.
        returned = prepared.run(conn, [_row(n % 60, idempotency_key=f"k{n}",
                                            record_number=f"EX-2026-{n:06d}")
                                       for n in range(3000)])
        assert len({i for i, _ in returned}) == 3000
        first = returned[0][0]
        events.run(conn, [{"entry_id": first, "kind": "received",
                           "at": datetime.now(UTC), "actor": "system",
                           "detail": {"n": n}} for n in range(50)])
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 3000
        assert sorted(e.detail["n"] for e in s.scalars(select(Event))) == list(range(50))


def test_errors_are_sqlalchemys_and_roll_back_with_the_transaction(db: Database) -> None:
    prepared = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id",))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        prepared.run(conn, [_row(1)])
        prepared.run(conn, [_row(2, idempotency_key="key-1")])
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0
    nothing = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id",),
                             on_conflict_nothing=("idempotency_key",))
    with db.engine.begin() as conn:
        assert len(nothing.run(conn, [_row(1)])) == 1
        assert nothing.run(conn, [_row(2, idempotency_key="key-1")]) == []


def test_refuses_what_would_silently_lose_a_default_or_a_transaction(db: Database) -> None:
    with pytest.raises(ValueError, match="Python-side default"):
        PreparedInsert(_ENTRIES, [c for c in _COLUMNS if c != "tags"])
    with pytest.raises(ValueError, match="required"):
        PreparedInsert(cast(Table, WorkItem.__table__), ("kind",))
    with pytest.raises(ValueError, match="no column"):
        PreparedInsert(_ENTRIES, (*_COLUMNS, "nope"))
    prepared = PreparedInsert(_ENTRIES, _COLUMNS)
    with pytest.raises(KeyError), db.engine.begin() as conn:  # a row without a column
        prepared.run(conn, [{k: v for k, v in _row(1).items() if k != "subject"}])
    with db.engine.connect() as conn, pytest.raises(RuntimeError, match="transaction"):
        prepared.run(conn, [_row(1)])
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0


def test_execute_returns_rows_and_raises_sqlalchemys_errors(db: Database) -> None:
    from sqlalchemy.exc import ProgrammingError

    from intake.db import allocate_record_numbers
    from intake.db.inserts import execute

    with db.engine.begin() as conn:
        when = datetime(2026, 12, 1, tzinfo=UTC)
        assert allocate_record_numbers(conn, "EX", [when, when]) == [
            "EX-2026-000001", "EX-2026-000002"]
        assert execute(conn, "SELECT last_value FROM record_counters WHERE prefix = ?",
                       ["EX"]) == [(2,)]
        assert execute(conn, "UPDATE record_counters SET last_value = 2 "
                             "WHERE prefix = ?", ["none"]) == []
    with pytest.raises((OperationalError, ProgrammingError)), db.engine.begin() as conn:
        execute(conn, "SELECT * FROM no_such_table")


def _statements(conn: Connection, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL each DB-API cursor of ``conn`` is asked to execute, from now on."""
    seen: list[str] = []
    cursor_of = conn.connection.dbapi_connection.cursor  # type: ignore[union-attr]

    class Counting:
        def __init__(self) -> None:
            self._cursor = cursor_of()

        def execute(self, sql: str, *args: object) -> object:
            seen.append(sql)
            return self._cursor.execute(sql, *args)

        def executemany(self, sql: str, *args: object) -> object:
            seen.append(sql)
            return self._cursor.executemany(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._cursor, name)

    monkeypatch.setattr(conn.connection, "cursor", Counting)
    return seen


_EVENT_COLUMNS = ("entry_id", "kind", "at", "actor", "detail")


def test_a_batch_writes_what_its_inserts_would_and_is_one_statement_on_postgresql(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id", "idempotency_key"))
    events = PreparedInsert(cast(Table, Event.__table__), _EVENT_COLUMNS)
    items = PreparedInsert(cast(Table, WorkItem.__table__), (
        "kind", "entry_id", "dedupe_key", "state", "attempts", "resends", "next_attempt_at",
        "enqueued_at", "payload", "created_at", "updated_at"), returning=("id", "dedupe_key"))
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with db.engine.begin() as conn:
        ids = [i for i, _ in entries.run(conn, [_row(1), _row(2)])]
        seen = _statements(conn, monkeypatch)
        returned: list[list[tuple[object, ...]]] = []
        batch = InsertBatch()
        batch.add(events, [{"entry_id": i, "kind": "received", "at": now, "actor": "system",
                            "detail": {"entry": i, "text": "<b>é</b>"}} for i in ids])
        batch.add(items, [{"kind": "route", "entry_id": i, "dedupe_key": f"route:{i}",
                           "state": "pending", "attempts": 0, "resends": 0,
                           "next_attempt_at": now, "enqueued_at": now, "payload": {},
                           "created_at": now, "updated_at": now} for i in ids],
                  then=returned.append)
        batch.add(events, [])  # nothing to write: left out
        batch.run(conn)
        assert len(seen) == (1 if db.dialect == "postgresql" else 2)
    assert len(returned) == 1
    assert sorted(key for _, key in returned[0]) == sorted(f"route:{i}" for i in ids)
    with db.sessions() as s:
        stored = {e.entry_id: e for e in s.scalars(select(Event))}
        assert sorted(stored) == sorted(ids)
        assert stored[ids[0]].detail == {"entry": ids[0], "text": "<b>é</b>"}
        assert stored[ids[0]].at == now
        work = {w.dedupe_key: w.id for w in s.scalars(select(WorkItem))}
    assert dict((key, i) for i, key in returned[0]) == work


def test_a_failing_insert_fails_the_whole_batch(db: Database) -> None:
    entries = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id",))
    events = PreparedInsert(cast(Table, Event.__table__), _EVENT_COLUMNS)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        [(entry_id,)] = entries.run(conn, [_row(1)])
        batch = InsertBatch()
        batch.add(events, [{"entry_id": entry_id, "kind": "received", "at": now,
                            "actor": "system", "detail": {}}])
        batch.add(entries, [_row(2, idempotency_key="key-1")], then=lambda rows: None)
        batch.run(conn)
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_a_batch_too_big_for_one_statement_runs_its_inserts_apart(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from intake.db import inserts

    entries = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id", "idempotency_key"))
    events = PreparedInsert(cast(Table, Event.__table__), _EVENT_COLUMNS)
    monkeypatch.setattr(inserts, "_MAX_PARAMETERS", 40)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with db.engine.begin() as conn:
        [(first, _)] = entries.run(conn, [_row(0)])
        returned: list[tuple[object, ...]] = []
        batch = InsertBatch()
        batch.add(events, [{"entry_id": first, "kind": "note", "at": now, "actor": "system",
                            "detail": {"n": n}} for n in range(30)])
        batch.add(entries, [_row(n) for n in range(1, 11)], then=returned.extend)
        batch.run(conn)
    assert sorted(key for _, key in returned) == sorted(f"key-{n}" for n in range(1, 11))
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 11
        assert s.scalar(select(func.count()).select_from(Event)) == 30


def test_a_batch_refuses_returning_it_cannot_hand_back() -> None:
    entries = PreparedInsert(_ENTRIES, _COLUMNS, returning=("id",))
    plain = PreparedInsert(_ENTRIES, _COLUMNS)
    batch = InsertBatch()
    with pytest.raises(ValueError, match="RETURNING"):
        batch.add(entries, [_row(1)])  # no `then`: its rows would be lost
    with pytest.raises(ValueError, match="RETURNING"):
        batch.add(plain, [_row(1)], then=lambda rows: None)
    batch.add(entries, [_row(1)], then=lambda rows: None)
    with pytest.raises(ValueError, match="only one"):
        batch.add(entries, [_row(2)], then=lambda rows: None)
