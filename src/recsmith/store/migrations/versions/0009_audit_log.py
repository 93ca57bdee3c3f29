"""audit log: the append-only ``audit_log`` table (who changed what, from where, with what outcome), with
triggers that refuse UPDATE and DELETE on it

Revision ID: 0009_audit_log
Revises: 0008_job_owner
Create Date: 2026-12-01 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_audit_log'
down_revision = '0008_job_owner'
branch_labels = None
depends_on = None

APPEND_ONLY = 'audit_log is append-only: its entries cannot be changed or deleted'


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(64), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('resource', sa.Text(), nullable=False),
        sa.Column('source', sa.String(256), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'])
    if op.get_bind().dialect.name == 'sqlite':
        for event in ('UPDATE', 'DELETE'):
            op.execute(f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    elif op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE OR REPLACE FUNCTION recsmith_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$")
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION recsmith_audit_log_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('DROP TRIGGER IF EXISTS audit_log_no_update')
        op.execute('DROP TRIGGER IF EXISTS audit_log_no_delete')
    elif op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log')
        op.execute('DROP FUNCTION IF EXISTS recsmith_audit_log_append_only()')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
