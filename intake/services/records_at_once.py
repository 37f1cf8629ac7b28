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
(the counter row is updated by the statement and stays locked until it
ends); their submitter, sealed original, "received" event, PII findings and
"route" work item; and a status link for every submission, duplicates
included. A duplicate of one earlier in the batch is answered with that
entry.

The statement does not look for stored duplicates: the entries' unique index
on the idempotency key finds them, as it must anyway for a concurrent writer.
A lookup would leave the choice between that index and a scan of the entries
to the planner, on statistics that may be stale: a plan cached while the
table was small (and kept until the next ANALYZE, never if autovacuum is
off) scanned every entry for every submission, so each one cost more than
the one before. A submission whose bytes are stored already (sent again, a
double click that reached another process) makes the statement fail on that
index with nothing written; :func:`record_submissions_at_once` then answers
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
from typing import Any

from psycopg import Binary
from psycopg.types.json import Json
from sqlalchemy import Connection, LargeBinary, String
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from intake.core.pii import Finding
from intake.db import ensure_record_counter
from intake.db.prepared import PreparedInsert, execute
from intake.jobs import workitems
from intake.services import privacy
from intake.services.records import (
    ENTRY_INSERT,
    EVENT_INSERT,
    ORIGINAL_INSERT,
    SUBMITTER_INSERT,
    NewSubmission,
    Recorded,
    prepare,
)

__all__ = ["AtOnce", "can_record_at_once", "record_submissions_at_once"]

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


def _values(insert: PreparedInsert, dialect: Dialect, row: Mapping[str, Any],
            names: Sequence[str]) -> list[Any]:
    """``row``'s values for ``names`` (in ``insert``'s column order), as ``insert`` binds them."""
    wanted = set(names)
    return [v for c, v in zip(insert.columns, insert.bind(dialect, row), strict=True)
            if c in wanted]


# Every value travels in the input document (a JSON array, one object a submission, its
# keys the column names with a prefix a table); each INSERT takes its own columns from it,
# and the entry's id from the entry it inserted.
_ENTRY = _columns(ENTRY_INSERT, "record_number")
_SUBMITTER = _columns(SUBMITTER_INSERT, "entry_id")
_ORIGINAL = _columns(ORIGINAL_INSERT, "entry_id")
_EVENT = _columns(EVENT_INSERT, "entry_id")
_FINDING = _columns(privacy.FINDINGS_INSERT, "entry_id")
_ITEM = _columns(workitems.WORK_ITEMS_INSERT, "entry_id")
_ITEM_INPUT = _columns(workitems.WORK_ITEMS_INSERT, "entry_id", "dedupe_key")  # key: from the id
_LINK = _columns(privacy.ACCESS_LINKS_INSERT, "entry_id")
_GROUPS = (("e_", ENTRY_INSERT, _ENTRY), ("s_", SUBMITTER_INSERT, _SUBMITTER),
           ("o_", ORIGINAL_INSERT, _ORIGINAL), ("v_", EVENT_INSERT, _EVENT),
           ("w_", workitems.WORK_ITEMS_INSERT, _ITEM_INPUT),
           ("l_", privacy.ACCESS_LINKS_INSERT, _LINK))


def _record_type(insert: PreparedInsert, name: str, dialect: Dialect) -> str:
    """The column's type in the input record (bytes travel as base64 text)."""
    column_type = insert.table.c[name].type
    if isinstance(column_type, String):
        # Not VARCHAR(n): a conversion to it would cut a long value that the column refuses.
        return "text"
    if isinstance(column_type, LargeBinary):
        return "text"
    return str(column_type.compile(dialect=dialect))


