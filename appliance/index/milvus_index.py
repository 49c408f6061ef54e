"""Milvus backend: one Milvus collection per appliance collection and embedding model, spec
`HNSW`, `IVF_FLAT`, `FLAT` or `AUTOINDEX` (build options after commas: `HNSW,M=32`).

Milvus keeps the index itself (Lite file, Standalone or Distributed alike), so there is no
snapshot: an opened index is whatever the server holds, listed by id and caught up with the
store by set difference like every other index. Vector ids are the int64 primary key; vectors
are written with upsert, so two processes catching up the same ids never make duplicates.
Filters arrive as allowed-id lists (from SQL): a short list is sent as an `id in [...]`
expression; a long one is answered by an oversampled search filtered here.
pymilvus is optional (`pip install .[milvus]`): without it, asking for the backend is a 400.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import IndexBackendUnavailable, IndexServerError, InvalidIndexSpec
from appliance.index.base import (
    IndexConfig,
    IndexPlace,
    IndexServer,
    IndexTraits,
    SearchParams,
    VectorIndex,
)

# pymilvus, imported on first use (`require_pymilvus`): it imports pandas, ~0.4 s of every
# start-up on a warm page cache, which a server on the local backends never needs. None once
# found missing (the [milvus] extra is not installed).
_NOT_IMPORTED: Any = object()
pymilvus: Any = _NOT_IMPORTED

# Build options each index type takes in its spec (our names → Milvus's).
_SPEC_KEYS: dict[str, dict[str, str]] = {
    "HNSW": {"M": "M", "ef_construction": "efConstruction"},
    "IVF_FLAT": {"nlist": "nlist"},
    "FLAT": {},
    "AUTOINDEX": {},
}
_DEFAULTS: dict[str, dict[str, int]] = {
    "HNSW": {"M": 32, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 1024},
}
DEFAULT_EF = 128
DEFAULT_NPROBE = 16
MAX_EF = 4_096
# Milvus refuses a top-k above this.
MAX_TOP_K = 16_384
# Allowed-id lists up to this long go to Milvus as an `id in [...]` expression (~100 kB);
# longer ones (more than a few % of a large collection) are searched oversampled instead.
MAX_ID_LIST = 16_384
# Rows per upsert call, and the write size above which the rows are flushed into sealed
# (indexed) segments at once rather than when Milvus gets to it.
_WRITE_BATCH = 5_000
_FLUSH_ROWS = 10_000
_MAX_DIMENSION = 32_768
_ID_FIELD = "id"
_VECTOR_FIELD = "vector"


def require_pymilvus() -> Any:
    global pymilvus
    if pymilvus is _NOT_IMPORTED:
        try:
            import pymilvus as module
        except ImportError:
            module = None
        pymilvus = module
    if pymilvus is None:
        raise IndexBackendUnavailable(
            "the milvus index backend needs pymilvus, which is not installed: "
            "pip install 'local-search-appliance[milvus]' (or pip install pymilvus milvus-lite)"
        )
    return pymilvus


def parse_spec(spec: str, options: dict[str, Any] | None = None) -> tuple[str, dict[str, int]]:
    """`HNSW,M=32,ef_construction=200` → ("HNSW", {"M": 32, "efConstruction": 200})."""
    head, *parts = [p.strip() for p in spec.split(",")]
    index_type = head.upper()
    if index_type not in _SPEC_KEYS:
        raise InvalidIndexSpec(
            f"milvus spec {spec!r} is not understood; use one of {', '.join(_SPEC_KEYS)}, "
            "optionally with build options (HNSW,M=32,ef_construction=200 or IVF_FLAT,nlist=1024)"
        )
    keys = _SPEC_KEYS[index_type]
    params = dict(_DEFAULTS.get(index_type, {}))
    given = [p for p in parts if p]
    if "ef_construction" in keys and (options or {}).get("ef_construction") is not None:
        given.insert(0, f"ef_construction={options['ef_construction']}")  # type: ignore[index]
    for part in given:
        key, sep, raw = part.partition("=")
        if not sep or key not in keys:
            allowed = ", ".join(f"{k}=<int>" for k in keys) or "no build options"
            raise InvalidIndexSpec(
                f"milvus {index_type} spec part {part!r} is not understood; it takes {allowed}"
            )
        try:
            value = int(raw)
        except ValueError as exc:
            raise InvalidIndexSpec(f"milvus {key} must be an integer, got {raw!r}") from exc
        if not 1 <= value <= 65_536:
            raise InvalidIndexSpec(f"milvus {key} must be between 1 and 65536, got {value}")
        params[keys[key]] = value
    if index_type == "HNSW" and not 2 <= params["M"] <= 2_048:
        raise InvalidIndexSpec(f"milvus HNSW M must be between 2 and 2048, got {params['M']}")
    return index_type, params


def collection_name(place: IndexPlace, config: IndexConfig) -> str:
    """`appliance_<namespace>_c<collection id>_<digest of model and index config>`: another
    appliance (another namespace), model or index configuration never shares a collection."""
    described = json.dumps(
        [place.model_id, config.backend, config.spec, config.options], sort_keys=True
    )
    digest = hashlib.sha256(described.encode()).hexdigest()[:12]
    namespace = "".join(c if c.isalnum() else "_" for c in place.server.resolved_namespace())
    return f"appliance_{namespace}_c{place.collection_id}_{digest}"


@contextlib.contextmanager
def _server_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (IndexBackendUnavailable, InvalidIndexSpec):
        raise
    except Exception as exc:
        # Only a pymilvus already imported can have raised one of its own errors.
        loaded = pymilvus is not None and pymilvus is not _NOT_IMPORTED
        if loaded and isinstance(exc, pymilvus.MilvusException):
            raise IndexServerError(f"milvus failed to {what}: {exc.message}") from exc
        raise


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def client_for(server: IndexServer) -> Any:
    """One pymilvus client per server and token, shared by the indexes on it (thread-safe)."""
    milvus = require_pymilvus()
    uri = server.uri
    if uri.endswith(".db"):
        # A Milvus Lite file: pymilvus starts its server in this process, one per path.
        uri = os.path.abspath(uri)
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    key = (uri, server.token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            with _server_errors(f"connect to {server.uri}"):
                client = milvus.MilvusClient(uri=uri, token=server.token)
            _clients[key] = client
        return client


def forget_clients() -> None:
    """Close every client (tests stopping a server; a process shutting down)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


