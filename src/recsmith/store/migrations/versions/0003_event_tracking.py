"""event tracking: event id (idempotent submissions), session id and recommendation id on interactions;
the newest real-time event of each dataset group

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('interactions') as batch:
        batch.add_column(sa.Column('event_id', sa.Text(), nullable=True))
        batch.add_column(sa.Column('session_id', sa.Text(), nullable=True))
        batch.add_column(sa.Column('recommendation_id', sa.Text(), nullable=True))
    op.create_index('uq_interactions_group_event', 'interactions', ['dataset_group_id', 'event_id'], unique=True)
    with op.batch_alter_table('dataset_groups') as batch:
        batch.add_column(sa.Column('last_event_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dataset_groups') as batch:
        batch.drop_column('last_event_id')
    op.drop_index('uq_interactions_group_event', table_name='interactions')
    with op.batch_alter_table('interactions') as batch:
        batch.drop_column('recommendation_id')
        batch.drop_column('session_id')
        batch.drop_column('event_id')
