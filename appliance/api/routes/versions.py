"""Embedding versions of a collection: list them, reindex with another model (or switch back
to a kept version), drop one that is not active."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from appliance.api.auth import requires_scope
from appliance.api.schemas import ReindexIn, VersionList, VersionOut
from appliance.ingest.reindex import VersionStatus
from appliance.service import Appliance


def version_out(status: VersionStatus) -> VersionOut:
    return VersionOut(
        model_id=status.model_id,
        state=status.state,
        active=status.active,
        documents_total=status.documents_total,
        documents_embedded=status.documents_embedded,
        vectors=status.vectors,
        detail=status.detail,
        created_at=status.created_at.isoformat() if status.created_at else None,
        activated_at=status.activated_at.isoformat() if status.activated_at else None,
    )


class VersionController(Controller):
    path = "/collections/{name:str}"
    tags = ["embedding versions"]
    guards = [requires_scope("read")]

    @get("/versions", sync_to_thread=True)
    def list_versions(
        self, name: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> VersionList:
        """Every model with vectors for the collection, the active one first."""
        return VersionList([version_out(s) for s in appliance.reindex.versions(name)])

    @post(
        "/reindex",
        status_code=HTTP_202_ACCEPTED,
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def reindex(
        self, name: FromPath[str], data: JSONBody[ReindexIn], appliance: NamedDependency[Appliance]
    ) -> Response[VersionOut]:
        """Embed the collection with `model` in the background while searches keep using the
        active version, then switch atomically. Naming a kept version switches back to it
        (only documents changed since are embedded). Follow it at GET .../versions."""
        status = appliance.reindex.start(name, data.model)
        return Response(version_out(status), status_code=HTTP_202_ACCEPTED)

    @delete(
        "/versions/{model:str}",
        status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def drop_version(
        self, name: FromPath[str], model: FromPath[str], appliance: NamedDependency[Appliance]
    ) -> None:
        """Delete a version that is not active (by model name or model id)."""
        appliance.reindex.drop(name, model)
