"""job owner: import jobs and solution versions record the process running them (host, pid, start time), so
that a job left unfinished by a killed process can be marked failed by the next one

Revision ID: 0008_job_owner
Revises: 0007_erasure
Create Date: 2026-12-01 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_job_owner'
down_revision = '0007_erasure'
branch_labels = None
depends_on = None

TABLES = ('import_jobs', 'solution_versions')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('owner_host', sa.String(255), nullable=True))
            batch.add_column(sa.Column('owner_pid', sa.Integer(), nullable=True))
            batch.add_column(sa.Column('owner_started', sa.Float(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('owner_started')
            batch.drop_column('owner_pid')
            batch.drop_column('owner_host')
