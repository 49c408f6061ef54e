"""Request and response types. Constraints declared here drive both validation and OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from appliance.collections.settings import (
    SEARCH_FIELDS,
    Alpha,
    ChunkOverlap,
    ChunkTokens,
    ContentSettings,
    Fusion,
    Mode,
    RrfK,
    SearchDefaults,
    Weight,
)
from appliance.config import MAX_BATCH_DOCUMENTS, MAX_TEXT_CHARS
from appliance.embedding.chunking import DEFAULT_OVERLAP
from appliance.index.base import IndexTraits
from appliance.index.registry import BackendName
from appliance.ingest.deletion import MAX_DELETE_IDS
from appliance.search.pagination import MAX_RESULT_WINDOW

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
CollectionName = Annotated[str, Meta(min_length=1, max_length=128, pattern=COLLECTION_NAME_PATTERN)]
# What each pattern above allows, in words, for the 400 that refuses a value.
PATTERN_DESCRIPTIONS = {
    COLLECTION_NAME_PATTERN: "a collection name is 1 to 128 characters: letters, digits, '_', "
    "'.' and '-', starting with a letter or digit (like 'docs', 'docs-v2' or 'my_notes.en')",
}
DocumentId = Annotated[str, Meta(min_length=1, max_length=512)]
Limit = Annotated[int, Meta(ge=1, le=1000)]
QueryText = Annotated[str, Meta(min_length=1, max_length=10_000)]
Offset = Annotated[int, Meta(ge=0, le=MAX_RESULT_WINDOW - 1)]


class ErrorBody(msgspec.Struct):
    error: str
    detail: str


class IndexSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    backend: BackendName = "hnswlib"
    # faiss: a factory string (HNSW32,Flat); hnswlib: M=32,ef_construction=200; milvus:
    # HNSW | IVF_FLAT | FLAT | AUTOINDEX, build options after commas (IVF_FLAT,nlist=1024).
    spec: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    # hnswlib / faiss / milvus HNSW build option.
    ef_construction: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    # Query-time defaults for the collection; a search may override them.
    ef: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    nprobe: Annotated[int, Meta(ge=1, le=65_536)] | None = None


class CreateCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: CollectionName
    index: IndexSpec | None = None
    # Content settings, fixed at creation: how long texts are split before embedding.
    chunking: bool = True
    chunk_tokens: ChunkTokens | None = None
    chunk_overlap: ChunkOverlap = DEFAULT_OVERLAP
    # Search defaults (a search may override each; PATCH /collections/{name} changes them).
    mode: Mode | None = None
    fusion: Fusion | None = None
    rrf_k: RrfK | None = None
    alpha: Alpha | None = None
    dense_weight: Weight | None = None
    title_weight: Weight | None = None
    rescore: bool | None = None

    def content(self) -> ContentSettings:
        return ContentSettings(
            chunking=self.chunking, chunk_tokens=self.chunk_tokens, chunk_overlap=self.chunk_overlap
        )

    def search_defaults(self) -> SearchDefaults:
        return SearchDefaults(**{name: getattr(self, name) for name in SEARCH_FIELDS})


class ChangeCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The search defaults to change; absent fields stay as they are. Content settings are
    refused (fixed at creation); the index moves with PUT /collections/{name}/index."""

    mode: Mode | None = None
    fusion: Fusion | None = None
    rrf_k: RrfK | None = None
    alpha: Alpha | None = None
    dense_weight: Weight | None = None
    title_weight: Weight | None = None
    rescore: bool | None = None
    # Refused with a 400 that says why (here so that the message can say it).
    chunking: bool | None = None
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    index: dict[str, Any] | None = None

    def search_defaults(self) -> SearchDefaults:
        return SearchDefaults(**{name: getattr(self, name) for name in SEARCH_FIELDS})


class CollectionInfo(msgspec.Struct, kw_only=True):
    name: str
    # backend, spec, and every stored option (index options, content settings, search
    # defaults) flat, as before; `content` and `search` show the settings typed.
    index: dict[str, Any]
    model_id: str
    documents: int
    vectors_indexed: int
    index_bytes: int
    generation: int
    content: ContentSettings = msgspec.field(default_factory=ContentSettings)
    search: SearchDefaults = msgspec.field(default_factory=SearchDefaults)
    # What the index is, as its backend declares: exact, lossy, the query parameters it takes.
    traits: IndexTraits | None = None
    # Where the index answers unfiltered searches: "cpu", or "cuda:0" for a FAISS index copied
    # to a GPU; null for an index in a server (Milvus).
    search_device: str | None = None


