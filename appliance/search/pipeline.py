"""The query pipeline: normalise, embed (cached), retrieve dense / keyword / hybrid with
filters, fuse, rescore compressed candidates, rerank, format."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from appliance.collections.manager import CollectionManager, LiveCollection
from appliance.collections.readers import ReadSnapshot
from appliance.collections.settings import Fusion, Mode
from appliance.embedding.cache import CachedEncoder
from appliance.embedding.pool import EncoderPool
from appliance.errors import InvalidRequest
from appliance.index.base import SearchParams, check_query_params
from appliance.nowait import WouldWait, refuse_to_wait, without_waiting
from appliance.random_id import random_hex_id
from appliance.search.admission import Admission
from appliance.search.cache import RecentQueries, ResultCache, ServedQuery, result_key
from appliance.search.filters import compile_filter
from appliance.search.fusion import DEFAULT_RRF_K, reciprocal_rank_fusion, weighted_fusion
from appliance.search.highlight import Highlight, with_highlights
from appliance.search.pagination import result_window
from appliance.search.preprocess import normalize_query
from appliance.search.rerank import Reranker
from appliance.store.documents import ChunkHit, StoredText

MODES: tuple[Mode, ...] = ("dense", "keyword", "hybrid")
_RESCORE_OVERSAMPLE = 4
# Defaults fitted on the SciFact train and NFCorpus dev splits (benchmarks/tune_hybrid.py):
# hybrid with weighted fusion, dense weight 0.4, titles weighing 3× in BM25.
DEFAULT_MODE: Mode = "hybrid"
DEFAULT_TITLE_WEIGHT = 3.0
FUSION_DEFAULTS: dict[str, Any] = {
    "fusion": "weighted",
    "rrf_k": DEFAULT_RRF_K,
    "dense_weight": 1.0,
    "alpha": 0.4,
}


@dataclass(frozen=True)
class SearchOptions:
    limit: int = 10
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    mode: Mode | None = None  # None: the collection's default
    # Hybrid fusion; None takes the collection's setting, then FUSION_DEFAULTS.
    fusion: Fusion | None = None
    rrf_k: int | None = None
    # RRF weight of the dense list (the keyword list weighs 1).
    dense_weight: float | None = None
    # Weight of the dense list in weighted fusion; the keyword list gets 1 - alpha.
    alpha: float | None = None
    # Candidates each retriever contributes to hybrid fusion and reranking.
    candidates: int = 100
    rerank: bool = False
    rerank_top_n: int = 50
    # BM25 weight of a document's title field against its text; None: the collection's.
    title_weight: float | None = None
    # Results skipped (search/pagination.py), and snippets per hit (search/highlight.py).
    offset: int = 0
    highlight: bool = False


@dataclass(slots=True)
class ChunkRef:
    """The span of a document a hit's vector embedded."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    chunk: ChunkRef | None = None
    highlight: Highlight | None = None


@dataclass
class SearchOutcome:
    results: list[SearchHit]
    took_ms: float
    mode: Mode = "dense"
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Names this answer for feedback (POST /collections/{c}/feedback).
    query_id: str = ""
    cached: bool = False
    # The embedding model of the version that answered (name@fingerprint).
    model_id: str = ""


@dataclass(frozen=True)
class QueryVector:
    """A query embedded before its search began (`SearchService.embed_ahead`)."""

    model_id: str
    vector: np.ndarray
    embed_ms: float


@dataclass(frozen=True)
class _Request:
    where: Any
    text: str
    live: LiveCollection
    mode: Mode
    key: Hashable


# A ranked candidate: document id, score, and the chunk its dense vector embedded (None for
# a keyword-only hit). Plain tuples: a hybrid search ranks 100-200 of them, and builds
# `SearchHit`s only for the page it answers.
Candidate = tuple[int, float, ChunkHit | None]


