"""console sessions: the ``console_sessions`` table of the web console's sign-ins, and the ``progress`` of import
jobs and solution versions (JSON while they run, for the console's progress bars)

Revision ID: 0011_console_sessions
Revises: 0010_batch_jobs
Create Date: 2026-12-02 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_console_sessions'
down_revision = '0010_batch_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_sessions',
        sa.Column('token_hash', sa.String(64), primary_key=True),
        sa.Column('key_id', sa.String(32), sa.ForeignKey('api_keys.key_id', ondelete='CASCADE'), nullable=False),
        sa.Column('csrf_token', sa.String(64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
    )
    op.create_index('ix_console_sessions_key', 'console_sessions', ['key_id'])
    for table in ('import_jobs', 'solution_versions'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('progress', sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ('import_jobs', 'solution_versions'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('progress')
    op.drop_index('ix_console_sessions_key', 'console_sessions')
    op.drop_table('console_sessions')
