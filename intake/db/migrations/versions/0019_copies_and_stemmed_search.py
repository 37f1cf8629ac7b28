"""Copies in the copy agency's inbox, and a staff search that stems words.

- ``entry_copies``: the agencies holding a read-only copy of an entry (the cc of its
  latest routing decision, other than the agency it is routed to), filled here from
  the stored decisions; from now on written with every decision
  (:func:`intake.services.routing.store_decisions`).
- ``routing_decisions.actor``: who made each decision ("rules", or "staff:<id>" for a
  reroute), filled from the decisions' timeline events, so ``intake rules replay``
  compares only what the rules decided.
- The staff search index over ``entries.search_text`` (still no personal data,
  migration 0011) now stems English words: PostgreSQL ``to_tsvector('english', ...)``
  (queried with ``websearch_to_tsquery('english', ...)``), SQLite FTS5 with the
  ``porter`` tokenizer over ``unicode61``, so "potholes" finds "pothole".

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from intake.db.append_only import create_guard, drop_guard, guard_lifted

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_STEMMED = ("english", "porter unicode61 remove_diacritics 2")
_PLAIN = ("simple", "unicode61 remove_diacritics 2")  # migration 0011's


def upgrade() -> None:
    op.create_table(
        "entry_copies",
        sa.Column("entry_id", BigID, sa.ForeignKey("entries.id", ondelete="RESTRICT"),
                  nullable=False, autoincrement=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "agency_id", name=op.f("pk_entry_copies")),
    )
    op.create_index("ix_entry_copies_agency_received", "entry_copies",
                    ["agency_id", "received_at", "entry_id"])
    _backfill_copies()
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(128), nullable=True))
    # Each decision's event was written with it, with the same time (store_decisions).
    # routing_decisions is append-only: its guard is lifted for this one UPDATE.
    with guard_lifted(op.get_bind(), ("routing_decisions",)):
        op.execute("UPDATE routing_decisions SET actor = (SELECT ev.actor FROM events ev "
                   "WHERE ev.entry_id = routing_decisions.entry_id "
                   "AND ev.kind IN ('routed', 'rerouted') "
                   "AND ev.at = routing_decisions.decided_at ORDER BY ev.id LIMIT 1)")
    _search_index(*_STEMMED)


def downgrade() -> None:
    _search_index(*_PLAIN)
    # SQLite drops a column by copying the table, which loses its append-only triggers.
    dialect = op.get_bind().dialect.name
    for statement in drop_guard(dialect, "routing_decisions"):
        op.execute(statement)
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.drop_column("actor")
    for statement in create_guard(dialect, "routing_decisions"):
        op.execute(statement)
    op.drop_index("ix_entry_copies_agency_received", table_name="entry_copies")
    op.drop_table("entry_copies")


def _backfill_copies() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT d.entry_id, d.cc, d.decided_at, e.agency_id, e.received_at "
        "FROM routing_decisions d "
        "JOIN entries e ON e.id = d.entry_id "
        "WHERE d.id = (SELECT max(l.id) FROM routing_decisions l "
        "WHERE l.entry_id = d.entry_id)")).all()
    copies = []
    for row in rows:
        cc = json.loads(row.cc) if isinstance(row.cc, str) else (row.cc or [])
        for agency in dict.fromkeys(a for a in cc if isinstance(a, str)):
            if agency != row.agency_id:
                copies.append({"e": row.entry_id, "a": agency, "t": row.decided_at,
                               "r": row.received_at})
    if copies:
        conn.execute(sa.text("INSERT INTO entry_copies (entry_id, agency_id, since, received_at) "
                             "VALUES (:e, :a, :t, :r)"), copies)


def _search_index(config: str, tokenizer: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_entries_search_vector")
        op.execute("ALTER TABLE entries DROP COLUMN IF EXISTS search_vector")
        op.execute("ALTER TABLE entries ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
                   f"(to_tsvector('{config}', coalesce(search_text, ''))) STORED")
        op.execute("CREATE INDEX ix_entries_search_vector ON entries USING gin (search_vector)")
    elif dialect == "sqlite":
        for trigger in ("entries_fts_insert", "entries_fts_delete", "entries_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS entries_fts")
        op.execute("CREATE VIRTUAL TABLE entries_fts USING fts5(search_text, "
                   f"content='entries', content_rowid='id', tokenize='{tokenizer}')")
        op.execute("CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN "
                   "INSERT INTO entries_fts(rowid, search_text) VALUES (new.id, new.search_text); "
                   "END")
        op.execute("CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN "
                   "INSERT INTO entries_fts(entries_fts, rowid, search_text) "
                   "VALUES ('delete', old.id, old.search_text); END")
        op.execute("CREATE TRIGGER entries_fts_update AFTER UPDATE OF search_text ON entries "
                   "BEGIN INSERT INTO entries_fts(entries_fts, rowid, search_text) "
                   "VALUES ('delete', old.id, old.search_text); "
                   "INSERT INTO entries_fts(rowid, search_text) "
                   "VALUES (new.id, new.search_text); END")
        op.execute("INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')")
