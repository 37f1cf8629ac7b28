"""Recording a batch of submissions in one PostgreSQL statement, without BEGIN or COMMIT.

:func:`intake.services.records.record_submissions` writes a batch with a
statement a step: the duplicates' SELECT, the record counter's UPDATE, the
entries' INSERT, their dependents (one statement since
:class:`intake.db.prepared.InsertBatch`), each a round trip, plus BEGIN and
COMMIT, and on PostgreSQL every statement costs the client (psycopg) and the
server more CPU than the rows it writes. Here the whole batch is one
statement of data-modifying ``WITH`` queries, sent on a connection in
autocommit mode: one round trip, and one statement is one transaction, so it
is written entirely or not at all.

What it writes is what :func:`record_submissions` writes, row for row (the
values go through the same column bind processors; a test compares the two
paths' tables): the entries that are new, numbered in order with no gap
(the counter row is upserted by the statement and stays locked until it
ends); their submitter, sealed original and its wrapped key, "received"
event, PII findings and "route" work item; and a status link for every submission, duplicates
included. A duplicate of one earlier in the batch is answered with that
entry. Each submission's part of the statement's input (:class:`AtOnceInput`)
is made before the batch is (:func:`at_once_input`), so the writer that
holds the turn only joins the parts.

The statement does not look for stored duplicates: the entries' unique index
on the idempotency key finds them, as it must anyway for a concurrent writer.
A lookup would leave the choice between that index and a scan of the entries
to the planner, on statistics that may be stale: a plan cached while the
table was small (and kept until the next ANALYZE, never if autovacuum is
off) scanned every entry for every submission, so each one cost more than
the one before. A submission whose bytes are stored already (sent again, a
double click that reached another process) makes the statement fail on that
index with nothing written; :func:`record_at_once` then answers
None and the caller writes the batch the statement-a-step way, which answers
the duplicate with the entry stored first. Such a failure is logged by the
PostgreSQL server as an ERROR (a unique violation of
``uq_entries_idempotency_key``; the key is a digest, not the text).

Used for form submissions on PostgreSQL that all fall in one calendar year
and carry no attachment or consent (those go through the ORM); anything
else takes the statement-a-step path.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from psycopg import Binary
from psycopg.types.json import Json
from sqlalchemy import Connection, LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from intake.core.pii import Finding
from intake.db.prepared import PreparedInsert, execute
from intake.services import privacy
from intake.services import work as workitems
from intake.services.records import (
    ENTRY_INSERT,
    EVENT_INSERT,
    KEY_INSERT,
    ORIGINAL_INSERT,
    SUBMITTER_INSERT,
    NewSubmission,
    Recorded,
    prepare,
)

__all__ = ["AtOnce", "AtOnceInput", "at_once_input", "can_record_at_once", "record_at_once"]

log = logging.getLogger("intake.records")

#: Larger batches take the statement-a-step path.
MAX_AT_ONCE = 64

#: The unique index that finds a stored duplicate (see the module's text).
STORED_KEY_CONSTRAINT = "uq_entries_idempotency_key"


def _constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint the server says ``exc`` violated."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


@dataclass(frozen=True)
class AtOnce:
    """One submission's outcome: the entry, and the id of its new "route" work item."""

    recorded: Recorded
    work_item_id: int | None


def can_record_at_once(dialect: str, submissions: Sequence[object]) -> bool:
    return dialect == "postgresql" and 0 < len(submissions) <= MAX_AT_ONCE


def _columns(insert: PreparedInsert, *skip: str) -> tuple[str, ...]:
    return tuple(c for c in insert.columns if c not in skip)


# Every value travels in the input documents (JSON arrays: one object a new entry, its keys
# the column names with a prefix a table; one a PII finding; one a status link); each
# INSERT takes its own columns from them.
_PLAIN = (str, int, bool, float, type(None))  # as the documents carry them


