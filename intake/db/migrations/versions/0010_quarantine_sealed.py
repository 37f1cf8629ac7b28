"""Quarantined messages are sealed at rest under a data key of their own.

``quarantined_messages.raw`` written from now on is an AES-GCM ciphertext under
the row's own random data key, stored in ``wrapped_key`` (wrapped with the
key-encryption key of the entries' keys). Rows quarantined before this revision
have none and keep their bytes as received. (Attachments' content is sealed
under their entry's key from now on too; that needs no new column.)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantined_messages", schema=None) as batch_op:
        batch_op.drop_column("wrapped_key")
