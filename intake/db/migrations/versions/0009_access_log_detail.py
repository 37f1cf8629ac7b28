"""The access log keeps why a reveal happened: reason, legal basis, requester.

A reveal of a submitter's contact data (records officers) is logged with the
stated reason and citation in the access log itself, where the records
office reads it, instead of on the entry's timeline, which every member of
the agency sees.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_column("detail")