@dataclass(frozen=True)
class _Part:
    """The columns of one INSERT that the documents carry, keyed ``prefix + name``."""

    prefix: str
    insert: PreparedInsert
    names: tuple[str, ...]

    @cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.prefix + n for n in self.names)

    @cached_property
    def places(self) -> tuple[int, ...]:
        """Where each column's value stands in the insert's bound values."""
        return tuple(self.insert.columns.index(n) for n in self.names)

    def fields(self, dialect: Dialect, row: Mapping[str, Any] | None) -> dict[str, Any]:
        """``row``'s values as the insert binds them (all None without a row), as the
        documents carry them."""
        if row is None:
            return dict.fromkeys(self.keys)
        values = self.insert.bind(dialect, row)
        out = {}
        for key, place in zip(self.keys, self.places, strict=True):
            value = values[place]
            out[key] = value if type(value) in _PLAIN else _jsonable(value)
        return out


_ENTRY = _Part("e_", ENTRY_INSERT, _columns(ENTRY_INSERT, "record_number"))
_SUBMITTER = _Part("s_", SUBMITTER_INSERT, _columns(SUBMITTER_INSERT, "entry_id"))
_ORIGINAL = _Part("o_", ORIGINAL_INSERT, _columns(ORIGINAL_INSERT, "entry_id"))
_KEY = _Part("k_", KEY_INSERT, _columns(KEY_INSERT, "entry_id"))
_EVENT = _Part("v_", EVENT_INSERT, _columns(EVENT_INSERT, "entry_id"))
# The work item's dedupe key is made from the entry's id by the statement.
_ITEM = _Part("w_", workitems.WORK_ITEMS_INSERT,
              _columns(workitems.WORK_ITEMS_INSERT, "entry_id", "dedupe_key"))
_FINDING = _Part("", privacy.FINDINGS_INSERT, _columns(privacy.FINDINGS_INSERT, "entry_id"))
_LINK = _Part("", privacy.ACCESS_LINKS_INSERT, _columns(privacy.ACCESS_LINKS_INSERT, "entry_id"))
_GROUPS = (_ENTRY, _SUBMITTER, _ORIGINAL, _KEY, _EVENT, _ITEM)  # one object a new entry


def _record_type(insert: PreparedInsert, name: str, dialect: Dialect) -> str:
    """The column's type in the input record (bytes travel as base64 text)."""
    column_type = insert.table.c[name].type
    if isinstance(column_type, String):
        # Not VARCHAR(n): a conversion to it would cut a long value that the column refuses.
        return "text"
    if isinstance(column_type, LargeBinary):
        return "text"
    return str(column_type.compile(dialect=dialect))


def _taken(insert: PreparedInsert, value: str, name: str) -> str:
    """``value`` (the input's field of column ``name``) as the column takes it."""
    if isinstance(insert.table.c[name].type, LargeBinary):
        return f"decode({value}, 'base64')"
    return value


def _jsonable(value: Any) -> Any:
    """A bound value as the input document carries it."""
    if isinstance(value, Json | Binary):  # psycopg's wrappers of JSON and bytea values
        value = value.obj
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


_SQL: dict[str, str] = {}


