"""Staff inbox: accounts, sessions, access log, read markers, assignments, full-text search.

The search objects are not in the ORM metadata (see intake.db.staff_models):
SQLite gets an FTS5 table over entries (subject, body) kept in step by
triggers; PostgreSQL a generated tsvector column with a GIN index.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-22 07:19:23.648363
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intake.db import append_only


revision = '0005'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_accounts')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_accounts_email'))
    )
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_accounts_agency_id'), ['agency_id'], unique=False)

    op.create_table('access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('what', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_access_log_entry_id_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], name=op.f('fk_access_log_staff_id_staff_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_log'))
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_log_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_log_staff_id'), ['staff_id'], unique=False)

    op.create_table('entry_assignments',
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_entry_assignments_entry_id_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], name=op.f('fk_entry_assignments_staff_id_staff_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('entry_id', name=op.f('pk_entry_assignments'))
    )
    with op.batch_alter_table('entry_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_assignments_staff_id'), ['staff_id'], unique=False)

    op.create_table('read_markers',
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_read_markers_entry_id_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], name=op.f('fk_read_markers_staff_id_staff_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('staff_id', 'entry_id', name=op.f('pk_read_markers'))
    )
    op.create_table('staff_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], name=op.f('fk_staff_sessions_staff_id_staff_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_staff_sessions_token_sha256'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_staff_id'), ['staff_id'], unique=False)

    op.create_index('ix_entries_agency_received_id', 'entries', ['agency_id', 'received_at', 'id'], unique=False)
    _append_only_triggers()
    _full_text_search()


def downgrade() -> None:
    _drop_full_text_search()
    _drop_append_only_triggers()
    op.drop_index('ix_entries_agency_received_id', table_name='entries')

    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_staff_id'))

    op.drop_table('staff_sessions')
    op.drop_table('read_markers')
    with op.batch_alter_table('entry_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_assignments_staff_id'))

    op.drop_table('entry_assignments')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_log_staff_id'))
        batch_op.drop_index(batch_op.f('ix_access_log_entry_id'))

    op.drop_table('access_log')
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_accounts_agency_id'))

    op.drop_table('staff_accounts')


APPEND_ONLY = ("access_log",)


def _append_only_triggers() -> None:
    """The access log is evidence: refuse UPDATE and DELETE in the database itself."""
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.create_guard(dialect, table):
            op.execute(statement)


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only.drop_guard(dialect, table):
            op.execute(statement)


def _full_text_search() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # 'simple': no stemming, so searches behave the same for every language people write in.
        op.execute(
            "ALTER TABLE entries ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(body, ''))) STORED"
        )
        op.execute("CREATE INDEX ix_entries_search_vector ON entries USING gin (search_vector)")
    elif dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE entries_fts USING fts5(subject, body, content='entries', "
            "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN "
            "INSERT INTO entries_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body); "
            "END"
        )
        op.execute(
            "CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN "
            "INSERT INTO entries_fts(entries_fts, rowid, subject, body) "
            "VALUES ('delete', old.id, old.subject, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER entries_fts_update AFTER UPDATE OF subject, body ON entries BEGIN "
            "INSERT INTO entries_fts(entries_fts, rowid, subject, body) "
            "VALUES ('delete', old.id, old.subject, old.body); "
            "INSERT INTO entries_fts(rowid, subject, body) VALUES (new.id, new.subject, new.body); "
            "END"
        )
        op.execute("INSERT INTO entries_fts(entries_fts) VALUES ('rebuild')")


def _drop_full_text_search() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_entries_search_vector")
        op.execute("ALTER TABLE entries DROP COLUMN IF EXISTS search_vector")
    elif dialect == "sqlite":
        for trigger in ("entries_fts_insert", "entries_fts_delete", "entries_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS entries_fts")