def _taken(insert: PreparedInsert, prefix: str, name: str) -> str:
    if isinstance(insert.table.c[name].type, LargeBinary):
        return f"decode(f.{prefix}{name}, 'base64')"
    return f"f.{prefix}{name}"


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
    """The statement; its parameters: the input document (one JSON array of submissions),
    the findings document, the counter's prefix and year, the record numbers' prefix.

    Its text does not depend on the batch, so psycopg and the server prepare it once.
    """
    sql = _SQL.get(dialect.name)
    if sql is not None:
        return sql
    quote = dialect.identifier_preparer.quote
    record = ", ".join(["ord int", "has_submitter boolean"] + [
        f"{prefix}{name} {_record_type(insert, name, dialect)}"
        for prefix, insert, names in _GROUPS for name in names])
    finding_record = ", ".join(["ord int"] + [
        f"{quote(c)} {_record_type(privacy.FINDINGS_INSERT, c, dialect)}" for c in _FINDING])

    def cols(names: Sequence[str]) -> str:
        return ", ".join(quote(n) for n in names)

    def taken(insert: PreparedInsert, prefix: str, names: Sequence[str]) -> str:
        return ", ".join(_taken(insert, prefix, n) for n in names)

    key = "e_idempotency_key"
    of_new = f"FROM new n JOIN fresh f ON f.{key} = n.idempotency_key"
    parts = [
        # "first": the first submission of its key in the batch (later ones: duplicates).
        f"input AS (SELECT *, ord = min(ord) OVER (PARTITION BY {key}) AS first "
        f"FROM json_to_recordset(?::json) AS x({record}))",
        f"found AS (SELECT * FROM json_to_recordset(?::json) AS x({finding_record}))",
        # The new ones: the first of their key in the batch, numbered in order. Whether
        # one is stored already is left to the unique index (see the module's text).
        "fresh AS (SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n, "
        "count(*) OVER () AS total FROM input i WHERE i.first)",
        # Locks the counter row until the statement ends: the numbers are consecutive.
        "bump AS (UPDATE record_counters SET last_value = last_value + "
        "(SELECT count(*) FROM fresh) WHERE prefix = ? AND year = ? RETURNING last_value)",
        f"new AS (INSERT INTO entries (record_number, {cols(_ENTRY)}) "
        "SELECT ? || CASE WHEN v.value < 1000000 THEN lpad(v.value::text, 6, '0') "
        f"ELSE v.value::text END, {taken(ENTRY_INSERT, 'e_', _ENTRY)} "
        "FROM fresh f CROSS JOIN bump b "
        "CROSS JOIN LATERAL (SELECT b.last_value - f.total + f.n AS value) v ORDER BY f.ord "
        "RETURNING id, idempotency_key, record_number)",
        f"submitters AS (INSERT INTO submitters (entry_id, {cols(_SUBMITTER)}) "
        f"SELECT n.id, {taken(SUBMITTER_INSERT, 's_', _SUBMITTER)} {of_new} "
        "WHERE f.has_submitter)",
        f"originals AS (INSERT INTO originals (entry_id, {cols(_ORIGINAL)}) "
        f"SELECT n.id, {taken(ORIGINAL_INSERT, 'o_', _ORIGINAL)} {of_new})",
        f"events AS (INSERT INTO events (entry_id, {cols(_EVENT)}) "
        f"SELECT n.id, {taken(EVENT_INSERT, 'v_', _EVENT)} {of_new})",
        f"items AS (INSERT INTO work_items (entry_id, {cols(_ITEM)}) SELECT n.id, "
        + ", ".join("'route:' || n.id" if c == "dedupe_key" else f"f.w_{c}" for c in _ITEM)
        + f" {of_new} RETURNING id, entry_id)",
        f"findings AS (INSERT INTO pii_findings (entry_id, {cols(_FINDING)}) "
        f"SELECT n.id, {', '.join(f'x.{quote(c)}' for c in _FINDING)} FROM found x "
        f"JOIN input i ON i.ord = x.ord JOIN new n ON n.idempotency_key = i.{key})",
        "answers AS (SELECT i.ord, n.id, n.record_number, "
        "(n.id IS NOT NULL AND i.first) AS created FROM input i "
        f"LEFT JOIN new n ON n.idempotency_key = i.{key})",
        # Every submission's page gets its own status link; none if nothing was numbered.
        f"links AS (INSERT INTO access_links (entry_id, {cols(_LINK)}) "
        f"SELECT a.id, {', '.join(f'i.l_{c}' for c in _LINK)} FROM answers a "
        "JOIN input i ON i.ord = a.ord WHERE EXISTS (SELECT 1 FROM bump))",
    ]
    sql = _SQL[dialect.name] = (
        "WITH " + ",\n".join(parts) + "\nSELECT a.ord, a.id, a.record_number, a.created, "
        "w.id, (SELECT count(*) FROM bump) FROM answers a "
        "LEFT JOIN items w ON w.entry_id = a.id AND a.created ORDER BY a.ord")
    return sql


