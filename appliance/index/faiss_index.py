"""FAISS backend: any index_factory string, inner product over unit vectors, int64 ids.

Indexes that need training (IVF, PQ, SQ) answer exactly from a flat buffer until enough
vectors have arrived to train well, then train on all of them. Indexes that cannot remove
(HNSW) keep removed ids as tombstones and exclude them with an id selector.

Where faiss is a GPU build that sees a GPU, the types faiss can put on one (Flat, IVF*,Flat /
PQ / SQ) answer unfiltered searches from a GPU copy; the CPU index stays the truth.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import InvalidIndexSpec
from appliance.index.base import IndexConfig, IndexPlace, IndexTraits, SearchParams, VectorIndex


class _FaissOnFirstUse:
    """faiss, imported when a faiss index first needs it. The backend registry imports this
    module in every process, and one that only builds hnswlib indexes (the default) should
    neither pay for faiss's import nor need the package: the GPU device kit
    (scripts/device_kit.sh) leaves its 19 MB wheel out of a 64 MiB allowance."""

    def __getattr__(self, name: str) -> Any:
        import faiss as module

        # Later look-ups of the global `faiss` find the module itself, with no detour here.
        globals()["faiss"] = module
        return getattr(module, name)


# Any: faiss's bundled SWIG stubs miss most of its API (SearchParametersHNSW, id_map, ...).
faiss: Any = _FaissOnFirstUse()

log = logging.getLogger(__name__)

# faiss warns below 39 training points per centroid; train only once that many are here.
_POINTS_PER_CENTROID = 39
_MIN_TRAINING_POINTS = 1_000
_INDEX_FILE = "index.faiss"
_BUFFER_FILE = "buffer.faiss"
_STATE_FILE = "faiss_state.json"
DEFAULT_EF = 128
DEFAULT_NPROBE = 16
MAX_EF = 4_096
# Factory parts whose codes are lossy: their candidates are rescored with the exact vectors.
_LOSSY_CODES = ("PQ", "SQ", "LSH", "RQ")


def _empty_flat(dimension: int) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def _sub_index(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index if isinstance(index, faiss.IndexIDMap2) else index)


def _ivf(index: faiss.Index) -> Any:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


# -- the GPU copy ---------------------------------------------------------------------------
# The index classes faiss's GPU cloner (faiss/gpu/GpuCloner.cpp) turns into GPU indexes. HNSW
# has no GPU form; IndexPQ, IndexScalarQuantizer, fast-scan, refine and transform wrappers
# stay on the CPU too.
GPU_INDEX_TYPES = frozenset(
    {"IndexFlat", "IndexFlatIP", "IndexIVFFlat", "IndexIVFPQ", "IndexIVFScalarQuantizer"}
)
# An IVF index goes whole or not at all: its coarse quantizer must be flat too (an HNSW one
# is refused by the cloner).
_GPU_QUANTIZER_TYPES = frozenset({"IndexFlat", "IndexFlatIP", "IndexFlatL2"})
# The largest k and nprobe a faiss GPU search takes (GPU_MAX_SELECTION_K); beyond, the CPU.
GPU_MAX_SELECTION = 2_048


def gpu_count(module: Any) -> int:
    """The GPUs a faiss module can put an index on: 0 for a CPU build (no GPU cloner)."""
    needed = ("get_num_gpus", "StandardGpuResources", "index_cpu_to_gpu")
    if not all(hasattr(module, name) for name in needed):
        return 0
    try:
        return max(0, int(module.get_num_gpus()))
    except RuntimeError:
        return 0


def gpu_for(device: str, gpus: int, kind: str, quantizer: str | None = None) -> int | None:
    """The GPU that answers an index's unfiltered searches, or None for the CPU.

    `device`: the appliance's device setting (auto, cpu, cuda); `gpus`: what `gpu_count` says
    of the installed faiss; `kind`: the index's faiss class (IndexIVFFlat, ...); `quantizer`:
    an IVF index's coarse quantizer class."""
    if device == "cpu" or gpus < 1 or kind not in GPU_INDEX_TYPES:
        return None
    if quantizer is not None and quantizer not in _GPU_QUANTIZER_TYPES:
        return None
    return 0


def index_kind(index: faiss.Index) -> tuple[str, str | None]:
    """(the index's faiss class, its IVF quantizer's class or None), as `gpu_for` takes them."""
    sub = _sub_index(index)
    quantizer = getattr(sub, "quantizer", None)
    kind = type(sub).__name__
    return kind, None if quantizer is None else type(faiss.downcast_index(quantizer)).__name__


