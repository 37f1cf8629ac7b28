"""PII findings carry the detector's confidence and the evidence that fired (issue 27).

A records officer sees why something was redacted: kind, confidence and evidence
(e.g. ``stdnum:valid context:+ssn``). Findings stored before this revision get
confidence 1 and no evidence.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pii_findings") as batch:
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=False,
                                   server_default=sa.text("1.0")))
        batch.add_column(sa.Column("evidence", sa.String(length=255), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("pii_findings") as batch:
        batch.drop_column("evidence")
        batch.drop_column("confidence")
