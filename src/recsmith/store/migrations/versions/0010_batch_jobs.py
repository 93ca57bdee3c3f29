"""batch jobs: the ``batch_jobs`` table of batch inference and batch segment jobs

Revision ID: 0010_batch_jobs
Revises: 0009_audit_log
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_batch_jobs'
down_revision = '0009_audit_log'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'batch_jobs',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('dataset_group_id', sa.Integer(), sa.ForeignKey('dataset_groups.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('solution_version_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(32), nullable=False),
        sa.Column('input', sa.Text(), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('lines_read', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('lines_written', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('lines_failed', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('parts_done', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('duration_seconds', sa.Float(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('owner_host', sa.String(255), nullable=True),
        sa.Column('owner_pid', sa.Integer(), nullable=True),
        sa.Column('owner_started', sa.Float(), nullable=True),
    )
    op.create_index('ix_batch_jobs_group', 'batch_jobs', ['dataset_group_id', 'kind'])


def downgrade() -> None:
    op.drop_index('ix_batch_jobs_group', 'batch_jobs')
    op.drop_table('batch_jobs')
