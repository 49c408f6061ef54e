"""Documents of a collection: batch upsert by id, get and delete by id, list page by page,
delete in bulk by ids or filter."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import UNSET

from appliance.api.auth import requires_scope
from appliance.api.metrics import DOCUMENTS_UPSERTED
from appliance.api.schemas import (
    DeleteDocuments,
    DeleteResult,
    DocumentList,
    DocumentOut,
    JobList,
    JobOut,
    UpsertDocuments,
    UpsertResult,
)
from appliance.collections.listing import list_documents, parse_filter_param
from appliance.collections.manager import StoredDocument
from appliance.errors import DocumentNotFound
from appliance.ingest.deletion import delete_documents
from appliance.ingest.jobs import Job, job_kind
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance


class DocumentController(Controller):
    path = "/collections/{name:str}/documents"
    tags = ["documents"]
    guards = [requires_scope("read")]

    @put(sync_to_thread=True, guards=[requires_scope("write")])
    def upsert_documents(
        self,
        name: FromPath[str],
        data: JSONBody[UpsertDocuments],
        appliance: NamedDependency[Appliance],
        run_async: Annotated[
            bool,
            QueryParameter(name="async", description="Run as a background job (202 + job id)."),
        ] = False,
    ) -> Response[UpsertResult | JobOut]:
        """Upsert a batch. Over `async_threshold` documents, or with `?async=true`, the batch
        runs as a background job: 202 with the job; follow it at `GET /jobs/{id}`."""
        documents = [
            DocumentInput(id=d.id, text=d.text, metadata=d.metadata) for d in data.documents
        ]
        if run_async or len(documents) > appliance.settings.async_threshold:
            job = appliance.jobs.submit(name, documents)
            return Response(job_out(job), status_code=HTTP_202_ACCEPTED)
        outcome = appliance.ingest.upsert(name, documents)
        DOCUMENTS_UPSERTED.labels(collection=name).inc(outcome.upserted)
        return Response(
            UpsertResult(
                upserted=outcome.upserted, embedded=outcome.embedded, unchanged=outcome.unchanged
            )
        )

    @get(sync_to_thread=True)
    def list_documents(
        self,
        name: FromPath[str],
        appliance: NamedDependency[Appliance],
        limit: Annotated[
            int, QueryParameter(ge=1, le=1000, description="Documents per page.")
        ] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=200,
                description="The next_cursor of the previous page; absent for the first.",
            ),
        ] = None,
        filter_: Annotated[
            str | None,
            QueryParameter(
                name="filter",
                # A URL stays within what HTTP servers read (uvicorn refuses ~64 KiB lines).
                max_length=8_000,
                description='A metadata filter as in search, as URL-encoded JSON: {"lang":"en"}.',
            ),
        ] = None,
    ) -> DocumentList:
        """The collection's documents page by page, in the order they were first stored (an
        update keeps a document's place); follow `next_cursor` until it is null."""
        page = list_documents(
            appliance.collections,
            name,
            limit=limit,
            cursor=cursor,
            filter=parse_filter_param(filter_),
        )
        return DocumentList(
            documents=[document_out(document) for document in page.documents],
            next_cursor=page.next_cursor,
        )

    @post("/delete", status_code=200, sync_to_thread=True, guards=[requires_scope("write")])
    def delete_documents(
        self,
        name: FromPath[str],
        data: JSONBody[DeleteDocuments],
        appliance: NamedDependency[Appliance],
    ) -> Response[DeleteResult | JobOut]:
        """Delete by `ids` or by `filter` (exactly one). Over `delete_async_threshold`
        documents the delete runs as a background job: 202 with the job; follow it at
        `GET /jobs/{id}`."""
        outcome = delete_documents(
            appliance.ingest,
            appliance.jobs,
            name,
            filter=data.filter if data.filter is not UNSET else None,
            ids=data.ids if data.ids is not UNSET else None,
            async_threshold=appliance.settings.delete_async_threshold,
        )
        if outcome.job is not None:
            return Response(job_out(outcome.job), status_code=HTTP_202_ACCEPTED)
        return Response(DeleteResult(outcome.deleted))

    @get("/{doc_id:str}", sync_to_thread=True)
    def get_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DocumentOut:
        return document_out(appliance.collections.document(name, doc_id))

    @delete("/{doc_id:str}", status_code=200, sync_to_thread=True, guards=[requires_scope("write")])
    def delete_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DeleteResult:
        deleted = appliance.ingest.delete(name, [doc_id])
        if not deleted:
            raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
        return DeleteResult(deleted)

    # The static path /delete (the bulk delete's) would shadow a document whose id is
    # "delete" for the other methods; these keep it reachable.
    @get("/delete", sync_to_thread=True, include_in_schema=False)
    def get_document_named_delete(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DocumentOut:
        """The document whose id is `delete` (the path POST uses for bulk deletes)."""
        return document_out(appliance.collections.document(name, "delete"))

    @delete(
        "/delete",
        status_code=200,
        sync_to_thread=True,
        include_in_schema=False,
        guards=[requires_scope("write")],
    )
    def delete_document_named_delete(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DeleteResult:
        """Delete the document whose id is `delete`."""
        deleted = appliance.ingest.delete(name, ["delete"])
        if not deleted:
            raise DocumentNotFound(f"document 'delete' is not in collection {name!r}")
        return DeleteResult(deleted)


def document_out(document: StoredDocument) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        text=document.text,
        metadata=document.metadata,
        content_hash=document.content_hash,
        created_at=document.created_at.isoformat(),
        updated_at=document.updated_at.isoformat(),
    )


def job_out(job: Job) -> JobOut:
    kind = job_kind(job.id)
    return JobOut(
        id=job.id,
        kind=kind,
        deleted=job.done - job.unchanged if kind == "delete" else 0,
        collection=job.collection,
        state=job.state,
        total=job.total,
        done=job.done,
        embedded=job.embedded,
        unchanged=job.unchanged,
        errors=list(job.errors),
        detail=job.detail,
        created_at=job.created_at.isoformat(),
        updated_at=job.updated_at.isoformat(),
    )


class JobController(Controller):
    path = "/jobs"
    tags = ["jobs"]
    guards = [requires_scope("read")]

    @get(sync_to_thread=True)
    def list_jobs(
        self,
        appliance: NamedDependency[Appliance],
        limit: Annotated[int, QueryParameter(ge=1, le=200, description="Jobs to return.")] = 20,
    ) -> JobList:
        """The most recent background jobs, newest first."""
        return JobList([job_out(job) for job in appliance.jobs.recent(limit)])

    @get("/{job_id:str}", sync_to_thread=True)
    def get_job(self, job_id: FromPath[str], appliance: NamedDependency[Appliance]) -> JobOut:
        return job_out(appliance.jobs.get(job_id))
