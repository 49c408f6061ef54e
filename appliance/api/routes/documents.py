"""Documents of a collection: batch upsert by id, get and delete by id."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from appliance.api.auth import requires_scope
from appliance.api.metrics import DOCUMENTS_UPSERTED
from appliance.api.schemas import (
    DeleteResult,
    DocumentOut,
    JobList,
    JobOut,
    UpsertDocuments,
    UpsertResult,
)
from appliance.errors import DocumentNotFound
from appliance.ingest.jobs import Job
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

    @get("/{doc_id:str}", sync_to_thread=True)
    def get_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DocumentOut:
        document = appliance.collections.document(name, doc_id)
        return DocumentOut(
            id=document.id,
            text=document.text,
            metadata=document.metadata,
            content_hash=document.content_hash,
            created_at=document.created_at.isoformat(),
            updated_at=document.updated_at.isoformat(),
        )

    @delete("/{doc_id:str}", status_code=200, sync_to_thread=True, guards=[requires_scope("write")])
    def delete_document(
        self, name: FromPath[str], doc_id: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> DeleteResult:
        deleted = appliance.ingest.delete(name, [doc_id])
        if not deleted:
            raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
        return DeleteResult(deleted)


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
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