def _statement(dialect: Dialect) -> str:
    """The statement; its parameters: the counter's prefix, year and increment (the number
    of new entries), the record numbers' prefix, the entries document, the increment
    again, the findings document and the links document.

    Its text does not depend on the batch, so psycopg and the server prepare it once.
    Each new entry is given its number ``n`` (1, 2, ...) in the documents by the caller;
    the statement draws the entries' and work items' ids from their sequences, so every
    INSERT reads the new entries' one table (``fresh``) and none waits for another's
    RETURNING: a plan with no join but the findings' and the links'.
    """
    sql = _SQL.get(dialect.name)
    if sql is not None:
        return sql
    quote = dialect.identifier_preparer.quote

    def record(lead: str, *parts: _Part) -> str:
        """The input record's columns: ``lead``, then the parts' fields."""
        return ", ".join([lead] + [
            f"{quote(part.prefix + name)} {_record_type(part.insert, name, dialect)}"
            for part in parts for name in part.names])

    def cols(part: _Part) -> str:
        return ", ".join(quote(n) for n in part.names)

    def taken(part: _Part, source: str) -> str:
        return ", ".join(_taken(part.insert, f"{source}.{quote(part.prefix + n)}", n)
                         for n in part.names)

    parts = [
        # Takes the counter row (created at the year's first submission) and keeps it locked
        # until the statement ends: the numbers are consecutive, in the order of commits.
        "bump AS (INSERT INTO record_counters (prefix, year, last_value) VALUES (?, ?, ?) "
        "ON CONFLICT (prefix, year) DO UPDATE "
        "SET last_value = record_counters.last_value + excluded.last_value "
        "RETURNING last_value)",
        # The new entries, numbered after the counter's value before the bump; their ids
        # drawn only once the counter is this statement's (from the bump's row).
        "fresh AS (SELECT x.*, ? || CASE WHEN v.number < 1000000 "
        "THEN lpad(v.number::text, 6, '0') ELSE v.number::text END AS record_number, "
        "nextval('entries_id_seq'::regclass) AS id, "
        "nextval('work_items_id_seq'::regclass) AS item_id "
        "FROM bump b CROSS JOIN json_to_recordset(?::json) "
        f"AS x({record('n int, has_submitter boolean', *_GROUPS)}) "
        "CROSS JOIN LATERAL (SELECT b.last_value - ? + x.n AS number) v)",
        f"new AS (INSERT INTO entries (id, record_number, {cols(_ENTRY)}) "
        f"SELECT f.id, f.record_number, {taken(_ENTRY, 'f')} FROM fresh f)",
        f"submitters AS (INSERT INTO submitters (entry_id, {cols(_SUBMITTER)}) "
        f"SELECT f.id, {taken(_SUBMITTER, 'f')} FROM fresh f WHERE f.has_submitter)",
        f"originals AS (INSERT INTO originals (entry_id, {cols(_ORIGINAL)}) "
        f"SELECT f.id, {taken(_ORIGINAL, 'f')} FROM fresh f)",
        f"keys AS (INSERT INTO entry_keys (entry_id, {cols(_KEY)}) "
        f"SELECT f.id, {taken(_KEY, 'f')} FROM fresh f)",
        f"events AS (INSERT INTO events (entry_id, {cols(_EVENT)}) "
        f"SELECT f.id, {taken(_EVENT, 'f')} FROM fresh f)",
        f"items AS (INSERT INTO work_items (id, entry_id, dedupe_key, {cols(_ITEM)}) "
        f"SELECT f.item_id, f.id, 'route:' || f.id, {taken(_ITEM, 'f')} FROM fresh f)",
        f"findings AS (INSERT INTO pii_findings (entry_id, {cols(_FINDING)}) "
        f"SELECT f.id, {taken(_FINDING, 'x')} "
        f"FROM json_to_recordset(?::json) AS x({record('n int', _FINDING)}) "
        "JOIN fresh f ON f.n = x.n)",
        # Every submission's page gets its own status link, a duplicate's to the first's entry.
        f"links AS (INSERT INTO access_links (entry_id, {cols(_LINK)}) "
        f"SELECT f.id, {taken(_LINK, 'x')} "
        f"FROM json_to_recordset(?::json) AS x({record('n int', _LINK)}) "
        "JOIN fresh f ON f.n = x.n)",
    ]
    sql = _SQL[dialect.name] = (
        "WITH " + ",\n".join(parts) + "\nSELECT f.n, f.id, f.record_number, f.item_id FROM fresh f")
    return sql


@dataclass(frozen=True)
class AtOnceInput:
    """One submission as the statement takes it: made by :func:`at_once_input` before the
    batch is taken (outside any writer's turn), joined into the batch's documents then."""

    submission: NewSubmission
    key: str  # the idempotency key: the same bytes again in a batch are one entry
    year: int
    entry: str  # its object of the entries document, as JSON, without "n"
    findings: tuple[str, ...]  # its objects of the findings document, likewise
    link: str  # its object of the links document, likewise


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False)