class SearchService:
    def __init__(
        self,
        collections: CollectionManager,
        query_encoder: CachedEncoder,
        encoders: EncoderPool,
        max_query_chars: int,
        reranker: Callable[[], Reranker | None] = lambda: None,
        result_cache: ResultCache[SearchOutcome] | None = None,
        recent_queries: int = 10_000,
        query_log: Callable[[int, str, str], None] | None = None,
        max_in_flight: int = 256,
        threads: int = 2,
        inline: bool = False,
    ) -> None:
        self.collections = collections
        self.query_encoder = query_encoder
        self.encoders = encoders
        self.max_query_chars = max_query_chars
        self.reranker = reranker
        self.result_cache: ResultCache[SearchOutcome] = result_cache or ResultCache(0, 0)
        self.recent = RecentQueries(recent_queries)
        # Counts each search for start-up cache warming: (collection id, query, params).
        self.query_log = query_log
        # Callers that queue a search (the API) enter this first: a bounded queue.
        self.admission = Admission(max_in_flight)
        # Whether `answer_now` may answer on the caller's thread (a SQLite store: its reads
        # are local and short); how often it did, and how often it handed a search back.
        self.inline = inline
        self.answered_inline = 0
        self.inline_fallbacks = 0
        # The API runs searches on these few threads (`submit`); the pool starts them on
        # first use, so a one-shot command that never searches starts none.
        self._executor = ThreadPoolExecutor(max(1, threads), thread_name_prefix="search")

    def submit(self, call: Callable[[], SearchOutcome]) -> Future[SearchOutcome]:
        """Run `call` (a `search`) on one of the search threads, in the caller's context."""
        return self._executor.submit(contextvars.copy_context().run, call)

    def close(self) -> None:
        """Let the searches in flight finish, then stop the search threads."""
        self._executor.shutdown(wait=True)

    def search(
        self,
        collection: str,
        query: str,
        *,
        limit: int = 10,
        filter: dict[str, Any] | None = None,
        params: SearchParams | None = None,
        options: SearchOptions | None = None,
        log_query: bool = True,
        embedded: QueryVector | None = None,
    ) -> SearchOutcome:
        """`log_query=False`: not counted for warming (warming itself). `embedded`: the
        query's vector from `embed_ahead`, used if its model is still the collection's."""
        if options is None:
            options = SearchOptions(limit=limit, filter=filter, params=params)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        mark = started
        # The embedding done before this call, when its vector is used (took_ms counts it).
        ahead_ms = 0.0

        def lap(stage: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            timings[stage] = (now - mark) * 1000
            mark = now

        request = self._prepare(collection, query, options, self.collections.get(collection))
        where, text, live, mode = request.where, request.text, request.live, request.mode
        reranker = self.reranker() if options.rerank else None
        if options.rerank and reranker is None:
            raise InvalidRequest(
                "rerank needs a cross-encoder: import one with `appliance models import DIR "
                "--name NAME --kind cross-encoder` and set APPLIANCE_RERANK_MODEL=NAME"
            )
        lap("preprocess")
        # Counted for warming once answered, so a search that stops short (WouldWait, an
        # error) and runs again counts once.
        log = self.query_log if log_query else None
        key = request.key
        cached = self.result_cache.get(key)
        if cached is not None:
            lap("cache")
            if log is not None:
                log(live.id, text, replayable_params(options, mode))
            return self._served(
                collection,
                text,
                cached,
                took_ms=(time.perf_counter() - started) * 1000,
                timings_ms=timings,
                cached=True,
            )
        # A page is cut from the ranking of offset + limit results, retrieved as one request
        # for that many would be (search/pagination.py).
        window = options.offset + options.limit
        # What the page (and reranking) reads; hybrid retrieves more, to fuse.
        shown = max(window, options.rerank_top_n if reranker else 0)
        wanted = max(shown, options.candidates) if mode == "hybrid" else shown

        # One read transaction and one version for the whole search: every stage sees one
        # snapshot of the store, and a model switch meanwhile cannot mix two models.
        with live.reader() as snapshot:
            active = snapshot.active
            dense: list[Candidate] = []
            keyword: list[tuple[int, float]] = []
            if mode in ("dense", "hybrid"):
                if embedded is not None and embedded.model_id == active.model_id:
                    vector, ahead_ms = embedded.vector, embedded.embed_ms
                    lap("embed")
                    timings["embed"] += ahead_ms
                else:
                    refuse_to_wait("the query is not embedded yet")
                    encoder = self.encoders.get(active.model_id)
                    vector = self.query_encoder.encode([text], encoder)[0]
                    lap("embed")
                allowed = None
                if where is not None:
                    allowed = snapshot.dense.allowed(where)
                    lap("filter")
                dense = self._dense(live, snapshot, vector, wanted, options.params, allowed)
                lap("retrieve")
            if mode in ("keyword", "hybrid"):
                keyword = self._keyword(live, snapshot, text, wanted, where, options)
                lap("keyword")

            ranked: list[Candidate]
            if mode == "hybrid":
                ranked = self._fuse(dense, keyword, options, live, shown)
                lap("fuse")
            elif mode == "dense":
                ranked = dense
            else:
                ranked = [(doc_id, score, None) for doc_id, score in keyword]

            if reranker is not None:
                ranked = self._rerank(snapshot, reranker, text, ranked, options.rerank_top_n)
                lap("rerank")
            results = self._format(snapshot, ranked[options.offset : window])
        if options.highlight:
            results = with_highlights(results, text)
        lap("format")
        outcome = SearchOutcome(
            model_id=active.model_id,
            results=results,
            took_ms=(time.perf_counter() - started) * 1000 + ahead_ms,
            mode=mode,
            timings_ms=timings,
        )
        self.result_cache.put(key, outcome)
        if log is not None:
            log(live.id, text, replayable_params(options, mode))
        return self._served(collection, text, outcome)

    def answer_now(
        self,
        collection: str,
        query: str,
        options: SearchOptions,
        embedded: QueryVector | None,
    ) -> SearchOutcome | None:
        """The search, answered on the caller's thread if nothing makes it wait, else None
        (run `search` on a thread then: `submit`). For an event loop: a search without a
        filter or reranking, over a local index on a SQLite store, whose query is embedded
        ahead, costs well under a millisecond of Python; on the loop it needs no thread hop
        and no turn at the GIL behind other threads (appliance/nowait.py)."""
        if not self.inline or options.rerank or options.filter is not None:
            return None
        live = self.collections.peek(collection)
        if live is None or live.serves_remotely:
            return None
        try:
            with without_waiting():
                outcome = self.search(collection, query, options=options, embedded=embedded)
        except WouldWait:
            self.inline_fallbacks += 1
            return None
        self.answered_inline += 1
        return outcome

    def embed_ahead(
        self, collection: str, query: str, options: SearchOptions
    ) -> Future[QueryVector] | None:
        """Queue the query's embedding with the micro-batcher and return at once, so that no
        thread waits for it: an event loop awaits the future, then runs `search` with the
        vector (`embedded=`). None when there is nothing to embed ahead (keyword mode, no
        batcher, a collection or model not loaded, a request `search` will refuse): `search`
        then does it all. Never reads the store, so it may run on an event loop."""
        live = self.collections.peek(collection)
        if live is None:
            return None
        try:
            request = self._prepare(collection, query, options, live)
        except InvalidRequest:
            return None
        model_id = live.model_id
        encoder = self.encoders.loaded_encoder(model_id)
        if request.mode == "keyword" or encoder is None:
            return None
        started = time.perf_counter()
        pending = self.query_encoder.submit([request.text], encoder)
        if pending is None:
            return None
        embedded: Future[QueryVector] = Future()

        def finish(vectors: Future[np.ndarray]) -> None:
            try:
                vector = vectors.result()[0]
            except BaseException as exc:
                embedded.set_exception(exc)
                return
            took_ms = (time.perf_counter() - started) * 1000
            embedded.set_result(QueryVector(model_id, vector, took_ms))

        pending.add_done_callback(finish)
        return embedded

    def lookup(self, collection: str, query: str, options: SearchOptions) -> SearchOutcome | None:
        """The cached answer, if there is one and nothing was committed since the collection
        was last compared with the store; else None (call `search`). Never reads the store,
        so it may run on an event loop."""
        live = self.collections.peek(collection)
        if live is None or not self.collections.unchanged(live):
            return None
        started = time.perf_counter()
        try:
            request = self._prepare(collection, query, options, live)
        except InvalidRequest:
            return None  # `search` raises it with the full story
        # A miss here is counted by `search`, which the caller runs next.
        cached = self.result_cache.get(request.key, count_miss=False)
        if cached is None:
            return None
        if self.query_log is not None:
            self.query_log(live.id, request.text, replayable_params(options, request.mode))
        took_ms = (time.perf_counter() - started) * 1000
        return self._served(
            collection,
            request.text,
            cached,
            took_ms=took_ms,
            timings_ms={"cache": took_ms},
            cached=True,
        )

    def _prepare(
        self, collection: str, query: str, options: SearchOptions, live: LiveCollection
    ) -> _Request:
        where = compile_filter(options.filter)
        result_window(options.offset, options.limit)
        text = normalize_query(query, self.max_query_chars)
        mode = options.mode or live.settings.search.mode or DEFAULT_MODE
        if mode not in MODES:
            raise InvalidRequest(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if options.params is not None and mode != "keyword":
            check_query_params(live.config, live.traits, options.params)
        key = result_key(collection, live.generation, text, replace(options, mode=mode))
        return _Request(where=where, text=text, live=live, mode=mode, key=key)

    def _served(
        self, collection: str, text: str, outcome: SearchOutcome, **changes: Any
    ) -> SearchOutcome:
        """`outcome` with its query id (and `changes`: a cached answer's timing), remembered
        for feedback: one copy of the outcome."""
        query_id = random_hex_id()
        self.recent.remember(
            query_id, ServedQuery(collection, text, tuple(hit.id for hit in outcome.results))
        )
        return replace(outcome, query_id=query_id, **changes)

    # -- stages ---------------------------------------------------------------------------
    def _dense(
        self,
        live: LiveCollection,
        snapshot: ReadSnapshot,
        vector: np.ndarray,
        wanted: int,
        params: SearchParams | None,
        allowed: np.ndarray | None,
    ) -> list[Candidate]:
        """Best chunk per document, `wanted` documents, fetching more chunks when documents
        repeat (long texts have several); only `allowed` vector ids when given."""
        params = params or live.config.default_params()
        rescore = live.traits.lossy and live.settings.search.rescore is not False
        fetch = wanted * (_RESCORE_OVERSAMPLE if rescore else 1)
        if live.chunking.enabled:
            fetch *= 2
        reader = snapshot.dense
        while True:
            scores, ids = reader.search(vector, fetch, params, allowed)
            if rescore and len(ids):
                scores, ids = reader.rescore(vector, ids)
            id_list = ids.tolist()
            chunks = reader.chunks(id_list)
            best: dict[int, Candidate] = {}
            for score, vector_id in zip(scores.tolist(), id_list, strict=True):
                hit = chunks.get(vector_id)
                # Ranked best first: a document's first chunk is its best.
                if hit is not None and hit[0] not in best:
                    best[hit[0]] = (hit[0], score, hit)
            exhausted = len(ids) < fetch or fetch >= len(reader)
            if len(best) >= wanted or exhausted:
                return list(best.values())[:wanted]
            fetch *= 2

    def _keyword(
        self,
        live: LiveCollection,
        snapshot: ReadSnapshot,
        text: str,
        wanted: int,
        where: Any,
        options: SearchOptions,
    ) -> list[tuple[int, float]]:
        """BM25 from the collection's keyword index, only documents matching `where` if given."""
        reader = snapshot.keyword
        allowed = reader.allowed(where) if where is not None else None
        title_weight = options.title_weight
        if title_weight is None:
            title_weight = live.settings.search.title_weight
        if title_weight is None:
            title_weight = DEFAULT_TITLE_WEIGHT
        return reader.search(text, wanted, title_weight=title_weight, allowed=allowed)

    def _fuse(
        self,
        dense: list[Candidate],
        keyword: list[tuple[int, float]],
        options: SearchOptions,
        live: LiveCollection,
        keep: int,
    ) -> list[Candidate]:
        """The fused ranking's best `keep` candidates."""
        defaults = live.settings.search

        def setting(name: str) -> Any:
            # The request's, else the collection's, else the appliance's.
            for value in (getattr(options, name), getattr(defaults, name)):
                if value is not None:
                    return value
            return FUSION_DEFAULTS[name]

        chunks = {doc_id: hit for doc_id, _, hit in dense}
        if setting("fusion") == "weighted":
            fused = weighted_fusion(
                [(doc_id, score) for doc_id, score, _ in dense],
                keyword,
                alpha=float(setting("alpha")),
            )
        else:
            fused = reciprocal_rank_fusion(
                [[doc_id for doc_id, _, _ in dense], [doc_id for doc_id, _ in keyword]],
                k=int(setting("rrf_k")),
                weights=[float(setting("dense_weight")), 1.0],
            )
        return [(doc_id, score, chunks.get(doc_id)) for doc_id, score in fused[:keep]]

    def _rerank(
        self,
        snapshot: ReadSnapshot,
        reranker: Reranker,
        query: str,
        ranked: list[Candidate],
        top_n: int,
    ) -> list[Candidate]:
        head = ranked[:top_n]
        documents = snapshot.documents.get([doc_id for doc_id, _, _ in head])
        kept = [(doc_id, hit) for doc_id, _, hit in head if doc_id in documents]
        texts = [_passage(documents[doc_id], hit) for doc_id, hit in kept]
        scores = reranker.score(query, texts)
        order = np.argsort(-scores, kind="stable")
        reranked = [(kept[i][0], float(scores[i]), kept[i][1]) for i in order]
        return reranked + ranked[top_n:]

    def _format(self, snapshot: ReadSnapshot, ranked: list[Candidate]) -> list[SearchHit]:
        # Documents read for reranking are not read again.
        documents = snapshot.documents.get([doc_id for doc_id, _, _ in ranked])
        return [
            SearchHit(
                id=documents[doc_id].external_id,
                score=score,
                text=documents[doc_id].text,
                metadata=documents[doc_id].meta,
                chunk=None if hit is None else ChunkRef(hit[1], hit[2], hit[3]),
            )
            for doc_id, score, hit in ranked
            # A document deleted between retrieval and formatting is simply not shown.
            if doc_id in documents
        ]


def replayable_params(options: SearchOptions, mode: str) -> str:
    """The parameters cache warming repeats, canonically: limit, mode and filter."""
    return json.dumps(
        {"filter": options.filter, "limit": options.limit, "mode": mode}, sort_keys=True
    )


def _passage(document: StoredText, hit: ChunkHit | None) -> str:
    if hit is None:
        return document.text
    return document.text[hit.char_start : hit.char_end]
