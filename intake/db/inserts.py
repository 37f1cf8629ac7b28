"""INSERTs compiled once and run on the DB-API cursor: the rows every submission writes.

A submission is a handful of small INSERTs (entry, submitter, original,
event, work item, status link). SQLAlchemy's Core spends more Python time
preparing each execution (parameter processing, result set-up, events) than
SQLite or PostgreSQL spend running it, and under load that time is what caps
how many submissions a process can take. :class:`PreparedInsert` writes the
SQL once per dialect, keeps each column's own bind processor (the same
conversion SQLAlchemy applies: UTC datetimes, JSON, ...) and runs the
statement on the DB-API cursor of the caller's connection, inside the
caller's transaction:

* rows without ``RETURNING``: one ``executemany`` (psycopg pipelines it:
  one round trip for all rows);
* rows with ``RETURNING``: one multi-row ``INSERT ... VALUES (...), (...)``.
  The returned rows are matched to the given ones by a unique column named
  in ``returning`` (neither database promises their order).

:class:`InsertBatch` runs several such INSERTs together: on PostgreSQL as one
statement (each INSERT a data-modifying ``WITH`` query: one round trip and
one statement for the server to run, instead of one per table), on SQLite one
after the other.

Every column without a default must be given in every row: a missing key
raises ``KeyError`` before anything is sent, and building a statement that
leaves out a column with a Python-side default raises ``ValueError`` (that
default would silently not apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

__all__ = ["InsertBatch", "PreparedInsert", "execute"]

Row = Mapping[str, Any]
Processor = Callable[[Any], Any] | None

# Parameters per statement, under SQLite's and PostgreSQL's limits (32 766 and 65 535).
_MAX_PARAMETERS = 30_000


class _Compiled:
    def __init__(self, insert: PreparedInsert, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        # The DB-API cursor is used directly: SQLite takes "?", psycopg "%s".
        placeholder = "?" if dialect.name == "sqlite" else "%s"
        self.columns = insert.columns
        self.processors: list[Processor] = [
            insert.table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in insert.columns]
        self.head = (f"INSERT INTO {dialect.identifier_preparer.format_table(insert.table)} "
                     f"({', '.join(quote(name) for name in insert.columns)}) VALUES ")
        self.group = f"({', '.join([placeholder] * len(insert.columns))})"
        tail = ""
        if insert.on_conflict_nothing:
            tail += (f" ON CONFLICT ({', '.join(quote(c) for c in insert.on_conflict_nothing)})"
                     " DO NOTHING")
        if insert.returning:
            tail += f" RETURNING {', '.join(quote(c) for c in insert.returning)}"
        self.tail = tail
        self.single = self.head + self.group + tail
        self._multi: dict[int, str] = {}

    def multi(self, count: int) -> str:
        sql = self._multi.get(count)
        if sql is None:
            sql = self.head + ", ".join([self.group] * count) + self.tail
            if count <= 64:  # the usual batch sizes; larger ones are built each time
                self._multi[count] = sql
        return sql

    def values(self, row: Row) -> list[Any]:
        out = []
        for name, process in zip(self.columns, self.processors, strict=True):
            value = row[name]
            out.append(value if process is None or value is None else process(value))
        return out


class PreparedInsert:
    """``INSERT INTO table (columns) VALUES ...`` [``ON CONFLICT (...) DO NOTHING``]
    [``RETURNING ...``], compiled per dialect on first use."""

    def __init__(self, table: Table, columns: Iterable[str], *,
                 returning: Sequence[str] = (), on_conflict_nothing: Sequence[str] = ()) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.returning = tuple(returning)
        self.on_conflict_nothing = tuple(on_conflict_nothing)
        for name in (*self.columns, *self.returning, *self.on_conflict_nothing):
            if name not in table.c:
                raise ValueError(f"{table.name} has no column {name!r}")
        for column in table.c:
            if column.name in self.columns:
                continue
            if column.default is not None and not column.primary_key:
                raise ValueError(f"{table.name}.{column.name} has a Python-side default: "
                                 "give it in every row")
            if not column.nullable and column.server_default is None \
                    and not column.primary_key:
                raise ValueError(f"{table.name}.{column.name} is required")
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self, dialect)
        return compiled

    def bind(self, dialect: Dialect, row: Row) -> list[Any]:
        """``row``'s values in column order, converted as SQLAlchemy would bind them."""
        return self._for(dialect).values(row)

    def run(self, conn: Connection, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        """Insert ``rows`` in ``conn``'s transaction; the ``RETURNING`` rows (if any)."""
        if not rows:
            return []
        if not conn.in_transaction():
            # On SQLite (driver autocommit off, BEGIN sent by SQLAlchemy) each row would
            # commit on its own: these rows belong to the caller's transaction.
            raise RuntimeError("PreparedInsert.run needs a connection in a transaction")
        compiled = self._for(conn.dialect)
        params = [compiled.values(row) for row in rows]
        with _Cursor(conn, compiled.single) as cursor:
            if not self.returning:
                if len(params) == 1:
                    cursor.execute(compiled.single, params[0])
                else:
                    cursor.executemany(compiled.single, params)
                return []
            returned: list[tuple[Any, ...]] = []
            step = max(1, _MAX_PARAMETERS // len(self.columns))
            for start in range(0, len(params), step):
                chunk = params[start:start + step]
                cursor.execute(compiled.multi(len(chunk)) if len(chunk) > 1
                               else compiled.single,
                               [value for values in chunk for value in values])
                returned.extend(tuple(r) for r in cursor.fetchall())
            return returned


class InsertBatch:
    """INSERTs of rows that depend on nothing inserted alongside them, run together.

    ``add`` them, then ``run`` in the caller's transaction. On PostgreSQL they
    are one statement (``WITH i0 AS (INSERT ...), i1 AS (INSERT ...) ...``):
    its sub-statements all run to completion, and a failing one fails the
    statement and so every row of the batch. On SQLite (no INSERT in ``WITH``)
    they run one after the other. At most one of them may have ``RETURNING``;
    its rows go to the ``then`` callback given with it.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[PreparedInsert, list[Row]]] = []
        self._then: Callable[[list[tuple[Any, ...]]], None] | None = None

    def add(self, insert: PreparedInsert, rows: Sequence[Row],
            then: Callable[[list[tuple[Any, ...]]], None] | None = None) -> None:
        if bool(insert.returning) != (then is not None):
            raise ValueError("an INSERT with RETURNING needs `then` (and only one does)")
        if then is not None:
            if self._then is not None:
                raise ValueError("only one INSERT of a batch may have RETURNING")
            self._then = then
        if rows:
            self._parts.append((insert, list(rows)))
        elif then is not None:
            then([])

    def run(self, conn: Connection) -> None:
        parts, self._parts = self._parts, []
        then, self._then = self._then, None
        returned: list[tuple[Any, ...]] = []
        if conn.dialect.name != "postgresql" or len(parts) < 2 or sum(
                len(rows) * len(insert.columns) for insert, rows in parts) > _MAX_PARAMETERS:
            for insert, rows in parts:
                result = insert.run(conn, rows)
                if insert.returning:
                    returned = result
        else:
            if not conn.in_transaction():
                raise RuntimeError("InsertBatch.run needs a connection in a transaction")
            compiled = [(insert, insert._for(conn.dialect), rows) for insert, rows in parts]
            sql = _together(conn.dialect, [(insert, len(rows)) for insert, _, rows in compiled])
            params = [value for _, c, rows in compiled for row in rows for value in c.values(row)]
            with _Cursor(conn, sql) as cursor:
                cursor.execute(sql, params)
                if cursor.description:
                    returned = [tuple(r) for r in cursor.fetchall()]
        if then is not None:
            then(returned)


_TOGETHER: dict[tuple[Any, ...], str] = {}


def _together(dialect: Dialect, parts: Sequence[tuple[PreparedInsert, int]]) -> str:
    """PostgreSQL: the INSERTs as one statement; the RETURNING one's rows are its result."""
    key = (dialect.name, *parts)
    sql = _TOGETHER.get(key)
    if sql is not None:
        return sql
    queries = [insert._for(dialect).multi(count) for insert, count in parts]
    last = next((i for i, (insert, _) in enumerate(parts) if insert.returning), None)
    if last is None:
        ctes, main = queries[:-1], queries[-1]
    else:
        ctes = queries
        columns = ", ".join(dialect.identifier_preparer.quote(c) for c in parts[last][0].returning)
        main = f"SELECT {columns} FROM i{last}"
    sql = "WITH " + ", ".join(f"i{i} AS ({q})" for i, q in enumerate(ctes)) + " " + main
    if all(count <= 64 for _, count in parts) and len(_TOGETHER) < 4096:
        _TOGETHER[key] = sql
    return sql


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement on ``conn``'s DB-API cursor (``?`` placeholders, the statement's own
    text otherwise; values given as the driver takes them); the rows it returns."""
    if conn.dialect.name != "sqlite":
        sql = sql.replace("?", "%s")
    with _Cursor(conn, sql) as cursor:
        cursor.execute(sql, list(params))
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


class _Cursor:
    """A DB-API cursor of ``conn``; its errors raised as SQLAlchemy raises them
    (IntegrityError, OperationalError, ...), and a dead connection not handed back to
    the pool. (A class, not a ``@contextmanager`` generator: it is entered for every
    statement a submission writes, and a generator costs several times as much.)"""

    __slots__ = ("conn", "sql", "cursor")

    def __init__(self, conn: Connection, sql: str) -> None:
        self.conn = conn
        self.sql = sql

    def __enter__(self) -> Any:
        self.cursor = self.conn.connection.cursor()
        return self.cursor

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: Any) -> None:
        conn = self.conn
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            if isinstance(exc, dbapi_error):
                disconnected = conn.dialect.is_disconnect(exc, conn.connection, self.cursor)
                if disconnected:
                    conn.invalidate(exc)
                raise DBAPIError.instance(self.sql, None, exc, dbapi_error,
                                          connection_invalidated=disconnected,
                                          dialect=conn.dialect) from exc
        finally:
            with suppress(dbapi_error):  # already closed with an invalidated connection
                self.cursor.close()
