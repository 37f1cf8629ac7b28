"""Alembic environment: migrations run on the connection or URL given by intake.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from intake.db.metadata import metadata

config = context.config
target_metadata = metadata

# A fixed key for PostgreSQL's advisory lock: two processes upgrading at once wait in turn.
_MIGRATION_LOCK_KEY = 0x1A7A6E


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from intake.db import make_engine

        engine = make_engine(config.attributes["url"])
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if is_pg:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("intake migrations run online only: use `intake db upgrade`")
run_migrations_online()
