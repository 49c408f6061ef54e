"""The one interface every vector index backend implements, and how an index is described."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec
import numpy as np
from msgspec import Meta

from appliance.errors import InvalidIndexSpec, InvalidQueryParams


class SearchParams(msgspec.Struct, kw_only=True, frozen=True):
    """Query-time knobs; each backend declares those it reads (`IndexTraits.query_params`)."""

    ef: int | None = None
    nprobe: int | None = None

    def given(self) -> list[str]:
        """The names of the knobs set."""
        return [name for name in self.__struct_fields__ if getattr(self, name) is not None]


class IndexTraits(msgspec.Struct, kw_only=True, frozen=True):
    """What an index configuration is, declared by its backend, so that callers never read
    spec strings."""

    # Answers exactly (brute force): an id selector search is already exact, recall is 1.
    exact: bool
    # Keeps compressed codes (PQ, SQ, ...): candidates are worth rescoring with exact vectors.
    lossy: bool
    # The SearchParams fields it reads (ef, nprobe); any other one is refused.
    query_params: tuple[str, ...]


class IndexOptions(msgspec.Struct, kw_only=True, frozen=True):
    """An index's own options, typed: a build option and the query defaults."""

    # HNSW graphs (hnswlib, faiss HNSW, milvus HNSW): candidates kept while building.
    ef_construction: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    # Query defaults; a search may override them (SearchParams).
    ef: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    nprobe: Annotated[int, Meta(ge=1, le=65_536)] | None = None


class IndexConfig(msgspec.Struct, kw_only=True, frozen=True):
    """An index: its backend, its spec (the whole description for faiss, a factory string)
    and its options as stored (a flat JSON object that the collection's content settings and
    search defaults share; `typed_options` reads the index's own)."""

    backend: str
    spec: str
    # Build options and query-time defaults, e.g. {"ef_construction": 200, "ef": 128}.
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.spec}"

    def typed_options(self) -> IndexOptions:
        own = {k: self.options[k] for k in IndexOptions.__struct_fields__ if k in self.options}
        try:
            return msgspec.convert(own, IndexOptions, strict=False)
        except msgspec.ValidationError as exc:
            raise InvalidIndexSpec(f"index options of {self.label}: {exc}") from exc

    def default_params(self) -> SearchParams:
        options = self.typed_options()
        return SearchParams(ef=options.ef, nprobe=options.nprobe)


def check_query_params(config: IndexConfig, traits: IndexTraits, params: SearchParams) -> None:
    """InvalidQueryParams naming what the index accepts, for a knob it would not read."""
    unknown = [name for name in params.given() if name not in traits.query_params]
    if unknown:
        accepted = ", ".join(traits.query_params) or "no query parameters"
        raise InvalidQueryParams(
            f"index {config.label} does not take {', '.join(unknown)}; it accepts {accepted}"
        )


def parse_index_arg(text: str) -> IndexConfig:
    """`faiss:HNSW32,Flat` or `hnswlib:M=32,ef_construction=200` → IndexConfig."""
    backend, sep, spec = text.partition(":")
    if not sep or not spec:
        raise InvalidIndexSpec(
            f"index {text!r} must look like BACKEND:SPEC, e.g. faiss:HNSW32,Flat or "
            "hnswlib:M=32,ef_construction=200"
        )
    return IndexConfig(backend=backend.strip(), spec=spec.strip())


@dataclass(frozen=True)
class IndexServer:
    """A vector server that a server-side backend (milvus) keeps its indexes in.

    `uri`: a Milvus address (http://host:19530) or a Milvus Lite file (ending in .db).
    The namespace keeps this appliance's collections apart from another's on the same server:
    `namespace` when given, else a random one kept in `namespace_file` (made on first use).
    """

    uri: str
    token: str = ""
    namespace: str = ""
    namespace_file: Path | None = None

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if self.namespace_file is None:
            return "default"
        try:
            return self.namespace_file.read_text().strip()
        except FileNotFoundError:
            namespace = secrets.token_hex(6)
            self.namespace_file.parent.mkdir(parents=True, exist_ok=True)
            staging = self.namespace_file.with_suffix(".tmp")
            staging.write_text(namespace + "\n")
            staging.replace(self.namespace_file)
            return namespace


@dataclass(frozen=True)
class IndexPlace:
    """Where a server-side index keeps one collection's vectors of one model. Local backends
    ignore it; a server-side one names its server collection after it."""

    server: IndexServer
    collection_id: int
    model_id: str


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
    # The spec a collection gets when it names the backend and no spec.
    default_spec: str
    # True: the index keeps its own state on a server, so start-up lists the ids it holds
    # (and catches up by set difference) instead of loading a snapshot, and `save` writes
    # nothing. False: a local index, rebuilt or loaded from a snapshot.
    persistent: bool

    def create(
        self, config: IndexConfig, dimension: int, place: IndexPlace | None = None
    ) -> VectorIndex:
        """A local backend: a new empty index. A server-side one: the index at `place`,
        opened as the server holds it (created there empty the first time)."""
        ...

    def discard(self, index: VectorIndex) -> None:
        """Free what `index` keeps outside this process (a server collection) once no
        version searches it; a local index has nothing to free."""
        ...

    def load(self, config: IndexConfig, dimension: int, directory: Path) -> VectorIndex: ...

    def validate(self, config: IndexConfig, dimension: int) -> None:
        """Raise InvalidIndexSpec with a message that says what to fix."""
        ...

    def traits(self, config: IndexConfig) -> IndexTraits:
        """What an index of this configuration is (exact, lossy, the query knobs it reads)."""
        ...
