"""A typed HTTP client for the appliance's API: one method per route, answers decoded into the
API's own response types, and every error answer raised as `ApplianceAPIError` carrying the
server's `{"error", "detail"}`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from appliance.api.schemas import (
    CollectionInfo,
    CollectionList,
    DeleteResult,
    DocumentOut,
    Health,
    JobOut,
    Readiness,
    SearchResponse,
    UpsertResult,
    WarmOut,
)

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")
_FINISHED_JOB_STATES = ("succeeded", "failed")


class ApplianceClientError(Exception):
    """Base class of what the client raises."""


class ApplianceUnavailable(ApplianceClientError):
    """The server could not be reached or did not answer in time."""


class ApplianceAPIError(ApplianceClientError):
    """The server answered with an error status; `error` is its stable code (e.g.
    `collection_not_found`), `detail` its message saying what to fix."""

    def __init__(self, status_code: int, error: str, detail: str) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail


class EmbeddingData(msgspec.Struct, kw_only=True):
    index: int
    embedding: list[float]
    object: str = "embedding"


class EmbeddingsResult(msgspec.Struct, kw_only=True):
    """The answer of the OpenAI-compatible `POST /v1/embeddings`."""

    data: list[EmbeddingData]
    model: str
    usage: dict[str, int] = msgspec.field(default_factory=dict)
    object: str = "list"

    def vectors(self) -> list[list[float]]:
        """The embeddings in input order (the server may list them in any order)."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]


class _ModelCard(msgspec.Struct, kw_only=True):
    id: str


class _ModelList(msgspec.Struct, kw_only=True):
    data: list[_ModelCard]


