"""personalize api: sealed key secrets (AWS Signature Version 4), event trackers, account-level schemas, and the
names of import jobs, batch jobs and solution versions (Personalize's ARNs name them)

Revision ID: 0013_personalize_api
Revises: 0012_version_evaluation
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_personalize_api'
down_revision = '0012_version_evaluation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('sealed_secret', sa.Text(), nullable=True))
    for table in ('import_jobs', 'batch_jobs', 'solution_versions'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('name', sa.String(128), nullable=True))
            batch.create_unique_constraint(f'uq_{table}_name', ['name'])
    op.create_table(
        'event_trackers',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('dataset_group_id', sa.Integer(), sa.ForeignKey('dataset_groups.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('name', sa.String(128), nullable=False, unique=True),
        sa.Column('tracking_id', sa.String(64), nullable=False, unique=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'aws_schemas',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(128), nullable=False, unique=True),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('domain', sa.String(32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('aws_schemas')
    op.drop_table('event_trackers')
    for table in ('solution_versions', 'batch_jobs', 'import_jobs'):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f'uq_{table}_name', type_='unique')
            batch.drop_column('name')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('sealed_secret')
