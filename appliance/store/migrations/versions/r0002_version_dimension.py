"""Each embedding version records its vector dimension, and the active model lives in one place.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

- `embedding_versions.dimension`: the size of the vectors the version's model makes, stored
  where the vectors are made (collection creation, a reindex's first batch) instead of worked
  out from blob lengths or a default. Backfilled from the stored vectors.
- The active model was stored twice: `collections.model_id` and an `embedding_versions` row in
  state `active`. The collection's `model_id` is now the only record; such rows become `ready`
  (the listing still shows the collection's model as active).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("embedding_versions", sa.Column("dimension", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE embedding_versions SET dimension = ("
        "SELECT length(vectors.vector) / 4 FROM vectors "
        "WHERE vectors.collection_id = embedding_versions.collection_id "
        "AND vectors.model_id = embedding_versions.model_id LIMIT 1)"
    )
    op.execute("UPDATE embedding_versions SET state = 'ready' WHERE state = 'active'")
    # A collection that never reindexed has no version row: give it one, so its model's
    # dimension is recorded too.
    op.execute(
        "INSERT INTO embedding_versions (collection_id, model_id, state, documents_total, "
        "documents_embedded, detail, created_at, updated_at, dimension) "
        "SELECT collections.id, collections.model_id, 'ready', 0, 0, '', CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP, (SELECT length(vectors.vector) / 4 FROM vectors "
        "WHERE vectors.collection_id = collections.id "
        "AND vectors.model_id = collections.model_id LIMIT 1) "
        "FROM collections WHERE NOT EXISTS (SELECT 1 FROM embedding_versions "
        "WHERE embedding_versions.collection_id = collections.id "
        "AND embedding_versions.model_id = collections.model_id)"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE embedding_versions SET state = 'active' WHERE EXISTS ("
        "SELECT 1 FROM collections WHERE collections.id = embedding_versions.collection_id "
        "AND collections.model_id = embedding_versions.model_id)"
    )
    with op.batch_alter_table("embedding_versions") as batch:
        batch.drop_column("dimension")