class MilvusIndex:
    persistent = True

    def __init__(
        self,
        config: IndexConfig,
        dimension: int,
        client: Any,
        name: str,
        index_type: str,
    ) -> None:
        self.config = config
        self.dimension = dimension
        self.name = name
        self.index_type = index_type
        self._client = client
        # Live vectors, counted when the ids are listed and kept by add/remove in between
        # (Milvus's own row count includes deleted rows until compaction).
        self._count: int | None = None

    @classmethod
    def open(cls, config: IndexConfig, dimension: int, place: IndexPlace) -> MilvusIndex:
        milvus = require_pymilvus()
        index_type, build_params = parse_spec(config.spec, config.options)
        client = client_for(place.server)
        name = collection_name(place, config)
        with _server_errors(f"open collection {name}"):
            if not client.has_collection(name):
                schema = milvus.MilvusClient.create_schema(
                    auto_id=False,
                    enable_dynamic_field=False,
                    description=(
                        f"appliance collection {place.collection_id}, model {place.model_id}, "
                        f"index {config.label}"
                    ),
                )
                schema.add_field(_ID_FIELD, milvus.DataType.INT64, is_primary=True)
                schema.add_field(_VECTOR_FIELD, milvus.DataType.FLOAT_VECTOR, dim=dimension)
                index_params = client.prepare_index_params()
                index_params.add_index(
                    field_name=_VECTOR_FIELD,
                    index_type=index_type,
                    metric_type="IP",
                    params=build_params,
                )
                try:
                    client.create_collection(
                        name,
                        schema=schema,
                        index_params=index_params,
                        # A write acknowledged by the appliance is searchable at once.
                        consistency_level="Strong",
                    )
                except milvus.MilvusException:
                    if not client.has_collection(name):  # not another replica's create
                        raise
            client.load_collection(name)
        return cls(config, dimension, client, name, index_type)

    def __len__(self) -> int:
        if self._count is None:
            with _server_errors(f"count {self.name}"):
                rows = self._client.query(self.name, filter="", output_fields=["count(*)"])
            self._count = int(rows[0]["count(*)"])
        return self._count

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with _server_errors(f"write to {self.name}"):
            for start in range(0, len(ids), _WRITE_BATCH):
                rows = [
                    {_ID_FIELD: int(i), _VECTOR_FIELD: v}
                    for i, v in zip(
                        ids[start : start + _WRITE_BATCH],
                        vectors[start : start + _WRITE_BATCH],
                        strict=True,
                    )
                ]
                self._client.upsert(self.name, rows)
            if len(ids) >= _FLUSH_ROWS:
                self._client.flush(self.name)
        if self._count is not None:
            self._count += len(ids)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with _server_errors(f"delete from {self.name}"):
            present: list[int] = []
            for chunk in _chunks(np.asarray(ids, dtype=np.int64), MAX_ID_LIST):
                rows = self._client.query(
                    self.name, filter=_id_filter(chunk), output_fields=[_ID_FIELD]
                )
                present.extend(int(row[_ID_FIELD]) for row in rows)
            for start in range(0, len(present), MAX_ID_LIST):
                self._client.delete(self.name, ids=present[start : start + MAX_ID_LIST])
        if self._count is not None:
            self._count -= len(present)

    def ids(self) -> np.ndarray:
        found: list[np.ndarray] = []
        with _server_errors(f"list the ids of {self.name}"):
            iterator = self._client.query_iterator(
                self.name, batch_size=MAX_TOP_K, filter="", output_fields=[_ID_FIELD]
            )
            try:
                while batch := iterator.next():
                    found.append(np.fromiter((row[_ID_FIELD] for row in batch), dtype=np.int64))
            finally:
                iterator.close()
        ids = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        self._count = len(ids)
        return ids

    def nbytes(self) -> int:
        """The vectors' size on the server; this process holds none of them."""
        return len(self) * (self.dimension * 4 + 8)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        live = len(self)
        fetch = min(k, live if allowed is None else min(live, len(allowed)), MAX_TOP_K)
        if fetch <= 0:
            return scores, ids
        if allowed is None:
            found = self._search(queries, fetch, self._params(params, fetch, 1.0), None)
        else:
            found = [self._search_allowed(q, fetch, params, allowed, live) for q in queries]
        for row, (row_scores, row_ids) in enumerate(found):
            scores[row, : len(row_ids)] = row_scores
            ids[row, : len(row_ids)] = row_ids
        return scores, ids

    def _search_allowed(
        self, query: np.ndarray, k: int, params: SearchParams, allowed: np.ndarray, live: int
    ) -> tuple[np.ndarray, np.ndarray]:
        widen = max(1.0, live / max(1, len(allowed)))
        if len(allowed) <= MAX_ID_LIST:
            # Milvus searches only the listed ids; the graph walk looks wider to find them.
            return self._search(query[None], k, self._params(params, k, widen), allowed)[0]
        # Many allowed: search without the list, oversampled by 1 / selectivity, and keep
        # the allowed hits; short of k (a cluster of disallowed neighbours), widen, and at
        # Milvus's top-k limit fall back to the list sent in pieces and merged.
        limit = min(MAX_TOP_K, live, max(k, math.ceil(k * widen * 2)))
        while True:
            found_scores, found_ids = self._search(
                query[None], limit, self._params(params, limit, 1.0), None
            )[0]
            keep = np.isin(found_ids, allowed)
            if keep.sum() >= k or limit >= live:
                return found_scores[keep][:k], found_ids[keep][:k]
            if limit >= MAX_TOP_K:
                break
            limit = min(MAX_TOP_K, live, limit * 4)
        pieces = [
            self._search(query[None], k, self._params(params, k, widen), chunk)[0]
            for chunk in _chunks(allowed, MAX_ID_LIST)
        ]
        merged_scores = np.concatenate([p[0] for p in pieces])
        merged_ids = np.concatenate([p[1] for p in pieces])
        order = np.argsort(-merged_scores, kind="stable")[:k]
        return merged_scores[order], merged_ids[order]

    def _params(self, params: SearchParams, k: int, widen: float) -> dict[str, Any]:
        defaults = self.config.default_params()
        inner: dict[str, Any] = {}
        if self.index_type == "HNSW":
            ef = int(params.ef or defaults.ef or DEFAULT_EF)
            inner["ef"] = max(k, min(math.ceil(ef * widen), MAX_EF))
        elif self.index_type == "IVF_FLAT":
            nprobe = int(params.nprobe or defaults.nprobe or DEFAULT_NPROBE)
            inner["nprobe"] = max(1, min(math.ceil(nprobe * widen), 65_536))
        return {"metric_type": "IP", "params": inner}

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        search_params: dict[str, Any],
        allowed: np.ndarray | None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        with _server_errors(f"search {self.name}"):
            results = self._client.search(
                self.name,
                data=list(queries),
                limit=k,
                filter="" if allowed is None else _id_filter(allowed),
                search_params=search_params,
                anns_field=_VECTOR_FIELD,
                output_fields=[_ID_FIELD],
            )
        out = []
        for hits in results:
            out.append(
                (
                    np.fromiter((hit["distance"] for hit in hits), dtype=np.float32),
                    np.fromiter((hit[_ID_FIELD] for hit in hits), dtype=np.int64),
                )
            )
        return out

    def save(self, directory: Path) -> None:
        """Nothing to write: Milvus persists the index itself."""

    def drop(self) -> None:
        with _server_errors(f"drop collection {self.name}"):
            self._client.drop_collection(self.name)
        self._count = 0


