"""Collections: create, list, inspect, move onto another index, drop."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from appliance.api.schemas import CollectionInfo, CollectionList, CreateCollection, IndexSpec
from appliance.collections.manager import LiveCollection
from appliance.index.base import IndexConfig
from appliance.index.registry import DEFAULT_INDEX
from appliance.service import Appliance


def index_config(spec: IndexSpec | None) -> IndexConfig:
    if spec is None:
        return DEFAULT_INDEX
    default_spec = {"hnswlib": DEFAULT_INDEX.spec, "milvus": "HNSW"}.get(
        spec.backend, "HNSW32,Flat"
    )
    options = {
        key: value
        for key, value in (
            ("ef_construction", spec.ef_construction),
            ("ef", spec.ef),
            ("nprobe", spec.nprobe),
        )
        if value is not None
    }
    if spec.spec is None and spec.ef is None and "HNSW" in default_spec + spec.backend.upper():
        options.setdefault("ef", 128)
    return IndexConfig(backend=spec.backend, spec=spec.spec or default_spec, options=options)


def describe(appliance: Appliance, live: LiveCollection) -> CollectionInfo:
    status = appliance.collections.status(live)
    return CollectionInfo(
        name=live.name,
        index={
            "backend": live.config.backend,
            "spec": live.config.spec,
            **live.config.options,
        },
        model_id=live.model_id,
        documents=status.documents,
        vectors_indexed=status.vectors_indexed,
        index_bytes=status.index_bytes,
        generation=status.generation,
    )


class CollectionController(Controller):
    path = "/collections"
    tags = ["collections"]

    @post(status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create_collection(
        self, data: JSONBody[CreateCollection], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        appliance.create_collection(data.name, index_config(data.index))
        return describe(appliance, appliance.collections.get(data.name))

    @get(sync_to_thread=True)
    def list_collections(self, appliance: NamedDependency[Appliance]) -> CollectionList:
        names = appliance.collections.stored_names()
        return CollectionList(
            [describe(appliance, appliance.collections.get(name)) for name in names]
        )

    @get("/{name:str}", sync_to_thread=True)
    def get_collection(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        return describe(appliance, appliance.collections.get(name))

    @put("/{name:str}/index", sync_to_thread=True)
    def reconfigure_index(
        self, name: FromPath[str], data: JSONBody[IndexSpec], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        """Move the collection onto another index (e.g. from hnswlib to milvus), built from
        the stored vectors while the current one serves; returns once it is switched."""
        return describe(appliance, appliance.collections.reconfigure(name, index_config(data)))

    @delete("/{name:str}", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
    def delete_collection(self, name: FromPath[str], appliance: NamedDependency[Appliance]) -> None:
        appliance.collections.get(name)
        appliance.collections.drop(name)