def _document(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False)


def record_submissions_at_once(
    conn: Connection, submissions: Sequence[NewSubmission], record_prefix: str,
    findings: Sequence[Mapping[str, Sequence[Finding]]], link_digests: Sequence[str],
    now: datetime,
) -> list[AtOnce] | None:
    """Record ``submissions`` in one statement on ``conn`` (PostgreSQL, autocommit).

    ``findings``: the caller's PII scans, one per submission; ``link_digests``:
    the status links' token digests, one per submission. None, with nothing
    written, when the submissions span more than one year (the counter moves
    per year) or one of them is stored already: the caller then uses
    :func:`intake.services.records.record_submissions`.
    """
    if not can_record_at_once(conn.dialect.name, submissions):
        raise ValueError("record_submissions_at_once: PostgreSQL, 1 to "
                         f"{MAX_AT_ONCE} submissions")
    prepared = [prepare(s) for s in submissions]
    years = {p.received_at.year for p in prepared}
    if len(years) != 1:
        return None
    year = years.pop()
    dialect = conn.dialect

    def fields(insert: PreparedInsert, prefix: str, row: Mapping[str, Any] | None,
               names: Sequence[str]) -> dict[str, Any]:
        values = _values(insert, dialect, row, names) if row is not None else [None] * len(names)
        return {prefix + n: _jsonable(v) for n, v in zip(names, values, strict=True)}

    inputs = []
    for ord_, (p, digest) in enumerate(zip(prepared, link_digests, strict=True)):
        submitter = p.submitter_row(0)
        inputs.append({
            "ord": ord_, "has_submitter": submitter is not None,
            **fields(ENTRY_INSERT, "e_", p.entry_row(""), _ENTRY),
            **fields(SUBMITTER_INSERT, "s_", submitter, _SUBMITTER),
            **fields(ORIGINAL_INSERT, "o_", p.original_row(0), _ORIGINAL),
            **fields(EVENT_INSERT, "v_", p.event_row(0), _EVENT),
            **fields(workitems.WORK_ITEMS_INSERT, "w_", workitems.route_item_row(0, now),
                     _ITEM_INPUT),
            **fields(privacy.ACCESS_LINKS_INSERT, "l_",
                     privacy.access_link_row(digest, 0, now), _LINK),
        })
    found = [{"ord": ord_, **{k: v for k, v in fields(
                 privacy.FINDINGS_INSERT, "", row, _FINDING).items()}}
             for ord_, places in enumerate(findings)
             for row in privacy.finding_rows(0, places)]
    sql = _statement(dialect)
    params = [_document(inputs), _document(found), record_prefix, year,
              f"{record_prefix}-{year}-"]
    try:
        rows = execute(conn, sql, params)
        if rows[0][5] == 0:
            # No counter row for this prefix and year yet, so nothing was written: create it.
            ensure_record_counter(conn, record_prefix, year)
            rows = execute(conn, sql, params)
    except IntegrityError as exc:
        if _constraint(exc) != STORED_KEY_CONSTRAINT:
            raise
        # One of them is stored already (sent again, or by another process meanwhile):
        # nothing was written; the steps answer it with the stored entry.
        log.info("form batch: a duplicate of a stored entry, written step by step")
        return None
    out = []
    for (_, entry_id, number, created, item_id, _), s in zip(rows, submissions, strict=True):
        if created:
            log.info("entry %s recorded (%s, %s)", entry_id, s.channel, s.kind)
        out.append(AtOnce(Recorded(int(entry_id), number, created=bool(created)),
                          int(item_id) if item_id is not None else None))
    return out
