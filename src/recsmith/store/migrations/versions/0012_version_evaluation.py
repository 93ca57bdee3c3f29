"""version evaluation: the ``evaluation`` of solution versions (JSON: the offline metrics' confidence intervals and
what the version's evaluation report is drawn from), written by training with metrics

Revision ID: 0012_version_evaluation
Revises: 0011_console_sessions
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_version_evaluation'
down_revision = '0011_console_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('solution_versions') as batch:
        batch.add_column(sa.Column('evaluation', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('solution_versions') as batch:
        batch.drop_column('evaluation')