@functools.cache
def _installed_gpus() -> int:
    try:
        import faiss as module
    except ImportError:
        return 0  # no faiss at all (the GPU device kit carries none): no index is a faiss one
    return gpu_count(module)


class _Gpu:
    """The process's GPU side of faiss: the device setting, and the one StandardGpuResources
    that every GPU copy shares. faiss's GPU resources are not thread-safe, so GPU searches,
    adds and copies take turns at `lock`."""

    device = "auto"
    lock = threading.Lock()
    _resources: Any = None

    @classmethod
    def resources(cls) -> Any:
        """Call with `lock` held."""
        if cls._resources is None:
            cls._resources = faiss.StandardGpuResources()
        return cls._resources


def use_device(device: str) -> None:
    """Where FAISS indexes may search: the appliance's `device` setting. "cpu" keeps every
    index on the CPU; "auto" and "cuda" put the types in GPU_INDEX_TYPES on GPU 0 where faiss
    is a GPU build that sees one."""
    _Gpu.device = device
    if device == "cuda" and _installed_gpus() == 0:
        log.info("device is cuda, but faiss is a CPU build or sees no GPU: indexes use the CPU")


def training_points_needed(index: faiss.Index) -> int:
    centroids = 1
    ivf = _ivf(index)
    if ivf is not None:
        centroids = max(centroids, int(ivf.nlist))
    pq = getattr(_sub_index(index), "pq", None)
    if pq is None and ivf is not None:
        pq = getattr(faiss.downcast_index(ivf), "pq", None)
    if pq is not None:
        centroids = max(centroids, 1 << int(pq.nbits))
    return max(_MIN_TRAINING_POINTS, centroids * _POINTS_PER_CENTROID)


