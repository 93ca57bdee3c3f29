"""import job statuses: import jobs use the job-run vocabulary (CREATE_IN_PROGRESS, ACTIVE, CREATE_FAILED) that
training and retraining use, so their status column is widened to 32 and the stored jobs' old words (running,
succeeded, failed) are converted, in the column and in each job's stored report

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:00:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

NEW_WORDS = {'running': 'CREATE_IN_PROGRESS', 'succeeded': 'ACTIVE', 'failed': 'CREATE_FAILED'}
OLD_WORDS = {new: old for old, new in NEW_WORDS.items()} | {'CREATE_PENDING': 'running'}

import_jobs = sa.table('import_jobs', sa.column('id', sa.Integer()), sa.column('status', sa.String()),
                       sa.column('report', sa.Text()))


def convert(words: dict[str, str]) -> None:
    """Rename the stored jobs' statuses, in the status column and in the JSON report's ``status``."""
    conn = op.get_bind()
    for old, new in words.items():
        conn.execute(import_jobs.update().where(import_jobs.c.status == old).values(status=new))
    rows = conn.execute(sa.select(import_jobs.c.id, import_jobs.c.report).where(import_jobs.c.report.is_not(None)))
    for job_id, text in rows.all():
        try:
            report = json.loads(text)
        except ValueError:
            continue
        if isinstance(report, dict) and report.get('status') in words:
            report['status'] = words[report['status']]
            conn.execute(import_jobs.update().where(import_jobs.c.id == job_id)
                         .values(report=json.dumps(report, default=str)))


def upgrade() -> None:
    with op.batch_alter_table('import_jobs') as batch:
        batch.alter_column('status', existing_type=sa.String(16), type_=sa.String(32), existing_nullable=False)
    convert(NEW_WORDS)


def downgrade() -> None:
    convert(OLD_WORDS)
    with op.batch_alter_table('import_jobs') as batch:
        batch.alter_column('status', existing_type=sa.String(32), type_=sa.String(16), existing_nullable=False)
