"""Background ingest jobs, kept in SQLite so that a restart resumes them where they got to.

Upserts are idempotent (unchanged texts are not re-embedded), and a job's progress is
committed with each batch, so resuming from the recorded offset never loses or doubles work.
Bulk deletes (by ids or by filter) run here too, batch by batch, as idempotently: their job
ids start with `del-`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from appliance.errors import ApplianceError, InvalidRequest, JobNotFound
from appliance.ingest.pipeline import DocumentInput, IngestService
from appliance.store.database import Database
from appliance.store.schema import JobRow

log = logging.getLogger(__name__)
# A job as the runner records it (callers above the store name it by this).
Job = JobRow
FINISHED = ("succeeded", "failed")
# A delete job's id starts with this (not hexadecimal, so no upsert job's id does).
DELETE_JOB_PREFIX = "del-"


def job_kind(job_id: str) -> str:
    """upsert or delete."""
    return "delete" if job_id.startswith(DELETE_JOB_PREFIX) else "upsert"


class JobRunner:
    def __init__(self, db: Database, ingest: IngestService, *, batch_size: int = 256) -> None:
        self.db = db
        self.ingest = ingest
        self.batch_size = batch_size
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- submitting and reading -------------------------------------------------------------
    def submit(self, collection: str, documents: Sequence[DocumentInput]) -> JobRow:
        """Accept the documents that validate; record the others as per-document errors."""
        self.ingest.collections.get(collection)  # 404 now, not later in the job
        self.ingest.check_batch_size(documents)
        accepted: list[DocumentInput] = []
        errors: list[dict[str, str]] = []
        seen: set[str] = set()
        for position, doc in enumerate(documents):
            try:
                if doc.id in seen:
                    raise InvalidRequest(f"documents[{position}].id {doc.id!r} appears twice")
                self.ingest.check(doc, f"documents[{position}]")
            except InvalidRequest as exc:
                errors.append({"id": doc.id, "error": exc.detail})
                continue
            seen.add(doc.id)
            accepted.append(doc)
        if not accepted:
            raise InvalidRequest(f"no document in the batch is valid; first error: {errors[0]}")
        job = JobRow(
            id=uuid.uuid4().hex,
            collection=collection,
            total=len(accepted),
            errors=errors,
            payload=[asdict(doc) for doc in accepted],
        )
        with self.db.write() as session:
            session.add(job)
        self._wake.set()
        return job

    def submit_delete(
        self,
        collection: str,
        *,
        filter: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
        total: int = 0,
    ) -> JobRow:
        """A background delete of the given ids, or of what matches `filter` when it runs
        (`total`: how many matched when it was submitted)."""
        self.ingest.collections.get(collection)  # 404 now, not later in the job
        spec: dict[str, Any] = {"op": "delete"}
        if ids is not None:
            spec["ids"], total = list(ids), len(ids)
        else:
            spec["filter"] = filter
        job = JobRow(
            id=DELETE_JOB_PREFIX + uuid.uuid4().hex[: 32 - len(DELETE_JOB_PREFIX)],
            collection=collection,
            total=total,
            errors=[],
            payload=[spec],
        )
        with self.db.write() as session:
            session.add(job)
        self._wake.set()
        return job

    def get(self, job_id: str) -> JobRow:
        with self.db.read() as session:
            job = session.get(JobRow, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return job

    def recent(self, limit: int = 20) -> list[JobRow]:
        """The newest jobs first, without their payloads (which may be large)."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(JobRow)
                    .options(defer(JobRow.payload))
                    .order_by(JobRow.created_at.desc(), JobRow.id)
                    .limit(limit)
                )
            )

    # -- the worker -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ingest-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            job_id = self._next()
            if job_id is None:
                self._wake.wait(timeout=5.0)
                self._wake.clear()
                continue
            self.run_job(job_id)

    def _next(self) -> str | None:
        with self.db.read() as session:
            return session.scalars(
                select(JobRow.id)
                .where(JobRow.state.in_(("queued", "running")))
                .order_by(JobRow.created_at)
                .limit(1)
            ).first()

    def run_job(self, job_id: str) -> None:
        """Process a job from its recorded offset to the end (or until stopped)."""
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is None or job.state in FINISHED:
                return
            if job.state == "running":
                log.info("resuming job %s at %d of %d documents", job.id, job.done, job.total)
            job.state = "running"
            collection, payload, done = job.collection, list(job.payload), job.done
        if job_kind(job_id) == "delete":
            self._run_delete(job_id, collection, payload[0] if payload else {}, done)
            return
        try:
            while done < len(payload) and not self._stop.is_set():
                chunk = [DocumentInput(**doc) for doc in payload[done : done + self.batch_size]]
                outcome = self.ingest.upsert(collection, chunk)
                done += len(chunk)
                with self.db.write() as session:
                    job = session.get(JobRow, job_id)
                    assert job is not None
                    job.done = done
                    job.embedded += outcome.embedded
                    job.unchanged += outcome.unchanged
            if done >= len(payload):
                self._finish(job_id, "succeeded", "")
        except ApplianceError as exc:
            self._finish(job_id, "failed", exc.detail)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", f"{type(exc).__name__}: {exc}")

    def _run_delete(self, job_id: str, collection: str, spec: dict[str, Any], done: int) -> None:
        """Delete batch by batch, each through the one write path, recording progress:
        `done` counts ids handled (or documents deleted, for a filter), `unchanged` the ids
        that were not there."""
        from appliance.ingest.deletion import delete_matching

        try:
            ids = spec.get("ids")
            while not self._stop.is_set():
                if ids is not None:
                    chunk = ids[done : done + self.batch_size]
                    if not chunk:
                        break
                    deleted = self.ingest.delete(collection, chunk)
                    handled, missing = len(chunk), len(chunk) - deleted
                else:
                    handled = delete_matching(
                        self.ingest, collection, spec["filter"], limit=self.batch_size
                    )
                    missing = 0
                    if handled == 0:
                        break
                done += handled
                with self.db.write() as session:
                    job = session.get(JobRow, job_id)
                    assert job is not None
                    job.done = done
                    job.unchanged += missing
            if not self._stop.is_set():
                self._finish(job_id, "succeeded", "")
        except ApplianceError as exc:
            self._finish(job_id, "failed", exc.detail)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, "failed", f"{type(exc).__name__}: {exc}")

    def _finish(self, job_id: str, state: str, detail: str) -> None:
        with self.db.write() as session:
            job = session.get(JobRow, job_id)
            if job is not None:
                job.state, job.detail = state, detail
                if state == "succeeded":
                    job.payload = []  # done with: free the space
