"""Automatic mail: the entries a machine sent (category, reason) and undeliverable addresses.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "automatic_entries",
        sa.Column("entry_id", _ID, nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="RESTRICT",
                                name=op.f("fk_automatic_entries_entry_id_entries")),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_automatic_entries")),
    )
    op.create_index("ix_automatic_entries_category_entry", "automatic_entries",
                    ["category", "entry_id"], unique=False)
    op.create_table(
        "undeliverable_addresses",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("first_bounce_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_bounce_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_id", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("address_hash", name=op.f("pk_undeliverable_addresses")),
    )


def downgrade() -> None:
    op.drop_table("undeliverable_addresses")
    op.drop_index("ix_automatic_entries_category_entry", table_name="automatic_entries")
    op.drop_table("automatic_entries")
