"""The public records portal: publications, redaction marks, attachment releases.

The public search runs over ``publications.public_text`` (the public
rendition's words, no personal data): on PostgreSQL a stored ``tsvector``
with the ``english`` configuration and a GIN index (queried with
``websearch_to_tsquery('english', ...)``), on SQLite an FTS5 table with the
porter tokenizer kept by triggers. Both are kept out of the ORM metadata
(see :mod:`intake.db.publication_models`).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The column types as the models declare them (spelt out: a migration never changes).
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("entry_id", BigID, sa.ForeignKey("entries.id", ondelete="RESTRICT"),
                  primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("record_number", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("agency_id", sa.String(64)),
        sa.Column("reviewed_at", UTCDateTime),
        sa.Column("reviewed_by", sa.String(128)),
        sa.Column("published_at", UTCDateTime),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("citation", sa.String(200)),
        sa.Column("public_subject", sa.Text(), nullable=False),
        sa.Column("public_text", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_publications_state_received", "publications",
                    ["state", "received_at", "entry_id"])
    op.create_table(
        "redaction_marks",
        sa.Column("id", BigID, primary_key=True, autoincrement=True),
        sa.Column("entry_id", BigID, sa.ForeignKey("entries.id", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("attachment_id", BigID,
                  sa.ForeignKey("attachments.id", ondelete="RESTRICT")),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("place", sa.String(64)),
        sa.Column("start", sa.Integer()),
        sa.Column("end", sa.Integer()),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_redaction_marks_entry_id", "redaction_marks", ["entry_id"])
    op.create_table(
        "attachment_releases",
        sa.Column("attachment_id", BigID, sa.ForeignKey("attachments.id", ondelete="RESTRICT"),
                  primary_key=True, autoincrement=False),
        sa.Column("entry_id", BigID, sa.ForeignKey("entries.id", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("released_by", sa.String(128), nullable=False),
        sa.Column("released_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_attachment_releases_entry_id", "attachment_releases", ["entry_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("ALTER TABLE publications ADD COLUMN search_vector tsvector GENERATED ALWAYS "
                   "AS (to_tsvector('english', public_text)) STORED")
        op.execute("CREATE INDEX ix_publications_search_vector ON publications "
                   "USING gin (search_vector)")
    elif dialect == "sqlite":
        op.execute("CREATE VIRTUAL TABLE publications_fts USING fts5(public_text, "
                   "content='publications', content_rowid='entry_id', tokenize='porter')")
        op.execute("CREATE TRIGGER publications_fts_insert AFTER INSERT ON publications BEGIN "
                   "INSERT INTO publications_fts(rowid, public_text) "
                   "VALUES (new.entry_id, new.public_text); END")
        op.execute("CREATE TRIGGER publications_fts_delete AFTER DELETE ON publications BEGIN "
                   "INSERT INTO publications_fts(publications_fts, rowid, public_text) "
                   "VALUES ('delete', old.entry_id, old.public_text); END")
        op.execute("CREATE TRIGGER publications_fts_update AFTER UPDATE OF public_text "
                   "ON publications BEGIN "
                   "INSERT INTO publications_fts(publications_fts, rowid, public_text) "
                   "VALUES ('delete', old.entry_id, old.public_text); "
                   "INSERT INTO publications_fts(rowid, public_text) "
                   "VALUES (new.entry_id, new.public_text); END")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("publications_fts_insert", "publications_fts_delete",
                        "publications_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS publications_fts")
    op.drop_index("ix_attachment_releases_entry_id", table_name="attachment_releases")
    op.drop_table("attachment_releases")
    op.drop_index("ix_redaction_marks_entry_id", table_name="redaction_marks")
    op.drop_table("redaction_marks")
    op.drop_index("ix_publications_state_received", table_name="publications")
    op.drop_table("publications")
