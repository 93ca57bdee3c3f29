"""live catalog and serving records: deleted users and items, a per-group catalog version, the served-items
ledger, and automatic-retraining decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('dataset_groups') as batch:
        batch.add_column(sa.Column('catalog_version', sa.BigInteger(), nullable=False, server_default='0'))
    op.create_table(
        'deletions',
        sa.Column('dataset_group_id', sa.Integer(), sa.ForeignKey('dataset_groups.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('kind', sa.String(8), primary_key=True),
        sa.Column('entity_id', sa.Text(), primary_key=True),
        sa.Column('watermark', sa.BigInteger(), nullable=False),
        sa.Column('deleted_at', TS, nullable=False),
    )
    op.create_table(
        'served_items',
        sa.Column('recommendation_id', sa.String(64), primary_key=True),
        sa.Column('dataset_group_id', sa.Integer(), sa.ForeignKey('dataset_groups.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('campaign', sa.String(128), nullable=False),
        sa.Column('user_id', sa.Text(), nullable=True),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('served_at', sa.Float(), nullable=False),
    )
    op.create_index('ix_served_items_user', 'served_items', ['dataset_group_id', 'user_id', 'served_at'])
    op.create_table(
        'retrain_decisions',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('dataset_group_id', sa.Integer(), sa.ForeignKey('dataset_groups.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('solution', sa.String(128), nullable=False),
        sa.Column('candidate_version_id', sa.Integer(), nullable=True),
        sa.Column('current_version_id', sa.Integer(), nullable=True),
        sa.Column('decision', sa.String(16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('campaigns', sa.Text(), nullable=True),
        sa.Column('created_at', TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table('retrain_decisions')
    op.drop_index('ix_served_items_user', table_name='served_items')
    op.drop_table('served_items')
    op.drop_table('deletions')
    with op.batch_alter_table('dataset_groups') as batch:
        batch.drop_column('catalog_version')
