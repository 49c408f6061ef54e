"""Collections: create, list, inspect, move onto another index, drop."""

from __future__ import annotations

from dataclasses import asdict

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from appliance.api.auth import requires_scope
from appliance.api.schemas import CollectionInfo, CollectionList, CreateCollection, IndexSpec
from appliance.index.base import IndexConfig
from appliance.index.registry import DEFAULT_INDEX
from appliance.service import Appliance, CollectionSummary
from appliance.service import index_config as collection_index


def index_config(spec: IndexSpec | None) -> IndexConfig:
    if spec is None:
        return DEFAULT_INDEX
    return collection_index(
        spec.backend,
        spec.spec,
        ef_construction=spec.ef_construction,
        ef=spec.ef,
        nprobe=spec.nprobe,
    )


def info(summary: CollectionSummary) -> CollectionInfo:
    return CollectionInfo(**asdict(summary))


class CollectionController(Controller):
    path = "/collections"
    tags = ["collections"]
    guards = [requires_scope("read")]

    @post(status_code=HTTP_201_CREATED, sync_to_thread=True, guards=[requires_scope("admin")])
    def create_collection(
        self, data: JSONBody[CreateCollection], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        appliance.create_collection(data.name, index_config(data.index))
        return info(appliance.describe_collection(data.name))

    @get(sync_to_thread=True)
    def list_collections(self, appliance: NamedDependency[Appliance]) -> CollectionList:
        return CollectionList([info(summary) for summary in appliance.list_collections()])

    @get("/{name:str}", sync_to_thread=True)
    def get_collection(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        return info(appliance.describe_collection(name))

    @put("/{name:str}/index", sync_to_thread=True, guards=[requires_scope("admin")])
    def reconfigure_index(
        self, name: FromPath[str], data: JSONBody[IndexSpec], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        """Move the collection onto another index (e.g. from hnswlib to milvus), built from
        the stored vectors while the current one serves; returns once it is switched."""
        appliance.collections.reconfigure(name, index_config(data))
        return info(appliance.describe_collection(name))

    @delete(
        "/{name:str}",
        status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def delete_collection(self, name: FromPath[str], appliance: NamedDependency[Appliance]) -> None:
        appliance.delete_collection(name)