def _id_filter(ids: np.ndarray) -> str:
    return f"{_ID_FIELD} in [{','.join(str(int(i)) for i in ids)}]"


def _chunks(ids: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class MilvusBackend:
    name = "milvus"
    # The index a collection gets when it names this backend and no spec.
    default_spec = "HNSW"
    persistent = True

    def create(
        self, config: IndexConfig, dimension: int, place: IndexPlace | None = None
    ) -> MilvusIndex:
        if place is None:
            raise InvalidIndexSpec(
                "a milvus index lives in a Milvus collection named after its appliance "
                "collection: create it through a collection (or give the bench a server)"
            )
        return MilvusIndex.open(config, dimension, place)

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> MilvusIndex:
        raise InvalidIndexSpec("a milvus index has no snapshot to load; open it at its place")

    def validate(self, config: IndexConfig, dimension: int) -> None:
        require_pymilvus()
        parse_spec(config.spec, config.options)
        if not 2 <= dimension <= _MAX_DIMENSION:
            raise InvalidIndexSpec(
                f"milvus takes vectors of 2 to {_MAX_DIMENSION} dimensions, not {dimension}"
            )

    def traits(self, config: IndexConfig) -> IndexTraits:
        index_type = config.spec.split(",")[0].strip().upper()
        params = {"HNSW": ("ef",), "IVF_FLAT": ("nprobe",)}.get(index_type, ())
        return IndexTraits(exact=index_type == "FLAT", lossy=False, query_params=params)

    def discard(self, index: VectorIndex) -> None:
        if isinstance(index, MilvusIndex):
            index.drop()
