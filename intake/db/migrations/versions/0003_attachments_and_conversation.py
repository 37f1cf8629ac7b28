"""Attachments, the conversation (thread messages) and the Message-IDs intake issued.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:13:41.279717
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.db import append_only

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sent_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('work_item_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recipient_kind', sa.String(length=32), nullable=False),
    sa.Column('recipient_id', sa.String(length=140), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_sent_messages_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sent_messages')),
    sa.UniqueConstraint('message_id', name=op.f('uq_sent_messages_message_id'))
    )
    with op.batch_alter_table('sent_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sent_messages_entry_id'), ['entry_id'], unique=False)

    op.create_table('thread_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('author_kind', sa.String(length=16), nullable=False),
    sa.Column('author_id', sa.String(length=128), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_thread_messages_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_thread_messages')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_thread_messages_idempotency_key'))
    )
    with op.batch_alter_table('thread_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_thread_messages_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_thread_messages_message_id'), ['message_id'], unique=False)

    op.create_table('attachments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('thread_message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('declared_type', sa.String(length=128), nullable=False),
    sa.Column('sniffed_type', sa.String(length=128), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('inline', sa.Boolean(), nullable=False),
    sa.Column('content_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_attachments_entry_id_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['thread_message_id'], ['thread_messages.id'], name=op.f('fk_attachments_thread_message_id_thread_messages'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments'))
    )
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attachments_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attachments_sha256'), ['sha256'], unique=False)


    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.create_guard(dialect, table):
            op.execute(statement)


APPEND_ONLY = ("attachments", "thread_messages")


def downgrade() -> None:
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attachments_sha256'))
        batch_op.drop_index(batch_op.f('ix_attachments_entry_id'))

    op.drop_table('attachments')
    with op.batch_alter_table('thread_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_thread_messages_message_id'))
        batch_op.drop_index(batch_op.f('ix_thread_messages_entry_id'))

    op.drop_table('thread_messages')
    with op.batch_alter_table('sent_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sent_messages_entry_id'))

    op.drop_table('sent_messages')
