"""Collections: create, list, inspect, change search defaults, move onto another index, drop."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from appliance.api.schemas import (
    ChangeCollection,
    CollectionInfo,
    CollectionList,
    CreateCollection,
    IndexSpec,
)
from appliance.collections.manager import LiveCollection
from appliance.collections.settings import CONTENT_FIELDS, CollectionSettings, joined_options
from appliance.errors import InvalidRequest, SettingFixed
from appliance.index.base import IndexConfig
from appliance.index.hnswlib_index import DEFAULT_EF
from appliance.index.registry import DEFAULT_INDEX, backend_for
from appliance.service import Appliance


def index_config(spec: IndexSpec | None) -> IndexConfig:
    if spec is None:
        return DEFAULT_INDEX
    backend = backend_for(IndexConfig(backend=spec.backend, spec=""))
    options = {
        key: value
        for key, value in (
            ("ef_construction", spec.ef_construction),
            ("ef", spec.ef),
            ("nprobe", spec.nprobe),
        )
        if value is not None
    }
    config = IndexConfig(
        backend=spec.backend, spec=spec.spec or backend.default_spec, options=options
    )
    if spec.spec is None and spec.ef is None and "ef" in backend.traits(config).query_params:
        # The default graph index is searched wide enough for exact-level recall.
        config = IndexConfig(
            backend=config.backend, spec=config.spec, options={**options, "ef": DEFAULT_EF}
        )
    return config


def creation_config(data: CreateCollection) -> IndexConfig:
    """The index, content settings and search defaults of a new collection, as stored."""
    index = index_config(data.index)
    settings = CollectionSettings(content=data.content(), search=data.search_defaults())
    return IndexConfig(
        backend=index.backend, spec=index.spec, options=joined_options(index.options, settings)
    )


def describe(appliance: Appliance, live: LiveCollection) -> CollectionInfo:
    status = appliance.collections.status(live)
    settings = live.settings
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
        content=settings.content,
        search=settings.search,
        traits=live.traits,
    )


class CollectionController(Controller):
    path = "/collections"
    tags = ["collections"]

    @post(status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create_collection(
        self, data: JSONBody[CreateCollection], appliance: NamedDependency[Appliance]
    ) -> CollectionInfo:
        appliance.create_collection(data.name, creation_config(data))
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

    @patch("/{name:str}", sync_to_thread=True)
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
        live = appliance.collections.change_search_defaults(name, data.search_defaults())
        return describe(appliance, live)

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
