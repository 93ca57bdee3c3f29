"""partial event-id index: the unique (dataset_group_id, event_id) index covers only rows with an event id, so
bulk-imported interactions (event_id NULL) add no entries to it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

NOT_NULL = sa.text('event_id IS NOT NULL')


def upgrade() -> None:
    op.drop_index('uq_interactions_group_event', table_name='interactions')
    op.create_index('uq_interactions_group_event', 'interactions', ['dataset_group_id', 'event_id'], unique=True,
                    sqlite_where=NOT_NULL, postgresql_where=NOT_NULL)


def downgrade() -> None:
    op.drop_index('uq_interactions_group_event', table_name='interactions')
    op.create_index('uq_interactions_group_event', 'interactions', ['dataset_group_id', 'event_id'], unique=True)
