"""Retention: legal holds, disposition runs and the disposition log.

``disposition_log`` is append-only (triggers, as for the other evidence
tables): it is the record that an entry's personal data was destroyed, or
that it was archived, listed for review or kept.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.db import append_only

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("disposition_log",)


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("case_reference", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_table(
        "legal_hold_entries",
        sa.Column("hold_id", _ID, nullable=False),
        sa.Column("entry_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["hold_id"], ["legal_holds.id"], ondelete="RESTRICT",
                                name=op.f("fk_legal_hold_entries_hold_id_legal_holds")),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="RESTRICT",
                                name=op.f("fk_legal_hold_entries_entry_id_entries")),
        sa.PrimaryKeyConstraint("hold_id", "entry_id", name=op.f("pk_legal_hold_entries")),
    )
    op.create_index(op.f("ix_legal_hold_entries_entry_id"), "legal_hold_entries",
                    ["entry_id"], unique=False)
    op.create_table(
        "disposition_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schedule_sha256", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition_runs")),
    )
    op.create_table(
        "disposition_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", _ID, nullable=False),
        sa.Column("record_number", sa.String(length=32), nullable=False),
        sa.Column("series", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="RESTRICT",
                                name=op.f("fk_disposition_log_entry_id_entries")),
        sa.ForeignKeyConstraint(["run_id"], ["disposition_runs.id"], ondelete="RESTRICT",
                                name=op.f("fk_disposition_log_run_id_disposition_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition_log")),
        sa.UniqueConstraint("entry_id", "action", name="uq_disposition_log_entry_action"),
    )
    op.create_index("ix_disposition_log_at", "disposition_log", ["at"], unique=False)
    op.create_index(op.f("ix_disposition_log_run_id"), "disposition_log", ["run_id"],
                    unique=False)
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.create_guard(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.drop_guard(dialect, table):
            op.execute(statement)
    op.drop_table("disposition_log")
    op.drop_table("disposition_runs")
    op.drop_table("legal_hold_entries")
    op.drop_table("legal_holds")
