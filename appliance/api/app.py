"""The Litestar application: routes, dependencies, errors, metrics, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from appliance import __version__
from appliance.admin_key import ensure_admin_key
from appliance.api.allow import allow_header
from appliance.api.auth import (
    KeyRing,
    auth_middleware,
    check_bind_address,
    closed_by_default,
    is_loopback,
    requires_scope,
)
from appliance.api.docs import LocalSwaggerPlugin
from appliance.api.errors import EXCEPTION_HANDLERS, middleware_error_answers
from appliance.api.http_metrics import PrometheusHttpMiddleware
from appliance.api.logging import (
    configure_logging,
    litestar_logging_config,
    log_response,
    request_id_middleware,
)
from appliance.api.metrics import COLLECTOR
from appliance.api.openapi import complete_openapi
from appliance.api.ratelimit import rate_limit_middleware
from appliance.api.routes.auth import AuthController
from appliance.api.routes.collections import CollectionController
from appliance.api.routes.console import console_assets, console_page
from appliance.api.routes.documents import DocumentController, JobController
from appliance.api.routes.health import HealthController
from appliance.api.routes.openai import OpenAIController
from appliance.api.routes.search import SearchController
from appliance.api.routes.versions import VersionController
from appliance.api.state import ApplianceHolder
from appliance.api.strict_body import strict_body
from appliance.config import Settings
from appliance.service import Appliance
from appliance.store.migration import ensure_schema


def provide_appliance(state: State) -> Appliance:
    holder: ApplianceHolder = state.holder
    return holder.get()


class MetricsController(PrometheusController):
    """`GET /metrics`, for any key."""

    guards = [requires_scope("read")]


def route_handlers() -> list[Any]:
    """Every route of the API, each with its scope guard or declared public (fresh objects:
    Litestar registers them into one app)."""
    return [
        HealthController,
        CollectionController,
        DocumentController,
        JobController,
        SearchController,
        VersionController,
        OpenAIController,
        MetricsController,
        AuthController,
        console_page,
        console_assets(),
    ]


def openapi_config() -> OpenAPIConfig:
    """The API docs under /schema: the schema and Swagger UI, for any key."""
    return OpenAPIConfig(
        title="Local search appliance",
        version=__version__,
        path="/schema",
        render_plugins=[LocalSwaggerPlugin()],
        openapi_router=Router(
            "/schema", route_handlers=[], include_in_schema=False, guards=[requires_scope("read")]
        ),
    )


@cache
def route_table() -> Litestar:
    """The routes alone, with their guards (no state, middleware or lifespan): what a
    request would reach, for `auth.required_scope` and tests."""
    return Litestar(
        route_handlers=route_handlers(),
        dependencies={"appliance": Provide(provide_appliance, sync_to_thread=False)},
        guards=[closed_by_default],
        openapi_config=openapi_config(),
    )


def create_app(
    settings: Settings, appliance: Appliance | None = None, *, freeze_heap: bool = False
) -> Litestar:
    """An app over a ready appliance (tests), or one that loads it in the background.
    `freeze_heap`: once started, leave start-up's objects out of garbage collection (a
    serving process; see `state.freeze_heap`)."""
    # Before anything serves: a data dir of a newer release fails `serve` itself, and an
    # older one is upgraded (after a backup) before the first request can reach it.
    ensure_schema(settings.database_location)
    holder = (
        ApplianceHolder.of(appliance)
        if appliance is not None
        else ApplianceHolder(settings, freeze_heap=freeze_heap)
    )
    owns_appliance = appliance is None
    configure_logging(settings.log_format)
    # Secure by default: the operator's admin key, or one generated on a first start beyond
    # loopback; never a keyless appliance there unless explicitly allowed.
    ensure_admin_key(settings, is_public=not is_loopback(settings.host))
    keyring = KeyRing(settings.database_location)
    check_bind_address(settings, keyring)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        COLLECTOR.source = holder.peek
        holder.start()
        try:
            yield
        finally:
            if owns_appliance:
                holder.close()
            keyring.close()

    prometheus = PrometheusConfig(
        app_name="appliance",
        prefix="http",
        group_path=True,
        middleware_class=PrometheusHttpMiddleware,
    )
    app = Litestar(
        route_handlers=route_handlers(),
        # Scopes are the handlers' guards; one that declares none needs admin.
        guards=[closed_by_default],
        dependencies={"appliance": Provide(provide_appliance, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # In order: the request id is set first; metrics see every answer, those to errors
        # raised by the middleware after them included; the key is checked before its rate
        # limit counts.
        middleware=[
            request_id_middleware,
            prometheus.middleware,
            middleware_error_answers,
            auth_middleware(keyring),
            *rate_limit_middleware(settings),
        ],
        # Echoes X-Request-ID and logs every answer, errors raised in middleware included.
        before_send=[log_response, allow_header],
        # Bodies as strict as the schema: no 0 for false, no "2" for 2.
        before_request=strict_body,
        logging_config=litestar_logging_config(settings.log_format, settings.log_level),
        state=State({"holder": holder}),
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
    )
    complete_openapi(app)
    return app
