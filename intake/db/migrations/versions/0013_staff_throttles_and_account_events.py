"""Staff logins are throttled, not locked; changes to staff accounts are logged.

- ``login_throttles``: failed logins per (account, client), per client and per
  account, keyed by keyed hashes, with growing delays, shared by every web
  worker. They replace the lockout of ``staff_accounts.failed_logins`` and
  ``locked_until`` (left in place, unused, so an older release still starts).
- ``staff_accounts.password_must_change``: an administrator's password reset
  makes the next login choose a new password.
- ``staff_account_events``: who created, disabled, enabled, reset the password
  or the second factor of, or lifted the throttles of which account, and when.
  Append-only, like ``access_log``.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.db import append_only

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("staff_account_events",)


def upgrade() -> None:
    op.add_column("staff_accounts", sa.Column("password_must_change", sa.Boolean(),
                                              server_default=sa.false(), nullable=False))
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttles_account_key"), ["account_key"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_login_throttles_last_failure_at"),
                              ["last_failure_at"], unique=False)
    op.create_table(
        "staff_account_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", _ID, nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("target_id", _ID, nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["staff_accounts.id"],
                                name=op.f("fk_staff_account_events_actor_id_staff_accounts"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["target_id"], ["staff_accounts.id"],
                                name=op.f("fk_staff_account_events_target_id_staff_accounts"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_account_events")),
    )
    with op.batch_alter_table("staff_account_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_account_events_actor_id"), ["actor_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_staff_account_events_target_id"), ["target_id"],
                              unique=False)
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.create_guard(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.drop_guard(dialect, table):
            op.execute(statement)
    with op.batch_alter_table("staff_account_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_account_events_target_id"))
        batch_op.drop_index(batch_op.f("ix_staff_account_events_actor_id"))
    op.drop_table("staff_account_events")
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttles_last_failure_at"))
        batch_op.drop_index(batch_op.f("ix_login_throttles_account_key"))
    op.drop_table("login_throttles")
    with op.batch_alter_table("staff_accounts", schema=None) as batch_op:
        batch_op.drop_column("password_must_change")
