"""The schema of release 0.1.0: every table, index, the FTS5 keyword table and its triggers.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Frozen: it spells out what `Base.metadata.create_all` and the keyword module created in that
release, so a later change to the models is a new revision, never an edit here. A data dir of
0.1.0 (these tables, no revision) is stamped with this revision, not rebuilt.

On PostgreSQL (a store that release never had) the same tables are created, with document
metadata as JSONB and without the FTS5 table and its triggers, which only SQLite has; on
SQLite it creates exactly what it always did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_FTS_DDL = (
    "CREATE VIRTUAL TABLE documents_fts USING fts5("
    "title, body, tokenize = 'porter unicode61 remove_diacritics 2')",
    """CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts(rowid, title, body)
        VALUES (new.id, coalesce(json_extract(new.metadata, '$.title'), ''), new.text);
    END""",
    """CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
        DELETE FROM documents_fts WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER documents_fts_update AFTER UPDATE OF text, metadata
        ON documents BEGIN
        UPDATE documents_fts
        SET title = coalesce(json_extract(new.metadata, '$.title'), ''), body = new.text
        WHERE rowid = new.id;
    END""",
)


def _collection_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("index_backend", sa.String(32), nullable=False),
        sa.Column("index_spec", sa.String(256), nullable=False),
        sa.Column("index_options", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("embedded", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(512), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_id", "external_id"),
        _collection_fk(),
    )
    op.create_index("ix_documents_collection_id", "documents", ["collection_id"])
    op.create_table(
        "embedding_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("documents_total", sa.Integer(), nullable=False),
        sa.Column("documents_embedded", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_id", "model_id"),
        _collection_fk(),
    )
    op.create_table(
        "query_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_id", "query", "params"),
        _collection_fk(),
    )
    op.create_index("ix_query_log_last_seen", "query_log", ["last_seen"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(64), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("served", sa.JSON(), nullable=False),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("relevance", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        _collection_fk(),
    )
    op.create_index("ix_feedback_collection", "feedback", ["collection_id"])
    op.create_table(
        "vectors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id", "model_id", "chunk_index"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        _collection_fk(),
        # Vector ids are never reused: indexes catch up with the store by id set difference.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_vectors_collection_model", "vectors", ["collection_id", "model_id"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in _FTS_DDL:
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError(
        "the first revision has nothing below it; roll back by restoring a backup"
    )
