"""One settings object, read from an optional TOML file and `APPLIANCE_*` environment variables.

Precedence, lowest first: defaults, the TOML file (`APPLIANCE_CONFIG` or `./appliance.toml`),
environment variables, explicit overrides (CLI flags).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from appliance.errors import InvalidConfig
from appliance.index.base import IndexServer

# Embedding backends (appliance/embedding/backends/): torch is the reference; the others run
# an export of the same model made on this machine on first use (see README: backends).
# "auto": OpenVINO on the cpu (the same vectors as torch, 3-4x faster here), torch where CUDA
# is present; a first start serves with torch until the OpenVINO export is ready.
# The largest upsert batch and document text the API accepts: the request schema's bounds, and
# the ceilings of the max_batch_documents / max_text_chars settings, so they cannot disagree.
MAX_BATCH_DOCUMENTS = 2_000
MAX_TEXT_CHARS = 200_000
EMBEDDING_BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino", "openvino-f32")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: str = "var"
    # The store (APPLIANCE_DATABASE_URL): "" = the SQLite file in the data dir; or PostgreSQL,
    # `postgresql+psycopg://user:password@host:5432/db`, holding collections, documents,
    # vectors, keys, jobs, feedback and the query log. Indexes and snapshots stay in the
    # data dir either way: they are derived, caught up from the store.
    database_url: str = ""
    # A name from the model registry (appliance/models/registry.json) or a path to a local
    # sentence-transformers directory.
    model: str = "all-MiniLM-L6-v2"
    # The model registry file; "" = the bundled appliance/models/registry.json. Point it at a
    # writable file (e.g. in the data dir, starting from a copy of the bundled one) where the
    # project directory is read-only, as in the container.
    model_registry: str = ""
    # Cross-encoder for `rerank: true`: a registered name or a local directory; "" = none.
    rerank_model: str = ""
    # Verify the sha256 of registered model files before loading them.
    verify_model: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Which backend embeds (APPLIANCE_EMBEDDING_BACKEND), and per-model choices by registry
    # name (a directory's own name for a model given as a path), which win over it:
    # {"all-MiniLM-L6-v2" = "openvino"}. Exports are cached under <data_dir>/models/.
    embedding_backend: str = "auto"
    embedding_backends: dict[str, str] = msgspec.field(default_factory=dict)
    embed_batch_size: int = 64
    # CPU threads torch uses per encode. 1 keeps query latency flat when requests run side by
    # side (measured on 2 cores: with 2 threads and the other core busy, one query embedding
    # took 490 ms instead of 17 ms). 0 = every core: right for bulk ingest on an idle box.
    torch_threads: int = 1
    # CPU threads the exported backends (OpenVINO, ONNX) use per encode; 0 = every core. They
    # share cores without torch's spinning threads: at 32 connections on 2 cores, OpenVINO with
    # every core answered 286-294 hybrid searches/s against 252 with one thread.
    runtime_threads: int = 0
    # OpenVINO compiles a graph for each of these token lengths, in the background after it
    # loads: a text alone in its pass (a lone query) is padded to the next of them and skips
    # the dynamic graph's per-call cost (a lone query's inference 4.9 -> 3.2 ms p50, one
    # thread). Each costs 55-85 MiB for MiniLM-L6 (its own copy of the weights); () turns it
    # off. Env: "8,16,24".
    openvino_fixed_lengths: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    embedding_cache_size: int = 10_000
    # Query embeddings of concurrent searches are encoded together (micro-batching) by this
    # many workers, each batch holding at most query_batch_max texts; 0 = each search encodes
    # its own query in its request thread; unset = per backend (query_batch_workers_for: one
    # for OpenVINO, whose one stream runs one inference at a time, else two). Past
    # max_pending_queries searches in flight (not answered from the result cache) a search is
    # answered 503 with Retry-After instead of queueing without bound.
    query_batch_workers: int | None = None
    query_batch_max: int = 64
    # Texts per forward pass when a batch of queries is embedded, longest first: a pass pads
    # every text to its longest, and queries vary in length (torch, one thread, batches of 32
    # SciFact/NFCorpus queries: 88 q/s in one pass, 180 in passes of 8).
    query_pass_size: int = 8
    max_pending_queries: int = 256
    # Threads that run the API's searches once their query is embedded (the embedding itself
    # is awaited, holding no thread). Few: the search work is Python under one GIL, and more
    # threads only take turns at it (see docs/performance.md, "Concurrent searches").
    search_threads: int = 4
    # Answer a search on the event loop when nothing would make it wait (no filter, rerank,
    # writer or catch-up; its query embedded ahead): no thread hop, no GIL turn-taking. None:
    # on a SQLite store (local reads of microseconds), not on PostgreSQL (network reads).
    search_on_event_loop: bool | None = None
    # Search results, keyed by collection generation: a write never leaves a stale answer.
    result_cache_size: int = 1_024
    result_cache_ttl_seconds: float = 300.0
    # Cache warming at start-up: replay this many of the most frequent searches of the last
    # warm_within_days (counted in SQLite) once the appliance is ready; 0 turns it off.
    warm_top_queries: int = 100
    warm_within_days: float = 7.0
    default_collection: str = "default"
    # Ingest the bundled sample corpus into the default collection on first start.
    load_sample: bool = True
    # Filtered searches matching at most this many documents are answered exactly.
    exact_filter_threshold: int = 20_000
    max_body_bytes: int = 16 * 1024 * 1024
    # Lower only: the API schema's bounds are these defaults (MAX_BATCH_DOCUMENTS, MAX_TEXT_CHARS).
    max_batch_documents: int = MAX_BATCH_DOCUMENTS
    # Upserts of more documents than this (or any with ?async=true) run as background jobs.
    async_threshold: int = 500
    # Bulk deletes (POST .../documents/delete) of more documents than this run as background
    # jobs (202 and a job id).
    delete_async_threshold: int = 1_000
    max_text_chars: int = MAX_TEXT_CHARS
    max_query_chars: int = 2_000
    # OpenAI-compatible POST /v1/embeddings: inputs per request, and tokens per input (as
    # OpenAI's own limits). An input within the limit but over the model's window (256 tokens
    # for all-MiniLM-L6-v2) is truncated to the window, and X-Truncated-Inputs names it.
    embeddings_max_inputs: int = 2_048
    embeddings_max_input_tokens: int = 8_192
    log_level: str = "INFO"
    # "json": one JSON object per log line (with request ids), for log shippers.
    log_format: Literal["text", "json"] = "text"
    # What the tokens embedded here would cost at hosted embedding APIs (USD per million
    # tokens), exported as embedding_cost_equivalent_usd_total{reference=...}.
    embedding_reference_prices_usd_per_million: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "openai-text-embedding-3-small": 0.02,
            "openai-text-embedding-3-large": 0.13,
        }
    )
    # Serve without API keys on a non-loopback address anyway (logs a warning). Without it the
    # appliance refuses to start there until `appliance keys create` has made a key.
    allow_open_network: bool = False
    # A file holding the admin key (APPLIANCE_ADMIN_KEY_FILE, e.g. a mounted secret), hashed
    # into the store at start when the store does not know it yet. Without it, a first start
    # beyond loopback generates an admin key into <data_dir>/admin.key (mode 0600).
    admin_key_file: str = ""
    # Requests per rate_limit_window, per key by the key's scope, and per client address for
    # requests without a key (an appliance with no keys). 0 turns a limit off.
    rate_limit_window: Literal["second", "minute", "hour", "day"] = "minute"
    rate_limit_read: int = 6_000
    rate_limit_write: int = 1_200
    rate_limit_admin: int = 600
    rate_limit_anonymous: int = 6_000
    # TLS by uvicorn itself: a PEM certificate (chain) and its private key; both or neither.
    # A reverse proxy in front (deploy/nginx/) is the other way.
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # On SIGTERM, seconds to let in-flight requests finish before index snapshots are saved.
    shutdown_grace_seconds: float = 30.0
    # The server's event loop. uvloop accepts one new connection per turn of the loop, and a
    # turn takes ~100 ms when hundreds of clients overload the box: at 256 connections a new
    # client waited up to 8 s to be accepted at all. asyncio's loop accepts every waiting
    # connection at once (new clients answered within 1 s there), for a few percent less peak
    # throughput at 32 connections (docs/performance.md, session 11).
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"
    # Where `milvus` indexes live (APPLIANCE_MILVUS_URI): http://host:19530 for Milvus
    # Standalone or Distributed, or a Milvus Lite file ending in .db; "" = <data_dir>/milvus.db.
    milvus_uri: str = ""
    milvus_token: str = ""
    # Keeps this appliance's Milvus collections apart from another's on the same server;
    # "" = a random id kept in <data_dir>/milvus-namespace. Replicas over one store that do
    # not share a data dir must set the same value.
    milvus_namespace: str = ""

    def __post_init__(self) -> None:
        for name in (self.embedding_backend, *self.embedding_backends.values()):
            if name not in EMBEDDING_BACKENDS:
                raise InvalidConfig(
                    f"unknown embedding backend {name!r}: choose one of "
                    f"{', '.join(EMBEDDING_BACKENDS)}"
                )

        for name, bound in (
            ("max_batch_documents", MAX_BATCH_DOCUMENTS),
            ("max_text_chars", MAX_TEXT_CHARS),
        ):
            if not 1 <= getattr(self, name) <= bound:
                raise InvalidConfig(
                    f"{name} must be between 1 and {bound} (the API schema's bound); "
                    f"it is {getattr(self, name)}"
                )

        if any(length < 1 for length in self.openvino_fixed_lengths):
            raise InvalidConfig(
                "openvino_fixed_lengths must be token lengths of at least 1, e.g. [8, 16, 32]; "
                f"it is {list(self.openvino_fixed_lengths)}"
            )

        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise InvalidConfig("TLS needs both ssl_certfile and ssl_keyfile, or neither")

    def backend_for(self, model: str) -> str:
        """The embedding backend configured for the model named `model`."""
        return self.embedding_backends.get(model, self.embedding_backend)

    @property
    def registry_path(self) -> Path | None:
        return Path(self.model_registry) if self.model_registry else None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def model_export_dir(self) -> Path:
        """Models exported for the onnx and openvino backends, one folder per model+backend."""
        return self.data_path / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_path / "indexes"

    @property
    def database_path(self) -> Path:
        return self.data_path / "appliance.sqlite3"

    @property
    def database_location(self) -> Path | str:
        """Where the store is: the database URL when one is set, else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def milvus_address(self) -> str:
        return self.milvus_uri or str(self.data_path / "milvus.db")

    @property
    def milvus_namespace_file(self) -> Path:
        return self.data_path / "milvus-namespace"

    def index_server(self) -> IndexServer:
        """Where server-side index backends (milvus) keep this appliance's indexes."""
        return IndexServer(
            uri=self.milvus_address,
            token=self.milvus_token,
            namespace=self.milvus_namespace,
            namespace_file=self.milvus_namespace_file,
        )


_ENV_PREFIX = "APPLIANCE_"
# Settings that are lists of scalars, given in the environment as comma-separated values.
_LIST_FIELDS = {
    field.name
    for field in msgspec.structs.fields(Settings)
    if getattr(field.type, "__origin__", None) in (tuple, list)
}


def _env_values() -> dict[str, Any]:
    fields = set(Settings.__struct_fields__)
    values: dict[str, Any] = {}
    for key, raw in os.environ.items():
        if not key.startswith(_ENV_PREFIX):
            continue
        name = key[len(_ENV_PREFIX) :].lower()
        if name in fields:
            values[name] = _comma_list(raw) if name in _LIST_FIELDS else raw
    return values


def _comma_list(raw: str) -> list[str]:
    """A list setting from the environment: "8,16,24" (an empty string is the empty list)."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, a TOML file, the environment and explicit overrides."""
    values: dict[str, Any] = {}
    path = config_file or Path(os.environ.get("APPLIANCE_CONFIG", "appliance.toml"))
    if path.is_file():
        with path.open("rb") as handle:
            values.update(tomllib.load(handle))
    values.update(_env_values())
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        # strict=False lets "8000" from the environment become an int.
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidConfig(f"invalid setting: {exc}") from exc
