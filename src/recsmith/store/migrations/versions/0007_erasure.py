"""erasure: a partial (dataset_group_id, session_id) index on interactions, so that deleting a user deletes the
events of the sessions linked to them without reading the whole table; and deletion tombstones hold a keyed hash
(HMAC-SHA256) of the deleted user or item id, not the id: the raw ids stored before are replaced by their hashes,
under the key the store resolves (``RECSMITH_ERASURE_KEY``, else ``RECSMITH_HOME/erasure.key``, see
``Settings.resolved_erasure_key``)

The downgrade leaves the hashes: the raw ids cannot be recovered from them (an older recsmith then no longer
hides users deleted before the downgrade from models trained before their deletion; retrain).

Revision ID: 0007_erasure
Revises: 0006
Create Date: 2026-12-01 11:00:00
"""

import sqlalchemy as sa
from alembic import context, op

from recsmith.store.live_records import keyed_hash

revision = '0007_erasure'
down_revision = '0006'
branch_labels = None
depends_on = None

deletions = sa.table('deletions', sa.column('dataset_group_id', sa.Integer()), sa.column('kind', sa.String()),
                     sa.column('entity_id', sa.Text()))


def _key() -> bytes:
    """The store's key (passed in by ``Store.migrate``), else the environment's settings'."""
    given = context.config.attributes.get('erasure_key')
    if given is not None:
        return given() if callable(given) else given
    from recsmith.settings import Settings

    return Settings().resolved_erasure_key()


NOT_NULL = sa.text('session_id IS NOT NULL')


def upgrade() -> None:
    op.create_index('ix_interactions_group_session', 'interactions', ['dataset_group_id', 'session_id'],
                    sqlite_where=NOT_NULL, postgresql_where=NOT_NULL)
    conn = op.get_bind()
    rows = conn.execute(sa.select(deletions.c.dataset_group_id, deletions.c.kind, deletions.c.entity_id)).all()
    if not rows:
        return
    key = _key()
    if conn.dialect.name == 'sqlite':  # overwrite the raw ids' old cells (the next checkpoint empties the log)
        conn.exec_driver_sql('PRAGMA secure_delete = ON')
    for group_id, kind, entity_id in rows:
        hashed = keyed_hash(key, entity_id)
        conn.execute(deletions.update().where(deletions.c.dataset_group_id == group_id, deletions.c.kind == kind,
                                              deletions.c.entity_id == entity_id).values(entity_id=hashed))


def downgrade() -> None:
    op.drop_index('ix_interactions_group_session', table_name='interactions')
