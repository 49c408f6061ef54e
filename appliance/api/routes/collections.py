"""Collections: create, list, inspect, change search defaults, move onto another index, drop."""

from __future__ import annotations

from dataclasses import fields

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from appliance.api.auth import requires_scope
from appliance.api.schemas import (
    ChangeCollection,
    CollectionInfo,
    CollectionList,
    CreateCollection,
    IndexSpec,
)
from appliance.collections.settings import CONTENT_FIELDS, CollectionSettings, joined_options
from appliance.errors import InvalidRequest, SettingFixed
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


def creation_config(data: CreateCollection) -> IndexConfig:
    """The index, content settings and search defaults of a new collection, as stored."""
    index = index_config(data.index)
    settings = CollectionSettings(content=data.content(), search=data.search_defaults())
    return IndexConfig(
        backend=index.backend, spec=index.spec, options=joined_options(index.options, settings)
    )


def info(summary: CollectionSummary) -> CollectionInfo:
    return CollectionInfo(**{field.name: getattr(summary, field.name) for field in fields(summary)})


class CollectionController(Controller):
    path = "/collections"
    tags = ["collections"]
    guards = [requires_scope("read")]

    @post(status_code=HTTP_201_CREATED, sync_to_thread=True, guards=[requires_scope("admin")])
    def create_collection(
        self, data: JSONBody[CreateCollection], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        appliance.create_collection(data.name, creation_config(data))
        return info(appliance.describe_collection(data.name))

    @get(sync_to_thread=True)
    def list_collections(self, appliance: NamedDependency[Appliance]) -> CollectionList:
        return CollectionList([info(summary) for summary in appliance.list_collections()])

    @get("/{name:str}", sync_to_thread=True)
    def get_collection(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        return info(appliance.describe_collection(name))

    @patch("/{name:str}", sync_to_thread=True, guards=[requires_scope("admin")])
    def change_collection(
        self,
        name: FromPath[str],
        data: JSONBody[ChangeCollection],
        appliance: NamedDependency[Appliance],
    ) -> CollectionInfo:
        """Change the collection's search defaults (mode, fusion, rrf_k, alpha, dense_weight,
        title_weight, rescore); fields left out stay. Content settings are fixed at creation;
        the index moves with PUT /collections/{name}/index."""
        fixed = [field for field in CONTENT_FIELDS if getattr(data, field) is not None]
        if fixed:
            raise SettingFixed(
                f"{', '.join(fixed)} cannot change: content settings are fixed at creation "
                "(the stored vectors were made with them); create a new collection with them "
                "and ingest into it"
            )
        if data.index is not None:
            raise InvalidRequest(
                f"the index moves with PUT /collections/{name}/index (rebuilt from the stored "
                "vectors); PATCH changes search defaults only"
            )
        appliance.collections.change_search_defaults(name, data.search_defaults())
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
