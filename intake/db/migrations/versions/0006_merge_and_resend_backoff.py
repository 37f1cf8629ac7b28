"""Merge the e-mail (0004) and staff (0005) branches; back off the sweeper's re-sends.

Revision ID: 0006
Revises: 0004, 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = ("0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resends", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("resend_after", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.drop_column("resend_after")
        batch_op.drop_column("resends")
