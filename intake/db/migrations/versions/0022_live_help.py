"""Live Help (issue 30): chats, their messages, staff views of them, operators' names.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_sessions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("agency_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("visitor_name", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("browser", sa.String(length=64), nullable=False),
        sa.Column("operator_id", _ID, nullable=True),
        sa.Column("operator_name", sa.String(length=200), nullable=True),
        sa.Column("started_at", _AT, nullable=False),
        sa.Column("accepted_at", _AT, nullable=True),
        sa.Column("ended_at", _AT, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("entry_id", _ID, nullable=True),
        sa.Column("status_sealed", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["operator_id"], ["staff_accounts.id"],
                                name=op.f("fk_chat_sessions_operator_id_staff_accounts"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["entry_id"], ["entries.id"],
                                name=op.f("fk_chat_sessions_entry_id_entries"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_sessions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_chat_sessions_public_id")),
    )
    op.create_index("ix_chat_sessions_agency_state", "chat_sessions", ["agency_id", "state"])
    op.create_table(
        "chat_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", _ID, nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["chat_id"], ["chat_sessions.id"],
                                name=op.f("fk_chat_messages_chat_id_chat_sessions"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index(op.f("ix_chat_messages_chat_id"), "chat_messages", ["chat_id"])
    op.create_table(
        "chat_access",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("chat_id", _ID, nullable=False),
        sa.Column("staff_id", _ID, nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["chat_id"], ["chat_sessions.id"],
                                name=op.f("fk_chat_access_chat_id_chat_sessions"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_accounts.id"],
                                name=op.f("fk_chat_access_staff_id_staff_accounts"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_access")),
    )
    op.create_index(op.f("ix_chat_access_chat_id"), "chat_access", ["chat_id"])
    op.create_table(
        "chat_operators",
        sa.Column("staff_id", _ID, autoincrement=False, nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_accounts.id"],
                                name=op.f("fk_chat_operators_staff_id_staff_accounts"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_chat_operators")),
    )


def downgrade() -> None:
    op.drop_table("chat_operators")
    op.drop_index(op.f("ix_chat_access_chat_id"), table_name="chat_access")
    op.drop_table("chat_access")
    op.drop_index(op.f("ix_chat_messages_chat_id"), table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index("ix_chat_sessions_agency_state", table_name="chat_sessions")
    op.drop_table("chat_sessions")
