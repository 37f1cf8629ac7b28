"""The staff search indexes a text without personal data (``entries.search_text``).

Until now the full-text index (SQLite FTS5 ``entries_fts``, PostgreSQL
``entries.search_vector``) was built from the stored subject and body, which
hold the citizen's own address, phone and name where they wrote them: an
agent searching for an address learnt whether some entry held it, for a
citizen whose consent the agency does not have. The index is now built from
``search_text``, the public rendition of subject and body without its removed
spans (``intake.core.rendition.search_text``), written with the entry.

Existing entries get theirs here, from their stored texts, findings and
submitter, with the same function.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_FTS_TOKENIZER = "unicode61 remove_diacritics 2"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_index(dialect)
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False,
                                      server_default=""))
    _backfill()
    _create_index(dialect, "search_text")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_index(dialect)
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_column("search_text")
    _create_index(dialect, None)


def _backfill() -> None:
    # The pure core's function, as the record store calls it: one definition of what
    # may be searched. (It takes plain values, so later changes to it keep this working.)
    from intake.core.pii import Finding
    from intake.core.rendition import EntryValues, search_text

    conn = op.get_bind()
    entries = conn.execute(sa.text(
        "SELECT e.id, e.subject, e.body, s.name, s.email, s.phone, s.postal_address "
        "FROM entries e LEFT JOIN submitters s ON s.entry_id = e.id")).all()
    for row in entries:
        findings: dict[str, list[Finding]] = {"subject": [], "body": []}
        for f in conn.execute(sa.text(
                "SELECT place, kind, start, \"end\", detector, severity, value_hash "
                "FROM pii_findings WHERE entry_id = :e AND place IN ('subject', 'body') "
                "ORDER BY start"), {"e": row.id}):
            findings[f.place].append(Finding(kind=f.kind, start=f.start, end=f.end,
                                             detector=f.detector, severity=f.severity,
                                             value_hash=f.value_hash))
        text = search_text(EntryValues(texts={"subject": row.subject, "body": row.body},
                                       name=row.name, email=row.email, phone=row.phone,
                                       postal_address=row.postal_address), findings)
        conn.execute(sa.text("UPDATE entries SET search_text = :t WHERE id = :e"),
                     {"t": text, "e": row.id})


def _drop_index(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_entries_search_vector")
        op.execute("ALTER TABLE entries DROP COLUMN IF EXISTS search_vector")
    elif dialect == "sqlite":
        for trigger in ("entries_fts_insert", "entries_fts_delete", "entries_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS entries_fts")


def _create_index(dialect: str, column: str | None) -> None:
    """The index over ``column``, or (downgrade) over subject and body as migration 0005."""
    cols = [column] if column else ["subject", "body"]
    if dialect == "postgresql":
        source = " || ' ' || ".join(f"coalesce({c}, '')" for c in cols)
        op.execute("ALTER TABLE entries ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
                   f"(to_tsvector('simple', {source})) STORED")
        op.execute("CREATE INDEX ix_entries_search_vector ON entries USING gin (search_vector)")
    elif dialect == "sqlite":
        names = ", ".join(cols)
        new = ", ".join(f"new.{c}" for c in cols)
        old = ", ".join(f"old.{c}" for c in cols)
        op.execute(f"CREATE VIRTUAL TABLE entries_fts USING fts5({names}, content='entries', "
                   f"content_rowid='id', tokenize='{_FTS_TOKENIZER}')")
        op.execute("CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN "
                   f"INSERT INTO entries_fts(rowid, {names}) VALUES (new.id, {new}); END")
        op.execute("CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN "
                   f"INSERT INTO entries_fts(entries_fts, rowid, {names}) "
                   f"VALUES ('delete', old.id, {old}); END")
        op.execute(f"CREATE TRIGGER entries_fts_update AFTER UPDATE OF {names} ON entries BEGIN "
                   f"INSERT INTO entries_fts(entries_fts, rowid, {names}) "
                   f"VALUES ('delete', old.id, {old}); "
                   f"INSERT INTO entries_fts(rowid, {names}) VALUES (new.id, {new}); END")
        op.execute("INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')")
