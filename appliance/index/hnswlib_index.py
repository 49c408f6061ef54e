"""hnswlib backend: HNSW over unit vectors (inner product), spec `M=32,ef_construction=200`.

Removed ids are marked deleted (hnswlib skips them in search); the set of them is persisted
beside the index, since hnswlib does not list them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hnswlib
import numpy as np

from appliance.errors import InvalidIndexSpec
from appliance.index.base import IndexConfig, IndexPlace, IndexTraits, SearchParams, VectorIndex
from appliance.nowait import refuse_to_wait

_INDEX_FILE = "index.hnswlib"
_STATE_FILE = "hnswlib_state.json"
_SPEC_KEYS = {"M": 32, "ef_construction": 200}
_INITIAL_CAPACITY = 1_024
DEFAULT_EF = 128
MAX_EF = 4_096


def parse_spec(spec: str) -> dict[str, int]:
    values = dict(_SPEC_KEYS)
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or key not in _SPEC_KEYS:
            raise InvalidIndexSpec(
                f"hnswlib spec part {part!r} is not understood; use M=<int>,ef_construction=<int>"
                " (e.g. M=32,ef_construction=200)"
            )
        try:
            values[key] = int(raw)
        except ValueError as exc:
            raise InvalidIndexSpec(f"hnswlib {key} must be an integer, got {raw!r}") from exc
    if not 2 <= values["M"] <= 256:
        raise InvalidIndexSpec(f"hnswlib M must be between 2 and 256, got {values['M']}")
    if not 1 <= values["ef_construction"] <= 10_000:
        raise InvalidIndexSpec("hnswlib ef_construction must be between 1 and 10000")
    return values


class _EfGate:
    """Lets searches share an hnswlib index although its ef is one setting of the index, not a
    parameter of a query: searches that want the ef set now run side by side; one that wants
    another waits until those inside leave, sets it, and goes in. While one waits to change it,
    later arrivals wait too, so a stream of searches at one ef cannot starve another ef."""

    def __init__(self, index: hnswlib.Index) -> None:
        self._index = index
        self._cond = threading.Condition(threading.Lock())
        self._ef = -1
        self._inside = 0
        self._waiting = 0
        self._round = 0  # times the index emptied of searches

    @contextmanager
    def searching(self, ef: int) -> Iterator[None]:
        with self._cond:
            if self._waiting or not self._may_enter(ef):
                refuse_to_wait(f"searches at another ef than {ef} are inside the index")
                # Behind others who wait: go in no earlier than the next time it empties.
                behind = self._round if self._waiting else None
                self._waiting += 1
                try:
                    while not self._may_enter(ef) or self._round == behind:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
            if self._ef != ef:
                self._index.set_ef(ef)
                self._ef = ef
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                if not self._inside:
                    self._round += 1
                    self._cond.notify_all()

    def _may_enter(self, ef: int) -> bool:
        return not self._inside or self._ef == ef


class HnswlibIndex:
    def __init__(self, config: IndexConfig, dimension: int, index: hnswlib.Index) -> None:
        self.config = config
        self.dimension = dimension
        self._index = index
        self._deleted: set[int] = set()
        # hnswlib's ef is a property of the index, not of a query.
        self._ef_gate = _EfGate(index)
        # The collection's query default (ef), read once.
        self._defaults = config.default_params()
        # Threads for one unfiltered search call (-1: all cores). A filtered search stays on
        # one thread: its filter is a Python callable, and more threads only contend for the GIL.
        self.num_threads = 1

    @classmethod
    def build(cls, config: IndexConfig, dimension: int) -> HnswlibIndex:
        values = parse_spec(config.spec)
        index = hnswlib.Index(space="ip", dim=dimension)
        index.init_index(
            max_elements=_INITIAL_CAPACITY,
            M=values["M"],
            ef_construction=values["ef_construction"],
            random_seed=100,
        )
        return cls(config, dimension, index)

    def __len__(self) -> int:
        return int(self._index.get_current_count()) - len(self._deleted)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        needed = int(self._index.get_current_count()) + len(ids)
        capacity = int(self._index.get_max_elements())
        if needed > capacity:
            self._index.resize_index(max(needed, capacity * 2))
        self._index.add_items(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
        self._deleted.difference_update(int(i) for i in ids)

    def remove(self, ids: np.ndarray) -> None:
        for vector_id in (int(i) for i in ids):
            if vector_id in self._deleted:
                continue
            try:
                self._index.mark_deleted(vector_id)
            except RuntimeError:
                continue  # not in the index: nothing to remove
            self._deleted.add(vector_id)

    def ids(self) -> np.ndarray:
        ids = np.asarray(self._index.get_ids_list(), dtype=np.int64)
        if self._deleted:
            ids = ids[~np.isin(ids, np.fromiter(self._deleted, dtype=np.int64))]
        return ids

    def nbytes(self) -> int:
        count = int(self._index.get_current_count())
        links = int(self._index.M) * 2 * 4 + 8
        return count * (self.dimension * 4 + links + 8)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        live = len(self) if allowed is None else min(len(self), len(allowed))
        fetch = min(k, live)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if fetch <= 0:
            return scores, ids
        ef = int(params.ef or self._defaults.ef or DEFAULT_EF)
        if allowed is not None:
            # A filter hides the rest of the graph from the search: look proportionally wider.
            ef = min(ef * max(1, len(self) // max(1, len(allowed))), MAX_EF)
        ef = max(ef, fetch)
        allowed_set = set(allowed.tolist()) if allowed is not None else None
        accept = None if allowed_set is None else allowed_set.__contains__
        labels, distances = self._query(queries, fetch, ef, accept)
        ids[:, :fetch] = labels
        # hnswlib's "ip" distance is 1 - inner product.
        scores[:, :fetch] = 1.0 - distances
        return scores, ids

    def _query(
        self, queries: np.ndarray, k: int, ef: int, accept: object
    ) -> tuple[np.ndarray, np.ndarray]:
        while True:
            with self._ef_gate.searching(ef):
                try:
                    threads = self.num_threads if accept is None else 1
                    return self._index.knn_query(queries, k=k, num_threads=threads, filter=accept)
                except RuntimeError:
                    # Fewer than k reachable under this ef (a narrow filter): search wider.
                    if ef >= max(int(self._index.get_current_count()), k):
                        raise
                    ef *= 4

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._index.save_index(str(directory / _INDEX_FILE))
        (directory / _STATE_FILE).write_text(json.dumps({"deleted": sorted(self._deleted)}))

    @classmethod
    def load(cls, config: IndexConfig, dimension: int, directory: Path) -> HnswlibIndex:
        index = hnswlib.Index(space="ip", dim=dimension)
        index.load_index(str(directory / _INDEX_FILE))
        loaded = cls(config, dimension, index)
        state = json.loads((directory / _STATE_FILE).read_text())
        loaded._deleted = set(state["deleted"])
        return loaded


class HnswlibBackend:
    name = "hnswlib"
    # The index a collection gets when it names this backend and no spec.
    default_spec = "M=32,ef_construction=200"

    persistent = False

    def create(
        self, config: IndexConfig, dimension: int, place: IndexPlace | None = None
    ) -> HnswlibIndex:
        return HnswlibIndex.build(config, dimension)

    def discard(self, index: VectorIndex) -> None:
        """A local index is freed with the process's last reference to it."""

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> HnswlibIndex:
        return HnswlibIndex.load(config, dimension, directory)

    def validate(self, config: IndexConfig, dimension: int) -> None:
        parse_spec(config.spec)

    def traits(self, config: IndexConfig) -> IndexTraits:
        return IndexTraits(exact=False, lossy=False, query_params=("ef",))
