"""Search: per collection, and the seed's `POST /search` on the default collection."""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial
from typing import Any

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from msgspec import UNSET

from appliance.api.auth import requires_scope
from appliance.api.metrics import (
    SEARCH_FEEDBACK,
    search_latency,
    search_requests,
    search_stage,
)
from appliance.api.schemas import (
    ChunkOut,
    DefaultSearchRequest,
    FeedbackIn,
    FeedbackRecorded,
    HighlightOut,
    SearchHitOut,
    SearchRequest,
    SearchResponse,
    WarmIn,
    WarmOut,
)
from appliance.errors import InvalidRequest
from appliance.index.base import SearchParams
from appliance.search.pipeline import QueryVector, SearchOptions
from appliance.service import Appliance


async def run_search(
    appliance: Appliance, collection: str, query: str, options: SearchOptions, timings: bool
) -> SearchResponse:
    # A cached answer is returned on the event loop (no store read, no thread hop). Otherwise
    # the query is queued for embedding and awaited (no thread waits for the batch); then the
    # search is answered on the loop if nothing would make it wait, else on a search thread.
    search = appliance.search
    outcome = search.lookup(collection, query, options)
    if outcome is None:
        # Past the bound a search is refused (503) rather than queued without end.
        with search.admission:
            ahead = search.embed_ahead(collection, query, options)
            embedded: QueryVector | None = None
            if ahead is not None:
                embedded = await asyncio.wrap_future(ahead)
            outcome = search.answer_now(collection, query, options, embedded)
            if outcome is None:
                call = partial(search.search, collection, query, options=options, embedded=embedded)
                outcome = await asyncio.wrap_future(search.submit(call))
    search_requests(collection).inc()
    search_latency(collection).observe(outcome.took_ms / 1000)
    for stage, ms in outcome.timings_ms.items():
        search_stage(stage).observe(ms / 1000)
    return SearchResponse(
        results=[
            SearchHitOut(
                id=hit.id,
                score=hit.score,
                text=hit.text,
                metadata=hit.metadata,
                chunk=ChunkOut(index=hit.chunk.index, start=hit.chunk.start, end=hit.chunk.end)
                if hit.chunk
                else None,
                highlight=HighlightOut(
                    text=hit.highlight.text, spans=hit.highlight.spans, start=hit.highlight.start
                )
                if hit.highlight
                else UNSET,
            )
            for hit in outcome.results
        ],
        took_ms=round(outcome.took_ms, 3),
        mode=outcome.mode,
        query_id=outcome.query_id,
        timings_ms={k: round(v, 3) for k, v in outcome.timings_ms.items()} if timings else None,
        cached=outcome.cached,
        model_id=outcome.model_id,
    )


def one_filter(
    filter_: dict[str, Any] | None, filters: dict[str, Any] | None
) -> dict[str, Any] | None:
    """`filter` and `filters` name the same thing; both given must agree."""
    if filter_ is not None and filters is not None and filter_ != filters:
        raise InvalidRequest(
            "filter and filters are the same parameter and were given different values: "
            "send only one of them"
        )
    return filter_ if filter_ is not None else filters


def search_options(data: SearchRequest | DefaultSearchRequest) -> SearchOptions:
    """The search options a request carries, field by name: a field added to SearchOptions
    and the request type reaches the pipeline with no copy to keep in step (the collection
    route's request carries every one: tests/test_api_contract.py)."""
    values: dict[str, Any] = {
        field.name: getattr(data, field.name)
        for field in dataclasses.fields(SearchOptions)
        if hasattr(data, field.name)
    }
    values["filter"] = one_filter(data.filter, data.filters)
    params = values.get("params")
    if params is not None:
        values["params"] = SearchParams(**msgspec.structs.asdict(params))
    return SearchOptions(**values)


class SearchController(Controller):
    tags = ["search"]
    guards = [requires_scope("read")]

    @post("/collections/{name:str}/search", status_code=200)
    async def search_collection(
        self,
        name: FromPath[str],
        data: JSONBody[SearchRequest],
        appliance: NamedDependency[Appliance],
    ) -> SearchResponse:
        options = search_options(data)
        return await run_search(appliance, name, data.query, options, data.timings)

    @post("/search", status_code=200)
    async def search_default(
        self, data: JSONBody[DefaultSearchRequest], appliance: NamedDependency[Appliance]
    ) -> SearchResponse:
        options = search_options(data)
        return await run_search(
            appliance, appliance.settings.default_collection, data.query, options, False
        )

    @post(
        "/collections/{name:str}/warm",
        status_code=200,
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def warm_cache(
        self, name: FromPath[str], data: JSONBody[WarmIn], appliance: NamedDependency[Appliance]
    ) -> WarmOut:
        """Run each query once so the answers (and query embeddings) are cached; a search
        later with the same query, limit, mode and filter is answered from the cache."""
        appliance.collections.get(name)  # 404 before any work for an unknown collection
        report = appliance.warm(
            name, data.queries, SearchOptions(limit=data.limit, filter=data.filter, mode=data.mode)
        )
        return WarmOut(
            queries=report.queries,
            warmed=report.warmed,
            already_cached=report.already_cached,
            failed=report.failed,
            seconds=round(report.seconds, 3),
        )

    @post("/collections/{name:str}/feedback", status_code=201, sync_to_thread=True)
    def record_feedback(
        self,
        name: FromPath[str],
        data: JSONBody[FeedbackIn],
        appliance: NamedDependency[Appliance],
    ) -> FeedbackRecorded:
        appliance.feedback.record(name, data.query_id, data.doc_id, data.relevance)
        SEARCH_FEEDBACK.labels(collection=name).observe(data.relevance)
        return FeedbackRecorded(recorded=True)
