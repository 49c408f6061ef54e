"""Documents of a collection: batch upsert by id, get and delete by id."""

from __future__ import annotations

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from appliance.api.metrics import DOCUMENTS_UPSERTED
from appliance.api.schemas import DeleteResult, DocumentOut, UpsertDocuments, UpsertResult
from appliance.errors import DocumentNotFound
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.store import documents as document_store


class DocumentController(Controller):
    path = "/collections/{name:str}/documents"
    tags = ["documents"]

    @put(sync_to_thread=True)
    def upsert_documents(
        self,
        name: FromPath[str],
        data: JSONBody[UpsertDocuments],
        appliance: NamedDependency[Appliance],
    ) -> UpsertResult:
        outcome = appliance.ingest.upsert(
            name,
            [DocumentInput(id=d.id, text=d.text, metadata=d.metadata) for d in data.documents],
        )
        DOCUMENTS_UPSERTED.labels(collection=name).inc(outcome.upserted)
        return UpsertResult(
            upserted=outcome.upserted, embedded=outcome.embedded, unchanged=outcome.unchanged
        )

    @get("/{doc_id:str}", sync_to_thread=True)
    def get_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DocumentOut:
        live = appliance.collections.get(name)
        with appliance.db.read() as session:
            row = document_store.get_document(session, live.id, doc_id)
            if row is None:
                raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
            return DocumentOut(
                id=row.external_id,
                text=row.text,
                metadata=row.meta,
                content_hash=row.content_hash,
                created_at=row.created_at.isoformat(),
                updated_at=row.updated_at.isoformat(),
            )

    @delete("/{doc_id:str}", status_code=200, sync_to_thread=True)
    def delete_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DeleteResult:
        deleted = appliance.ingest.delete(name, [doc_id])
        if not deleted:
            raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
        return DeleteResult(deleted)
