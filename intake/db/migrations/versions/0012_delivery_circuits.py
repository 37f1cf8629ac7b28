"""Delivery survives outages: circuit breakers per destination; deferrals apart from attempts.

``delivery_circuits`` holds each failing destination's circuit breaker, shared
by every worker. ``work_items.deferrals`` counts the transient failures of an
item (server down, 4xx, timeouts), which no longer use up its ``attempts``, and
``work_items.deferred_since`` the first of them: the start of the age limit.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_circuits",
        sa.Column("destination", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_delivery_circuits")),
    )
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deferrals", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("deferred_since", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_items", schema=None) as batch_op:
        batch_op.drop_column("deferred_since")
        batch_op.drop_column("deferrals")
    op.drop_table("delivery_circuits")
