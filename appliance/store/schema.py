"""SQLAlchemy 2 models: the source of truth for collections, documents and their vectors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Document metadata: JSON text on SQLite, JSONB on PostgreSQL, which metadata filters compile
# to there (parsed once when written, not on every filtered search).
MetadataJSON = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class CollectionRow(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    index_backend: Mapped[str] = mapped_column(String(32))
    index_spec: Mapped[str] = mapped_column(String(256))
    # Query-time defaults (ef, nprobe) and build options.
    index_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The model whose vectors the collection searches with.
    model_id: Mapped[str] = mapped_column(String(256))
    # Bumped by every write: keys caches and tells other processes the index must catch up.
    generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    documents: Mapped[list[DocumentRow]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(512))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", MetadataJSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    collection: Mapped[CollectionRow] = relationship(back_populates="documents")


class VectorRow(Base):
    """The embedding of one chunk of one document by one model (short texts are one chunk).

    Vectors are immutable and their ids are never reused (AUTOINCREMENT): a changed text gets
    new rows. Indexes are keyed by this id, so an index is brought up to date with the store by
    a plain set difference of ids.
    """

    __tablename__ = "vectors"
    __table_args__ = (
        UniqueConstraint("document_id", "model_id", "chunk_index"),
        Index("ix_vectors_collection_model", "collection_id", "model_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(256))
    chunk_index: Mapped[int] = mapped_column(default=0)
    # The chunk's character span in the document text.
    char_start: Mapped[int] = mapped_column(default=0)
    char_end: Mapped[int] = mapped_column(default=0)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class EmbeddingVersionRow(Base):
    """One model's vector set for a collection: being built, ready to switch to, or active.

    A collection searches with exactly one version (its `model_id`); the others keep their
    vectors so a switch can be rolled back without re-embedding what did not change.
    """

    __tablename__ = "embedding_versions"
    __table_args__ = (UniqueConstraint("collection_id", "model_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(256))
    # building | ready | active | interrupted | failed
    state: Mapped[str] = mapped_column(String(16), default="building")
    documents_total: Mapped[int] = mapped_column(default=0)
    documents_embedded: Mapped[int] = mapped_column(default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    # The size of the vectors the model makes, recorded where they are made.
    dimension: Mapped[int | None] = mapped_column(default=None)


class QueryLogRow(Base):
    """How often a search was asked recently: what start-up cache warming replays."""

    __tablename__ = "query_log"
    __table_args__ = (UniqueConstraint("collection_id", "query", "params"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    # Canonical JSON of the replayable parameters: {"filter", "limit", "mode"}.
    params: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(default=0)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class FeedbackRow(Base):
    """A user's relevance judgment of one result of one served search."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_collection", "collection_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    query_id: Mapped[str] = mapped_column(String(64))
    query: Mapped[str] = mapped_column(Text)
    # The document ids the search returned, in order: the run that judgments are scored on.
    served: Mapped[list[str]] = mapped_column(JSON)
    doc_id: Mapped[str] = mapped_column(String(512))
    relevance: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRow(Base):
    """A background ingest: its documents, where it got to, and what failed."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(String(128))
    # queued | running | succeeded | failed
    state: Mapped[str] = mapped_column(String(16), default="queued")
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    embedded: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    # Documents refused one by one: [{"id", "error"}].
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # The accepted documents, kept until the job ends so a restart can resume it.
    payload: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
