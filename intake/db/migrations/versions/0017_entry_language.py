"""The submitter's language on each entry: chosen once, used for every page and message.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), nullable=False,
                                   server_default="en"))


def downgrade() -> None:
    # Not a batch: on SQLite a batch rebuilds ``entries``, whose DROP fails while other
    # tables' foreign keys point at it; SQLite (3.35+) drops a plain column in place.
    op.drop_column("entries", "language")
