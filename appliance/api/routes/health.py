"""Liveness and readiness."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State

from appliance.api.auth import PUBLIC
from appliance.api.schemas import Health, Readiness
from appliance.api.state import ApplianceHolder


class HealthController(Controller):
    tags = ["health"]
    # Probes answer without a key: an orchestrator has none.
    opt = PUBLIC

    @get("/health")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready")
    async def ready(self, state: State) -> Response[Readiness]:
        holder: ApplianceHolder = state.holder
        appliance = holder.peek()
        if appliance is None:
            body = Readiness(
                status="loading" if holder.error is None else "failed",
                detail=holder.error or "loading the model and indexes",
            )
            return Response(body, status_code=503)
        return Response(
            Readiness(
                status="ready",
                model=appliance.encoder.model_id,
                collections=len(appliance.collections.names()),
                starting=appliance.starting,
            ),
            status_code=200,
        )