class CollectionList(msgspec.Struct):
    collections: list[CollectionInfo]


class DocumentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: DocumentId
    text: Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class UpsertDocuments(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    documents: Annotated[list[DocumentIn], Meta(min_length=1, max_length=MAX_BATCH_DOCUMENTS)]


class UpsertResult(msgspec.Struct, kw_only=True):
    upserted: int
    embedded: int
    unchanged: int


class DocumentOut(msgspec.Struct, kw_only=True):
    id: str
    text: str
    metadata: dict[str, Any]
    content_hash: str
    created_at: str
    updated_at: str


class DeleteResult(msgspec.Struct):
    deleted: int


class DocumentList(msgspec.Struct, kw_only=True):
    """One page of a collection's documents, in a stable order (the order they were first
    stored). `next_cursor` fetches the next page; null on the last one."""

    documents: list[DocumentOut]
    next_cursor: str | None


class DeleteDocuments(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of `filter` (a metadata filter, as in search; not empty) and `ids`."""

    filter: Annotated[dict[str, Any], Meta(min_length=1)] | UnsetType = UNSET
    ids: Annotated[list[DocumentId], Meta(min_length=1, max_length=MAX_DELETE_IDS)] | UnsetType = (
        UNSET
    )


class SearchParamsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ef: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    nprobe: Annotated[int, Meta(ge=1, le=65_536)] | None = None


class SearchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query: QueryText
    limit: Limit = 10
    filter: dict[str, Any] | None = None
    # The same as `filter` (the seed's name); give one of them, or both equal.
    filters: dict[str, Any] | None = None
    params: SearchParamsIn | None = None
    # dense | keyword | hybrid; the collection's default when absent.
    mode: Literal["dense", "keyword", "hybrid"] | None = None
    # Hybrid fusion: reciprocal rank fusion (rrf_k, dense_weight) or weighted normalised
    # scores (alpha = weight of dense). Absent: the collection's settings.
    fusion: Literal["rrf", "weighted"] | None = None
    rrf_k: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    dense_weight: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    alpha: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    # Keyword scoring: weight of a title match against a body match. Absent: the collection's.
    title_weight: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    candidates: Annotated[int, Meta(ge=1, le=1000)] = 100
    rerank: bool = False
    rerank_top_n: Annotated[int, Meta(ge=1, le=1000)] = 50
    # Include per-stage timings in the response.
    timings: bool = False
    # Results to skip: page n (from 0) of size `limit` is offset = n * limit. A page is the
    # same slice of one ranking as a single larger request; offset + limit <= 1000.
    offset: Offset = 0
    # Per hit, the best passage around the query's terms and where they match in it.
    highlight: bool = False


class DefaultSearchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The seed's contract for `POST /search` on the default collection."""

    query: QueryText
    limit: Limit = 10
    filters: dict[str, Any] | None = None
    # The same as `filters` (the collection route's name); give one of them, or both equal.
    filter: dict[str, Any] | None = None
    # Results to skip (offset + limit <= 1000), as on the collection route.
    offset: Offset = 0
    highlight: bool = False


class ChunkOut(msgspec.Struct, kw_only=True):
    """The passage of the document that matched: chunk number and character span."""

    index: int
    start: int
    end: int


class HighlightOut(msgspec.Struct, kw_only=True):
    """The passage of the hit's text (its matching chunk) with the most query terms, and the
    [start, end) character offsets of each matched term in `text`."""

    text: str
    spans: list[tuple[int, int]]
    # Where the passage starts in the document's text.
    start: int


class SearchHitOut(msgspec.Struct, kw_only=True):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    chunk: ChunkOut | None = None
    # With "highlight": true only.
    highlight: HighlightOut | UnsetType = UNSET


class SearchResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    results: list[SearchHitOut]
    took_ms: float
    # The retrieval mode that answered: dense, keyword or hybrid.
    mode: str
    # Send it back with relevance feedback on these results.
    query_id: str
    timings_ms: dict[str, float] | None = None
    # True when answered from the result cache (omitted when false).
    cached: bool = False
    # The embedding model of the collection version that answered (name@fingerprint).
    model_id: str = ""


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, kw_only=True):
    # loading | failed (503, `detail` says why) | ready (200)
    status: str
    model: str | None = None
    collections: int = 0
    detail: str | None = None
    # Ready, and still running a start-up task (the sample corpus load, cache warming).
    starting: str | None = None


class FeedbackIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    query_id: Annotated[str, Meta(min_length=1, max_length=64)]
    doc_id: DocumentId
    # Graded relevance, as in TREC qrels: 0 not relevant .. 3 perfectly relevant.
    relevance: Annotated[int, Meta(ge=0, le=3)]


class FeedbackRecorded(msgspec.Struct):
    recorded: bool


class JobOut(msgspec.Struct, kw_only=True):
    """A background ingest or bulk delete: state is queued, running, succeeded or failed.
    A delete job counts in `done` the ids handled (by filter: documents deleted), in
    `unchanged` the ids that were not there, and in `deleted` what it deleted."""

    id: str
    # upsert | delete
    kind: str
    collection: str
    state: str
    total: int
    done: int
    embedded: int
    unchanged: int
    errors: list[dict[str, str]]
    detail: str
    created_at: str
    updated_at: str
    deleted: int = 0


class JobList(msgspec.Struct):
    """The most recent jobs, newest first."""

    jobs: list[JobOut]


class WhoAmI(msgspec.Struct, kw_only=True):
    """The scope of the key a request carried. With no key in the store the appliance is open:
    keys_required is false, scope is null, and every request is allowed."""

    # read | write | admin
    scope: str | None
    keys_required: bool


class ReindexIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # A registered embedding model (`appliance models list`).
    model: Annotated[str, Meta(min_length=1, max_length=256)]


class VersionOut(msgspec.Struct, kw_only=True):
    """One model's vectors for a collection: state is building, ready (can be switched to),
    active (searched with), interrupted (run the reindex again to resume) or failed."""

    model_id: str
    state: str
    active: bool
    documents_total: int
    documents_embedded: int
    vectors: int
    detail: str
    created_at: str | None
    activated_at: str | None


class VersionList(msgspec.Struct):
    versions: list[VersionOut]


class WarmIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Searches to run once so their answers are cached (same limit/mode/filter for all)."""

    queries: Annotated[
        list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1, max_length=10_000)
    ]
    limit: Limit = 10
    filter: dict[str, Any] | None = None
    mode: Literal["dense", "keyword", "hybrid"] | None = None


class WarmOut(msgspec.Struct, kw_only=True):
    queries: int
    warmed: int
    already_cached: int
    # One line per query that could not be run, saying why.
    failed: list[str]
    seconds: float


# OpenAI-compatible embeddings (/v1). Shapes follow OpenAI's API reference, so its clients
# parse them; limits that are settings (inputs per request, tokens per input) answer 400.
TokenId = Annotated[int, Meta(ge=0)]
EmbeddingText = Annotated[str, Meta(min_length=1)]


class EmbeddingsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # A text, a list of texts, a list of token ids, or a list of token-id lists (token ids
    # are decoded with the model's tokenizer).
    input: (
        EmbeddingText
        | Annotated[
            list[EmbeddingText | TokenId | Annotated[list[TokenId], Meta(min_length=1)]],
            Meta(min_length=1),
        ]
    )
    # A registered embedding model (GET /v1/models); absent: the appliance's default model.
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    # Only the model's own size, or a size the registry lists as matryoshka_dimensions.
    dimensions: Annotated[int, Meta(ge=1, le=65_536)] | None = None
    # Accepted for compatibility; not stored.
    user: Annotated[str, Meta(max_length=256)] | None = None


_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
# What `input` accepts, for the OpenAPI document: Litestar drops the constraints of union
# members, and msgspec cannot declare four array shapes apart. Token ids beyond the model's
# vocabulary, more inputs or tokens than the settings allow, and token ids that decode to no
# text are refused with a 400 on the server.
EMBEDDINGS_INPUT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        _TOKEN_IDS,
        {"type": "array", "minItems": 1, "items": _TOKEN_IDS},
    ],
    "description": "a text, a list of texts, a list of token ids, or a list of token-id lists",
}


class EmbeddingOut(msgspec.Struct, kw_only=True):
    index: int
    # Floats, or with encoding_format "base64" the little-endian float32 bytes in base64.
    embedding: list[float] | str
    object: str = "embedding"


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(msgspec.Struct, kw_only=True):
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage
    object: str = "list"


class ModelOut(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "appliance"
    dimension: int | None = None
    # Tokens the model reads of one input; longer inputs are truncated to it.
    max_input_tokens: int | None = None
    matryoshka_dimensions: list[int] = msgspec.field(default_factory=list)


class ModelList(msgspec.Struct, kw_only=True):
    data: list[ModelOut]
    object: str = "list"