class ApplianceClient:
    """Synchronous client over one base URL. `api_key`, when given, is sent as a Bearer token.
    Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApplianceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Health

    def health(self) -> Health:
        return self._call("GET", "/health", Health)

    def ready(self) -> Readiness:
        """Readiness; a server still loading (503) answers too, with its status and detail."""
        response = self._send("GET", "/ready")
        if response.status_code == 503:
            return msgspec.json.decode(response.content, type=Readiness)
        return self._decode(response, Readiness)

    def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.2) -> Readiness:
        """Poll `/ready` until the server says ready; ApplianceUnavailable after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                readiness = self.ready()
                if readiness.status == "ready":
                    return readiness
                last = f"{readiness.status}: {readiness.detail}"
            except ApplianceUnavailable as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise ApplianceUnavailable(f"{self.url} not ready after {timeout}s ({last})")
            time.sleep(interval)

    # Collections

    def list_collections(self) -> list[CollectionInfo]:
        return self._call("GET", "/collections", CollectionList).collections

    def create_collection(
        self, name: str, *, index: Mapping[str, Any] | None = None
    ) -> CollectionInfo:
        """Create a collection; `index` is the API's index spec (backend, spec, ef, ...)."""
        body: dict[str, Any] = {"name": name}
        if index is not None:
            body["index"] = dict(index)
        return self._call("POST", "/collections", CollectionInfo, json=body)

    def get_collection(self, name: str) -> CollectionInfo:
        return self._call("GET", f"/collections/{_segment(name)}", CollectionInfo)

    def delete_collection(self, name: str) -> None:
        self._decode(self._send("DELETE", f"/collections/{_segment(name)}"), None)

    # Documents

    def upsert_documents(
        self,
        collection: str,
        documents: Iterable[Mapping[str, Any]],
        *,
        run_async: bool = False,
    ) -> UpsertResult | JobOut:
        """Upsert `{"id", "text", "metadata"}` documents. A batch the server runs in the
        background (over its async threshold, or `run_async`) answers with the job."""
        response = self._send(
            "PUT",
            f"/collections/{_segment(collection)}/documents",
            json={"documents": [dict(document) for document in documents]},
            params={"async": "true"} if run_async else None,
        )
        if response.status_code == 202:
            return self._decode(response, JobOut)
        return self._decode(response, UpsertResult)

    def get_document(self, collection: str, doc_id: str) -> DocumentOut:
        path = f"/collections/{_segment(collection)}/documents/{_segment(doc_id)}"
        return self._call("GET", path, DocumentOut)

    def delete_document(self, collection: str, doc_id: str) -> int:
        """Delete one document; answers how many were deleted (a missing one raises 404)."""
        path = f"/collections/{_segment(collection)}/documents/{_segment(doc_id)}"
        return self._call("DELETE", path, DeleteResult).deleted

    def get_job(self, job_id: str) -> JobOut:
        return self._call("GET", f"/jobs/{_segment(job_id)}", JobOut)

    def wait_for_job(self, job_id: str, timeout: float = 600.0, interval: float = 0.2) -> JobOut:
        """Poll a job until it succeeds or fails; ApplianceClientError when it failed or
        did not finish within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job.state == "failed":
                raise ApplianceClientError(f"job {job_id} failed: {job.detail or job.errors}")
            if job.state in _FINISHED_JOB_STATES:
                return job
            if time.monotonic() >= deadline:
                raise ApplianceClientError(
                    f"job {job_id} still {job.state} after {timeout}s ({job.done}/{job.total})"
                )
            time.sleep(interval)

    # Search

    def search(
        self,
        collection: str,
        query: str,
        *,
        limit: int = 10,
        filter: Mapping[str, Any] | None = None,
        mode: str | None = None,
        params: Mapping[str, int] | None = None,
        fusion: str | None = None,
        rrf_k: int | None = None,
        dense_weight: float | None = None,
        alpha: float | None = None,
        candidates: int | None = None,
        rerank: bool | None = None,
        rerank_top_n: int | None = None,
        timings: bool | None = None,
    ) -> SearchResponse:
        """Search a collection; options left out take the collection's defaults. `filter` is
        the appliance's Mongo-style metadata filter."""
        options = {
            "filter": dict(filter) if filter is not None else None,
            "mode": mode,
            "params": dict(params) if params is not None else None,
            "fusion": fusion,
            "rrf_k": rrf_k,
            "dense_weight": dense_weight,
            "alpha": alpha,
            "candidates": candidates,
            "rerank": rerank,
            "rerank_top_n": rerank_top_n,
            "timings": timings,
        }
        body = {"query": query, "limit": limit}
        body.update({key: value for key, value in options.items() if value is not None})
        path = f"/collections/{_segment(collection)}/search"
        return self._call("POST", path, SearchResponse, json=body)

    def warm(
        self,
        collection: str,
        queries: Sequence[str],
        *,
        limit: int = 10,
        mode: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> WarmOut:
        """Run each query once so the server caches its answer (`POST .../warm`); queries
        that fail are listed in the answer's `failed`, not raised."""
        body: dict[str, Any] = {"queries": list(queries), "limit": limit, "mode": mode}
        if filter is not None:
            body["filter"] = dict(filter)
        path = f"/collections/{_segment(collection)}/warm"
        return self._call("POST", path, WarmOut, json=body)

    # OpenAI-compatible embeddings

    def embed(self, texts: str | Sequence[str], *, model: str | None = None) -> EmbeddingsResult:
        """`POST /v1/embeddings` with float vectors; `model` absent: the server's default."""
        body: dict[str, Any] = {
            "input": texts if isinstance(texts, str) else list(texts),
            "encoding_format": "float",
        }
        if model is not None:
            body["model"] = model
        return self._call("POST", "/v1/embeddings", EmbeddingsResult, json=body)

    def list_models(self) -> list[str]:
        """The model names `/v1/embeddings` accepts (`GET /v1/models`)."""
        return [card.id for card in self._call("GET", "/v1/models", _ModelList).data]

    # Transport

    def _call(self, method: str, path: str, kind: type[T], **kwargs: Any) -> T:
        return self._decode(self._send(method, path, **kwargs), kind)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApplianceUnavailable(f"{method} {self.url}{path} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise ApplianceUnavailable(f"cannot reach {self.url}{path}: {exc}") from exc

    def _decode(self, response: httpx.Response, kind: type[T] | None) -> T:
        if response.is_error:
            raise _api_error(response)
        if kind is None:
            return None  # type: ignore[return-value]
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.DecodeError as exc:
            raise ApplianceClientError(
                f"unexpected answer to {response.request.method} {response.request.url}: {exc}"
            ) from exc


def _segment(value: str) -> str:
    """One path segment: ids may hold '/', '?', '#' or spaces."""
    return quote(value, safe="")


def _api_error(response: httpx.Response) -> ApplianceAPIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return ApplianceAPIError(response.status_code, body["error"], str(body.get("detail", "")))
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        # OpenAI's shape, which /v1 routes may answer with: {"error": {"message", "type", ...}}.
        inner = body["error"]
        code = inner.get("code") or inner.get("type") or "http_error"
        return ApplianceAPIError(response.status_code, str(code), str(inner.get("message", "")))
    return ApplianceAPIError(
        response.status_code, "http_error", response.text[:500] or response.reason_phrase
    )
