"""The append-only tables' guard: triggers that refuse UPDATE and DELETE in the database.

The migrations that create those tables and ``intake db seal`` (which lifts the
guard of a table for the length of one transaction) share these statements, so
the guard put back is exactly the one the migrations made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

#: PostgreSQL: the function every table's trigger calls (created once, by revision 0001).
POSTGRES_FUNCTION = """
            CREATE FUNCTION intake_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'intake: % on % is not allowed: the table is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
            END $$
            """

_ACTIONS = ("UPDATE", "DELETE")


def create_guard(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` refuse UPDATE and DELETE."""
    if dialect == "postgresql":
        return [f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION intake_append_only()"]
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'intake: {action} on {table} is not allowed: "
                f"the table is append-only'); END"
                for action in _ACTIONS]
    return []


def drop_guard(dialect: str, table: str) -> list[str]:
    """The statements that remove :func:`create_guard`'s triggers of ``table``."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"]
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{action.lower()}" for action in _ACTIONS]
    return []


@contextmanager
def guard_lifted(conn: Connection, tables: tuple[str, ...]) -> Iterator[None]:
    """Let ``conn``'s transaction update ``tables``, and put their guard back before it ends.

    DDL is transactional on both backends: other connections never see the tables
    unguarded (on PostgreSQL, DROP TRIGGER locks the table until the commit), and a
    transaction that fails or is interrupted rolls the dropped triggers back with it.
    """
    dialect = conn.dialect.name
    for table in tables:
        for statement in drop_guard(dialect, table):
            conn.execute(text(statement))
    yield
    for table in tables:
        for statement in create_guard(dialect, table):
            conn.execute(text(statement))
