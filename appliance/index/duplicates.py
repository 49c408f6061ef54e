"""Identical vectors indexed once: a wrapper around a local index.

Real corpora hold boilerplate (empty pages, "see above", the same footer), and identical texts
give identical vectors. In an HNSW graph, thousands of points at distance 0 from each other
link only to each other and trap a search: a query near one of the real documents came back
with nothing but duplicates at the default ef. So each distinct vector enters the inner index
once, under its first id (the representative); later ids with the same bytes become aliases of
it. A search expands each representative it finds into the group's ids (in id order of
arrival) with the representative's score, which is each member's exact score too.

Groups are keyed by xxh3-128 of the vector's bytes. The keys of every representative are saved
beside the inner index's snapshot (`duplicates.npz`, with each group's members and vector) and
turned into a dict only when a write first needs them, so loading a snapshot stays about as
fast as the inner index's own load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from appliance.index.base import IndexBackend, IndexConfig, IndexPlace, SearchParams, VectorIndex

log = logging.getLogger(__name__)

_FILE = "duplicates.npz"
_MASK = (1 << 64) - 1


def _key(row: np.ndarray) -> int:
    return xxhash.xxh3_128_intdigest(row.tobytes())


class DeduplicatedIndex:
    """A `VectorIndex` whose inner index holds each distinct vector once."""

    def __init__(self, inner: VectorIndex) -> None:
        self.inner = inner
        self.config: IndexConfig = inner.config
        self.dimension: int = inner.dimension
        # Representative keys, as saved (two uint64 halves and the rep ids), until a write
        # needs the dict.
        self._saved_keys: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._rep_by_key: dict[int, int] = {}
        # Representatives removed without aliases: their dict entries are stale (ids are never
        # reused, and a removal does not know the vector's key).
        self._gone: set[int] = set()
        # Groups of two or more: representative -> the other ids, their vector and key.
        self._aliases: dict[int, list[int]] = {}
        self._group_vector: dict[int, np.ndarray] = {}
        self._group_key: dict[int, int] = {}
        self._rep_of_alias: dict[int, int] = {}
        # (aliases sorted, their representatives): made on the first search after a change of
        # the groups, not on every search.
        self._alias_lookup: tuple[np.ndarray, np.ndarray] | None = None

    # -- what the rest of the appliance reads -------------------------------------------------
    @property
    def num_threads(self) -> int:
        return int(getattr(self.inner, "num_threads", 1))

    @num_threads.setter
    def num_threads(self, threads: int) -> None:
        if hasattr(self.inner, "num_threads"):
            self.inner.num_threads = threads

    def __getattr__(self, name: str) -> Any:
        # Backend-specific knobs and traits (e.g. hnswlib's) read through to the inner index.
        return getattr(self.__dict__["inner"], name)

    def __len__(self) -> int:
        return len(self.inner) + len(self._rep_of_alias)

    def duplicates(self) -> int:
        """Ids held as aliases of an identical vector (not in the inner index)."""
        return len(self._rep_of_alias)

    def ids(self) -> np.ndarray:
        if not self._rep_of_alias:
            return self.inner.ids()
        aliases = np.fromiter(self._rep_of_alias, dtype=np.int64, count=len(self._rep_of_alias))
        return np.concatenate([self.inner.ids(), aliases])

    def nbytes(self) -> int:
        groups = sum(v.nbytes for v in self._group_vector.values())
        return self.inner.nbytes() + groups + 120 * (len(self._rep_by_key) + len(self))

    # -- writes -------------------------------------------------------------------------------
    def _keys(self) -> dict[int, int]:
        if self._saved_keys is not None:
            high, low, reps = self._saved_keys
            self._saved_keys = None
            keys = [
                (int(h) << 64) | int(lo) for h, lo in zip(high.tolist(), low.tolist(), strict=True)
            ]
            self._rep_by_key.update(zip(keys, reps.tolist(), strict=True))
        return self._rep_by_key

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        keys = self._keys()
        keep: list[int] = []
        for row, vector_id in enumerate(ids.tolist()):
            if vector_id in self._rep_of_alias:
                continue  # already held
            key = _key(vectors[row])
            rep = keys.get(key)
            if rep is None or rep == vector_id or rep in self._gone:
                keys[key] = vector_id
                keep.append(row)
                continue
            if rep not in self._aliases:
                self._aliases[rep] = []
                self._group_vector[rep] = vectors[row].copy()
                self._group_key[rep] = key
            self._aliases[rep].append(vector_id)
            self._rep_of_alias[vector_id] = rep
            self._alias_lookup = None
        if keep:
            self.inner.add(ids[keep], vectors[keep])

    def remove(self, ids: np.ndarray) -> None:
        plain: list[int] = []
        for vector_id in np.asarray(ids, dtype=np.int64).tolist():
            rep = self._rep_of_alias.pop(vector_id, None)
            if rep is not None:
                members = self._aliases[rep]
                members.remove(vector_id)
                if not members:
                    self._drop_group(rep)
                self._alias_lookup = None
            elif vector_id in self._aliases:
                self._promote(vector_id)
            else:
                plain.append(vector_id)
        if plain:
            self.inner.remove(np.asarray(plain, dtype=np.int64))
            self._gone.update(plain)

    def _drop_group(self, rep: int) -> tuple[list[int], np.ndarray, int]:
        members = self._aliases.pop(rep)
        return members, self._group_vector.pop(rep), self._group_key.pop(rep)

    def _promote(self, rep: int) -> None:
        """The representative goes; the group's first alias takes its place in the index."""
        members, vector, key = self._drop_group(rep)
        heir, rest = members[0], members[1:]
        self.inner.remove(np.asarray([rep], dtype=np.int64))
        self.inner.add(np.asarray([heir], dtype=np.int64), vector[None, :])
        del self._rep_of_alias[heir]
        self._keys()[key] = heir
        if rest:
            self._aliases[heir] = rest
            self._group_vector[heir] = vector
            self._group_key[heir] = key
            for member in rest:
                self._rep_of_alias[member] = heir
        self._alias_lookup = None

    # -- reads --------------------------------------------------------------------------------
    def _alias_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._alias_lookup is None:
            aliases = np.fromiter(self._rep_of_alias, dtype=np.int64, count=len(self._rep_of_alias))
            reps = np.fromiter(
                self._rep_of_alias.values(), dtype=np.int64, count=len(self._rep_of_alias)
            )
            order = np.argsort(aliases)
            self._alias_lookup = (aliases[order], reps[order])
        return self._alias_lookup

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self._aliases:
            return self.inner.search(queries, k, params, allowed)
        aliases, reps = self._alias_arrays()
        inner_allowed = None
        allowed_sorted = None
        if allowed is not None:
            allowed_sorted = np.sort(np.asarray(allowed, dtype=np.int64))
            mapped = allowed_sorted.copy()
            if len(aliases):
                at = np.minimum(np.searchsorted(aliases, mapped), len(aliases) - 1)
                is_alias = aliases[at] == mapped
                mapped[is_alias] = reps[at[is_alias]]
            inner_allowed = np.unique(mapped)
        scores, ids = self.inner.search(queries, k, params, inner_allowed)
        if self._aliases.keys().isdisjoint(ids.ravel().tolist()):
            return scores, ids  # no hit stands for a group (np.isin: ~20 µs on 10 ids)
        out_scores = np.full_like(scores, -np.inf)
        out_ids = np.full_like(ids, -1)
        group_of = self._aliases.get
        for row in range(len(ids)):
            # Python lists, one array write per row: most hits stand for themselves, and a
            # small array per hit cost ~1 µs each (200 µs a hybrid search).
            row_ids: list[int] = []
            row_scores: list[float] = []
            for score, rep in zip(scores[row].tolist(), ids[row].tolist(), strict=True):
                if rep < 0 or len(row_ids) >= k:
                    break
                members = group_of(rep)
                if members is None:
                    row_ids.append(rep)
                    row_scores.append(score)
                    continue
                group = np.asarray([rep, *members], dtype=np.int64)
                if allowed_sorted is not None:
                    at = np.minimum(np.searchsorted(allowed_sorted, group), len(allowed_sorted) - 1)
                    group = group[allowed_sorted[at] == group]
                row_ids.extend(group.tolist())
                row_scores.extend([score] * len(group))
            filled = min(k, len(row_ids))
            out_ids[row, :filled] = row_ids[:filled]
            out_scores[row, :filled] = row_scores[:filled]
        return out_scores, out_ids

    # -- snapshots ----------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        self.inner.save(directory)
        live = [(key, rep) for key, rep in self._keys().items() if rep not in self._gone]
        keys = [key for key, _ in live]
        np.savez(
            directory / _FILE,
            key_high=np.asarray([key >> 64 for key in keys], dtype=np.uint64),
            key_low=np.asarray([key & _MASK for key in keys], dtype=np.uint64),
            reps=np.asarray([rep for _, rep in live], dtype=np.int64),
            alias_ids=np.fromiter(self._rep_of_alias, dtype=np.int64),
            alias_reps=np.fromiter(self._rep_of_alias.values(), dtype=np.int64),
            group_reps=np.fromiter(self._group_vector, dtype=np.int64),
            group_vectors=np.asarray(
                list(self._group_vector.values()) or np.empty((0, self.dimension)),
                dtype=np.float32,
            ).reshape(-1, self.dimension),
        )

    @classmethod
    def load(cls, inner: VectorIndex, directory: Path) -> DeduplicatedIndex:
        index = cls(inner)
        path = directory / _FILE
        if not path.is_file():
            # A snapshot from before deduplication: its vectors stay as they are; new writes
            # are deduplicated among themselves.
            log.info("index snapshot at %s has no duplicate groups (older release)", directory)
            return index
        with np.load(path) as saved:
            index._saved_keys = (saved["key_high"], saved["key_low"], saved["reps"])
            alias_ids, alias_reps = saved["alias_ids"], saved["alias_reps"]
            group_reps, group_vectors = saved["group_reps"], saved["group_vectors"]
        for alias, rep in zip(alias_ids.tolist(), alias_reps.tolist(), strict=True):
            index._rep_of_alias[alias] = rep
            index._aliases.setdefault(rep, []).append(alias)
        for rep, vector in zip(group_reps.tolist(), group_vectors, strict=True):
            index._group_vector[rep] = np.ascontiguousarray(vector)
            index._group_key[rep] = _key(index._group_vector[rep])
        return index


class DeduplicatingBackend:
    """A local backend whose indexes hold each distinct vector once."""

    def __init__(self, inner: IndexBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.persistent = inner.persistent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)

    def create(
        self, config: IndexConfig, dimension: int, place: IndexPlace | None = None
    ) -> VectorIndex:
        return DeduplicatedIndex(self.inner.create(config, dimension, place))

    def discard(self, index: VectorIndex) -> None:
        self.inner.discard(index.inner if isinstance(index, DeduplicatedIndex) else index)

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> VectorIndex:
        return DeduplicatedIndex.load(self.inner.load(config, dimension, directory), directory)

    def validate(self, config: IndexConfig, dimension: int) -> None:
        self.inner.validate(config, dimension)
