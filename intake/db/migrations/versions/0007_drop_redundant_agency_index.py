"""Drop ix_entries_agency_id: the two composite indexes on entries begin with agency_id.

``ix_entries_agency_status_received`` (agency_id, status, received_at) and
``ix_entries_agency_received_id`` (agency_id, received_at, id) answer every
query by agency; the single-column index only cost every submission one
more index insert.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_entries_agency_id", table_name="entries")


def downgrade() -> None:
    op.create_index("ix_entries_agency_id", "entries", ["agency_id"], unique=False)
