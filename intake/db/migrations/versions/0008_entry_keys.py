"""Per-entry data keys: the sealed originals are encrypted at rest.

``originals.raw`` and ``thread_messages.raw`` written from now on are
AES-GCM ciphertexts under the entry's data key, stored wrapped here. Rows
written before this revision stay as they were (``originals`` is
append-only); they have no key row and do not open.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_keys",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=False, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"], ondelete="RESTRICT",
                                name=op.f("fk_entry_keys_entry_id_entries")),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_entry_keys")),
    )


def downgrade() -> None:
    op.drop_table("entry_keys")
