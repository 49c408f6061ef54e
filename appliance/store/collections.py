"""Repository functions over collections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.errors import CollectionExists, CollectionNotFound
from appliance.store.schema import CollectionRow, EmbeddingVersionRow


def get_collection(session: Session, name: str) -> CollectionRow:
    row = session.scalars(select(CollectionRow).where(CollectionRow.name == name)).one_or_none()
    if row is None:
        raise CollectionNotFound(f"collection {name!r} does not exist; create it first")
    return row


def find_collection(session: Session, name: str) -> CollectionRow | None:
    return session.scalars(select(CollectionRow).where(CollectionRow.name == name)).one_or_none()


def list_collections(session: Session) -> list[CollectionRow]:
    return list(session.scalars(select(CollectionRow).order_by(CollectionRow.name)))


def create_collection(
    session: Session,
    *,
    name: str,
    backend: str,
    spec: str,
    options: dict[str, Any],
    model_id: str,
    dimension: int | None = None,
) -> CollectionRow:
    """A new collection searching with `model_id`, whose version row records the vectors'
    `dimension` (the one place it is stored)."""
    if find_collection(session, name) is not None:
        raise CollectionExists(f"collection {name!r} already exists; pick another name")
    row = CollectionRow(
        name=name, index_backend=backend, index_spec=spec, index_options=options, model_id=model_id
    )
    session.add(row)
    session.flush()
    session.add(
        EmbeddingVersionRow(
            collection_id=row.id, model_id=model_id, state="ready", dimension=dimension
        )
    )
    session.flush()
    return row


def delete_collection(session: Session, name: str) -> None:
    session.delete(get_collection(session, name))


def collection_generation(session: Session, collection_id: int) -> int:
    generation = session.scalar(
        select(CollectionRow.generation).where(CollectionRow.id == collection_id)
    )
    if generation is None:
        raise CollectionNotFound(f"collection id {collection_id} no longer exists")
    return int(generation)