class FaissIndex:
    def __init__(self, config: IndexConfig, dimension: int, index: faiss.Index) -> None:
        self.config = config
        self.dimension = dimension
        self._index = index
        self._buffer = None if index.is_trained else _empty_flat(dimension)
        self._tombstones: set[int] = set()
        self._can_remove = True
        # Looked up once, not per search: faiss answers "not IVF" with an exception (~0.1 ms).
        self._ivf_index = _ivf(index)
        self._is_hnsw = getattr(_sub_index(index), "hnsw", None) is not None
        # Unfiltered search parameters by (nprobe or efSearch): read-only, shared by searches.
        self._plain_params: dict[tuple[str, int], faiss.SearchParameters] = {}
        # The collection's query defaults (ef, nprobe), read once.
        self._defaults = config.default_params()
        self._kind = index_kind(index)
        # The GPU copy of `_index`: made by the first search that can use it, kept equal by
        # `add`, dropped by a removal (GPU indexes cannot remove) and re-made lazily.
        self._gpu_index: Any = None
        # A copy or GPU search failed: this index answers from the CPU from then on.
        self._gpu_failed = False

    @classmethod
    def build(cls, config: IndexConfig, dimension: int) -> FaissIndex:
        spec = config.spec
        if not spec.upper().startswith("IDMAP"):
            spec = f"IDMap2,{spec}"
        try:
            index = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidIndexSpec(
                f"faiss cannot build {config.spec!r} for {dimension} dimensions: "
                f"{_faiss_message(exc)}. Examples: Flat, HNSW32,Flat, IVF256,Flat, IVF256,PQ48, "
                "HNSW32,SQ8"
            ) from exc
        hnsw = getattr(_sub_index(index), "hnsw", None)
        if hnsw is not None:
            hnsw.efConstruction = config.typed_options().ef_construction or 200
        return cls(config, dimension, index)

    # -- writes ---------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._tombstones.difference_update(ids.tolist())
        if self._buffer is None:
            self._index.add_with_ids(vectors, ids)
            if self._gpu_index is not None:
                self._add_to_gpu_copy(ids, vectors)
            return
        self._buffer.add_with_ids(vectors, ids)
        if self._buffer.ntotal >= training_points_needed(self._index):
            self._train_from_buffer()

    def _train_from_buffer(self) -> None:
        assert self._buffer is not None
        buffered_ids = faiss.vector_to_array(self._buffer.id_map).astype(np.int64)
        buffered = self._buffer.index.reconstruct_n(0, self._buffer.ntotal)
        self._index.train(buffered)
        self._index.add_with_ids(buffered, buffered_ids)
        self._buffer = None
        self._drop_gpu_copy()

    def _add_to_gpu_copy(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with _Gpu.lock:
            if self._gpu_index is None:
                return
            try:
                self._gpu_index.add_with_ids(vectors, ids)
            except (RuntimeError, MemoryError) as exc:
                # The copy may hold part of the batch: re-copy on the next search instead.
                log.warning("faiss GPU add failed (%s); the GPU copy is re-made", exc)
                self._gpu_index = None

    def _drop_gpu_copy(self) -> None:
        if self._gpu_index is not None:
            with _Gpu.lock:
                self._gpu_index = None

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._drop_gpu_copy()
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        if self._buffer is not None:
            self._buffer.remove_ids(selector)
            return
        if self._can_remove:
            try:
                self._index.remove_ids(selector)
                return
            except RuntimeError:
                self._can_remove = False
        self._tombstones.update(int(i) for i in ids)

    # -- reads ----------------------------------------------------------------------------
    def __len__(self) -> int:
        active = self._buffer if self._buffer is not None else self._index
        return int(active.ntotal) - len(self._tombstones)

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def ids(self) -> np.ndarray:
        active = self._buffer if self._buffer is not None else self._index
        ids = faiss.vector_to_array(active.id_map).astype(np.int64)
        if self._tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64))]
        return ids

    def nbytes(self) -> int:
        """Estimate from codes, graph links and the id map; serialising to measure would copy
        the whole index."""
        active = self._buffer if self._buffer is not None else self._index
        sub = _sub_index(active)
        count = int(active.ntotal)
        code_size = int(getattr(sub, "code_size", 0) or self.dimension * 4)
        storage = getattr(sub, "storage", None)
        if storage is not None:
            code_size = int(getattr(faiss.downcast_index(storage), "code_size", code_size))
        hnsw = getattr(sub, "hnsw", None)
        links = 0 if hnsw is None else int(hnsw.nb_neighbors(0)) * 4 * 3 // 2
        # 8 bytes per id in the id map, and as much again for its reverse map.
        return count * (code_size + links + 16)

    @property
    def search_device(self) -> str:
        """Where an unfiltered search is answered: "cuda:N" (the GPU copy) or "cpu"."""
        gpu = self._gpu()
        return "cpu" if gpu is None else f"cuda:{gpu}"

    def _gpu(self) -> int | None:
        # Buffered (untrained) indexes and tombstones (which need an id selector) stay on
        # the CPU.
        if self._gpu_failed or self._buffer is not None or self._tombstones:
            return None
        return gpu_for(_Gpu.device, _installed_gpus(), *self._kind)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        # An id selector (a filter, tombstones) needs the CPU index; so does k beyond what a
        # GPU search selects, or beyond the vectors held (a corner not worth a GPU trip).
        gpu = self._gpu() if allowed is None else None
        if gpu is not None and k <= min(GPU_MAX_SELECTION, self._index.ntotal):
            found = self._search_gpu(gpu, queries, k, params)
            if found is not None:
                return found
        active = self._buffer if self._buffer is not None else self._index
        selector = self._selector(allowed)
        # A selector hides the rest of the index from the search: look proportionally wider.
        widen = len(self) / max(1, len(allowed)) if allowed is not None else 1.0
        search_params = self._search_params(params, selector, max(1.0, widen))
        try:
            scores, ids = active.search(queries, k, params=search_params)
        except RuntimeError:
            # Some indexes (IndexPQ, ...) take no search parameters: oversample, then filter.
            scores, ids = self._search_without_params(active, queries, k, allowed)
        return scores, ids

    def _search_gpu(
        self, gpu: int, queries: np.ndarray, k: int, params: SearchParams
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(scores, ids) from the GPU copy, or None: answer from the CPU. A GPU index ignores
        an id selector rather than refusing it, so it is never given one."""
        search_params = None
        if self._ivf_index is not None:
            search_params = self._search_params(params, None, 1.0)
            if search_params is None or search_params.nprobe > GPU_MAX_SELECTION:
                return None
        with _Gpu.lock:
            try:
                if self._gpu_index is None:
                    self._gpu_index = faiss.index_cpu_to_gpu(_Gpu.resources(), gpu, self._index)
                    log.info(
                        "faiss %s: %d vectors copied to GPU %d",
                        self.config.spec,
                        self._index.ntotal,
                        gpu,
                    )
                scores, ids = self._gpu_index.search(queries, k, params=search_params)
            except (RuntimeError, MemoryError) as exc:
                log.warning("faiss %s stays on the CPU: GPU %d: %s", self.config.spec, gpu, exc)
                self._gpu_index = None
                self._gpu_failed = True
                return None
        return scores, ids

    def _selector(self, allowed: np.ndarray | None) -> faiss.IDSelector | None:
        if allowed is not None:
            # Allowed ids come from the store, which never holds a removed (tombstoned) id.
            return faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if self._tombstones and self._buffer is None:
            removed = np.fromiter(self._tombstones, dtype=np.int64)
            return faiss.IDSelectorNot(faiss.IDSelectorBatch(removed))
        return None

    def _search_params(
        self, params: SearchParams, selector: faiss.IDSelector | None, widen: float
    ) -> faiss.SearchParameters | None:
        if self._buffer is not None:
            return faiss.SearchParameters(sel=selector) if selector is not None else None
        ivf = self._ivf_index
        if ivf is not None:
            nprobe = params.nprobe or self._defaults.nprobe or DEFAULT_NPROBE
            key = ("ivf", int(min(math.ceil(nprobe * widen), ivf.nlist)))
        elif self._is_hnsw:
            ef = params.ef or self._defaults.ef or DEFAULT_EF
            key = ("hnsw", min(math.ceil(ef * widen), MAX_EF))
        else:
            key = ("flat", 0)
        if selector is None:
            cached = self._plain_params.get(key)
            if cached is None:
                cached = self._plain_params[key] = _make_params(*key)
            return cached
        result = _make_params(*key)
        result.sel = selector
        # Keep the selector alive as long as the parameters that point at it.
        result._selector_ref = selector
        return result

    def _search_without_params(
        self, active: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(int(active.ntotal), max(k, k * 4 + len(self._tombstones)))
        if allowed is not None:
            fetch = int(active.ntotal)
        scores, ids = active.search(queries, max(fetch, 1))
        keep = ids >= 0
        if self._tombstones:
            keep &= ~np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64))
        if allowed is not None:
            keep &= np.isin(ids, allowed)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            row_ids = ids[row][keep[row]][:k]
            out_ids[row, : len(row_ids)] = row_ids
            out_scores[row, : len(row_ids)] = scores[row][keep[row]][:k]
        return out_scores, out_ids

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(directory / _INDEX_FILE))
        if self._buffer is not None:
            faiss.write_index(self._buffer, str(directory / _BUFFER_FILE))
        state = {"tombstones": sorted(self._tombstones), "can_remove": self._can_remove}
        (directory / _STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, config: IndexConfig, dimension: int, directory: Path) -> FaissIndex:
        index = faiss.read_index(str(directory / _INDEX_FILE))
        loaded = cls(config, dimension, index)
        buffer_file = directory / _BUFFER_FILE
        if not index.is_trained:
            loaded._buffer = faiss.read_index(str(buffer_file))
        state = json.loads((directory / _STATE_FILE).read_text())
        loaded._tombstones = set(state["tombstones"])
        loaded._can_remove = bool(state["can_remove"])
        return loaded


def _make_params(kind: str, value: int) -> faiss.SearchParameters:
    if kind == "ivf":
        return faiss.SearchParametersIVF(nprobe=value)
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=value)
    return faiss.SearchParameters()


def _faiss_message(exc: RuntimeError) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
    return re.sub(r"^Error in .*? at .*?: ", "", text)


class FaissBackend:
    name = "faiss"
    # The index a collection gets when it names this backend and no spec.
    default_spec = "HNSW32,Flat"

    persistent = False

    def create(
        self, config: IndexConfig, dimension: int, place: IndexPlace | None = None
    ) -> FaissIndex:
        return FaissIndex.build(config, dimension)

    def discard(self, index: VectorIndex) -> None:
        """A local index is freed with the process's last reference to it."""

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> FaissIndex:
        return FaissIndex.load(config, dimension, directory)

    def traits(self, config: IndexConfig) -> IndexTraits:
        parts = [p.strip().upper() for p in config.spec.split(",") if p.strip()]
        parts = [p for p in parts if not p.startswith("IDMAP")]
        params: tuple[str, ...] = ()
        if any(p.startswith("IVF") for p in parts):
            params = ("nprobe",)
        elif any(p.startswith("HNSW") for p in parts):
            params = ("ef",)
        return IndexTraits(
            exact=parts == ["FLAT"],
            lossy=any(marker in p for p in parts for marker in _LOSSY_CODES),
            query_params=params,
        )

    def validate(self, config: IndexConfig, dimension: int) -> None:
        if len(config.spec) > 200:
            raise InvalidIndexSpec("faiss spec is longer than 200 characters")
        FaissIndex.build(config, dimension)
