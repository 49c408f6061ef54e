"""The one interface every vector index backend implements, and how an index is described."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from appliance.errors import InvalidIndexSpec


class SearchParams(msgspec.Struct, kw_only=True, frozen=True):
    """Query-time knobs; a backend ignores those that do not apply to it."""

    ef: int | None = None
    nprobe: int | None = None


class IndexConfig(msgspec.Struct, kw_only=True, frozen=True):
    backend: str
    spec: str
    # Build options and query-time defaults, e.g. {"ef_construction": 200, "ef": 128}.
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.spec}"

    def default_params(self) -> SearchParams:
        return SearchParams(ef=self.options.get("ef"), nprobe=self.options.get("nprobe"))


def parse_index_arg(text: str) -> IndexConfig:
    """`faiss:HNSW32,Flat` or `hnswlib:M=32,ef_construction=200` → IndexConfig."""
    backend, sep, spec = text.partition(":")
    if not sep or not spec:
        raise InvalidIndexSpec(
            f"index {text!r} must look like BACKEND:SPEC, e.g. faiss:HNSW32,Flat or "
            "hnswlib:M=32,ef_construction=200"
        )
    return IndexConfig(backend=backend.strip(), spec=spec.strip())


class VectorIndex(Protocol):
    """An id-keyed inner-product index over unit vectors. Ids are int64 and never reused."""

    config: IndexConfig
    dimension: int

    def __len__(self) -> int:
        """Live (searchable) vectors."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing hits have id -1. `allowed` restricts
        results to those ids."""
        ...

    def ids(self) -> np.ndarray:
        """Every live id, as int64."""
        ...

    def nbytes(self) -> int:
        """Approximate memory held by the index."""
        ...

    def save(self, directory: Path) -> None: ...


class IndexBackend(Protocol):
    name: str

    def create(self, config: IndexConfig, dimension: int) -> VectorIndex: ...

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> VectorIndex: ...

    def validate(self, config: IndexConfig, dimension: int) -> None:
        """Raise InvalidIndexSpec with a message that says what to fix."""
        ...