def at_once_input(dialect: Dialect, submission: NewSubmission,
                  findings: Mapping[str, Sequence[Finding]], link_digest: str,
                  now: datetime, *, originals_key: bytes) -> AtOnceInput:
    """``submission``'s part of a batch: its rows, bound as the columns bind them (the same
    processors as :class:`PreparedInsert`), its PII ``findings`` (the caller's scan,
    re-based like the texts by :func:`prepare`), its original sealed (``originals_key``:
    as for :func:`intake.services.records.record_submission`) and its status link's token
    digest; ``now``: the work item's and the link's time."""
    p = prepare(submission, findings, originals_key)
    submitter = p.submitter_row(0)
    entry = {
        "has_submitter": submitter is not None,
        **_ENTRY.fields(dialect, p.entry_row("")),
        **_SUBMITTER.fields(dialect, submitter),
        **_ORIGINAL.fields(dialect, p.original_row(0)),
        **_KEY.fields(dialect, p.key_row(0)),
        **_EVENT.fields(dialect, p.event_row(0)),
        **_ITEM.fields(dialect, workitems.route_item_row(0, now)),
    }
    found = tuple(_json(_FINDING.fields(dialect, f)) for f in privacy.finding_rows(0, p.findings))
    link = _LINK.fields(dialect, privacy.access_link_row(link_digest, 0, now))
    return AtOnceInput(submission, p.key, p.received_at.year, _json(entry), found, _json(link))


def _document(objects: Sequence[tuple[int, str]]) -> str:
    """A JSON array of the objects (JSON texts), each given its "n" first."""
    return "[" + ",".join(f'{{"n":{n},{text[1:]}' for n, text in objects) + "]"


def record_at_once(conn: Connection, inputs: Sequence[AtOnceInput],
                   record_prefix: str) -> list[AtOnce] | None:
    """Record the submissions of ``inputs`` in one statement on ``conn`` (PostgreSQL,
    autocommit); their outcomes in order.

    None, with nothing written, when the submissions span more than one year
    (the counter moves per year) or one of them is stored already: the caller
    then uses :func:`intake.services.records.record_submissions`.
    """
    if not can_record_at_once(conn.dialect.name, inputs):
        raise ValueError("record_at_once: PostgreSQL, 1 to "
                         f"{MAX_AT_ONCE} submissions")
    years = {i.year for i in inputs}
    if len(years) != 1:
        return None
    year = years.pop()
    # Each new entry's number in the batch; a submission whose bytes came earlier in the
    # batch is the same entry.
    numbers: dict[str, int] = {}
    fresh: list[AtOnceInput] = []
    for i in inputs:
        if i.key not in numbers:
            fresh.append(i)
            numbers[i.key] = len(fresh)
    params = [record_prefix, year, len(fresh), f"{record_prefix}-{year}-",
              _document([(n, i.entry) for n, i in enumerate(fresh, 1)]), len(fresh),
              _document([(n, f) for n, i in enumerate(fresh, 1) for f in i.findings]),
              _document([(numbers[i.key], i.link) for i in inputs])]
    try:
        rows = execute(conn, _statement(conn.dialect), params)
    except IntegrityError as exc:
        if _constraint(exc) != STORED_KEY_CONSTRAINT:
            raise
        # One of them is stored already (sent again, or by another process meanwhile):
        # nothing was written; the steps answer it with the stored entry.
        log.info("form batch: a duplicate of a stored entry, written step by step")
        return None
    made = {int(n): (int(entry_id), str(number), int(item_id))
            for n, entry_id, number, item_id in rows}
    out = []
    for i, first in zip(inputs, _firsts(inputs), strict=True):
        entry_id, record_number, item_id = made[numbers[i.key]]
        if first:
            log.info("entry %s recorded (%s, %s)", entry_id, i.submission.channel,
                     i.submission.kind)
        out.append(AtOnce(Recorded(entry_id, record_number, created=first),
                          item_id if first else None))
    return out


def _firsts(inputs: Sequence[AtOnceInput]) -> list[bool]:
    seen: set[str] = set()
    out = []
    for i in inputs:
        out.append(i.key not in seen)
        seen.add(i.key)
    return out

