"""Privacy records: policy texts, hash-chained consent events and disclosures, relay tokens,
access links and PII findings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:07:58.896028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.db import append_only

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chain_heads',
    sa.Column('chain', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('chain', name=op.f('pk_chain_heads'))
    )
    op.create_table('policy_texts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_texts')),
    sa.UniqueConstraint('version', name=op.f('uq_policy_texts_version'))
    )
    op.create_table('access_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_access_links_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_links')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_access_links_token_sha256'))
    )
    with op.batch_alter_table('access_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_links_entry_id'), ['entry_id'], unique=False)

    op.create_table('consent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('recipient_class', sa.String(length=140), nullable=False),
    sa.Column('policy_version', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('evidence_sha256', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_consent_events_entry_id_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['policy_version'], ['policy_texts.version'], name=op.f('fk_consent_events_policy_version_policy_texts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_consent_events_seq'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_events_entry_id'), ['entry_id'], unique=False)

    op.create_table('pii_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('place', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('detector', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('value_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_pii_findings_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pii_findings'))
    )
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pii_findings_entry_id'), ['entry_id'], unique=False)

    op.create_table('relay_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_relay_tokens_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_tokens')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_relay_tokens_entry_id')),
    sa.UniqueConstraint('token', name=op.f('uq_relay_tokens_token'))
    )
    op.create_table('disclosures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('nature', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('basis', sa.String(length=16), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('include_identity', sa.Boolean(), nullable=False),
    sa.Column('recipient_kind', sa.String(length=32), nullable=False),
    sa.Column('recipient_id', sa.String(length=140), nullable=False),
    sa.Column('recipient_name', sa.String(length=200), nullable=False),
    sa.Column('recipient_address', sa.String(length=500), nullable=False),
    sa.Column('consent_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('citation', sa.String(length=200), nullable=True),
    sa.Column('rule_id', sa.String(length=128), nullable=True),
    sa.Column('rules_sha256', sa.String(length=64), nullable=True),
    sa.Column('payload_sha256', sa.String(length=64), nullable=True),
    sa.Column('work_item_id', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['consent_event_id'], ['consent_events.id'], name=op.f('fk_disclosures_consent_event_id_consent_events'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_disclosures_entry_id_entries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosures')),
    sa.UniqueConstraint('seq', name=op.f('uq_disclosures_seq'))
    )
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disclosures_entry_id'), ['entry_id'], unique=False)


    op.bulk_insert(
        sa.table("chain_heads", sa.column("chain", sa.String), sa.column("seq", sa.BigInteger),
                 sa.column("head_hash", sa.String)),
        [{"chain": "consent_events", "seq": 0, "head_hash": "0" * 64},
         {"chain": "disclosures", "seq": 0, "head_hash": "0" * 64}],
    )
    _append_only_triggers()


APPEND_ONLY = ("policy_texts", "consent_events", "disclosures", "relay_tokens")


def _append_only_triggers() -> None:
    # The PostgreSQL function intake_append_only() comes from revision 0001.
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.create_guard(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disclosures_entry_id'))

    op.drop_table('disclosures')
    op.drop_table('relay_tokens')
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pii_findings_entry_id'))

    op.drop_table('pii_findings')
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_events_entry_id'))

    op.drop_table('consent_events')
    with op.batch_alter_table('access_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_links_entry_id'))

    op.drop_table('access_links')
    op.drop_table('policy_texts')
    op.drop_table('chain_heads')
