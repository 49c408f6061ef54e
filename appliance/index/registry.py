"""The index backends by name: a new backend is one module and one line here."""

from __future__ import annotations

from typing import Literal, get_args

from appliance.errors import InvalidIndexSpec
from appliance.index.base import IndexBackend, IndexConfig
from appliance.index.duplicates import DeduplicatingBackend
from appliance.index.faiss_index import FaissBackend
from appliance.index.hnswlib_index import HnswlibBackend
from appliance.index.milvus_index import MilvusBackend

BACKENDS: dict[str, IndexBackend] = {
    # Local indexes hold each distinct vector once (identical texts: one graph node).
    "faiss": DeduplicatingBackend(FaissBackend()),
    "hnswlib": DeduplicatingBackend(HnswlibBackend()),
    "milvus": MilvusBackend(),
}
# The names above, as a type (request schemas list them); a new backend adds its name here too.
BackendName = Literal["faiss", "hnswlib", "milvus"]
assert set(get_args(BackendName)) == set(BACKENDS), "BackendName must name every backend"

# Exact-level recall on the corpora this appliance is for, at a fraction of Flat's cost.
DEFAULT_INDEX = IndexConfig(backend="hnswlib", spec="M=32,ef_construction=200", options={"ef": 128})


def backend_for(config: IndexConfig) -> IndexBackend:
    try:
        return BACKENDS[config.backend]
    except KeyError:
        raise InvalidIndexSpec(
            f"unknown index backend {config.backend!r}; choose one of {', '.join(BACKENDS)}"
        ) from None
