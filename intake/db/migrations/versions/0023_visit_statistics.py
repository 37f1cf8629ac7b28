"""Visit statistics (issue 29): daily counters of the public pages, unique visitors per day.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "visit_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("referrer", sa.String(length=253), nullable=False),
        sa.Column("browser", sa.String(length=64), nullable=False),
        sa.Column("os", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "route", "form", "referrer", "browser", "os",
                                "language", "outcome", name=op.f("pk_visit_counts")),
    )
    op.create_table(
        "visit_uniques",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("visitors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "route", "form", name=op.f("pk_visit_uniques")),
    )


def downgrade() -> None:
    op.drop_table("visit_uniques")
    op.drop_table("visit_counts")
