"""What Litestar's generated OpenAPI document leaves out, added once: the error answers every
route can give (`{"error", "detail"}`, not Litestar's default 400 shape), the bearer-key scheme,
and `additionalProperties: false` on request types that refuse unknown fields. With it, a
client generated from the schema (or schemathesis) expects exactly what the server sends."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin

from appliance.api import schemas

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "stable machine-readable code"},
        "detail": {"type": "string", "description": "what went wrong and what to fix"},
    },
    "title": "ErrorBody",
}

# Every status an operation may answer with besides its success, and why.
ERROR_STATUSES = {
    "400": "invalid request: the detail says which field and what to fix",
    "401": "an API key is required (Authorization: Bearer KEY) or the key is unknown",
    "403": "the key's scope does not allow this operation",
    "404": "unknown collection or document",
    "409": "the name is taken",
    "413": "the request body is larger than the server accepts",
    "429": "rate limit reached; retry after the Retry-After header's seconds",
    "503": "the appliance is still loading its model and indexes, or is overloaded (too many "
    "queries waiting: retry after the Retry-After header's seconds)",
    "507": "the disk is full; nothing was written",
}
_OPEN_PATHS = {"/health", "/ready"}
# Operations that answer 202 and a job past a size threshold.
_JOB_OPERATIONS = {
    "CollectionsNameDocumentsUpsertDocuments",
    "CollectionsNameDocumentsDeleteDeleteDocuments",
}


def _strict_types() -> list[str]:
    return [
        name
        for name, kind in inspect.getmembers(schemas, inspect.isclass)
        if issubclass(kind, msgspec.Struct) and kind.__struct_config__.forbid_unknown_fields
    ]


def complete_openapi(app: Litestar) -> None:
    """Amend the schema document the app serves at /schema/openapi.json, in place."""
    document: dict[str, Any] = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    components = document.setdefault("components", {})
    found = components.setdefault("schemas", {})
    found["ErrorBody"] = ERROR_SCHEMA
    # Request types as msgspec itself describes them: Litestar drops the constraints of a
    # union's members (`Annotated[float, Meta(ge=0)] | None` loses its minimum), so the schema
    # would promise values the server refuses.
    strict = [getattr(schemas, name) for name in _strict_types()]
    _, exact = msgspec.json.schema_components(strict, ref_template="#/components/schemas/{name}")
    for name, schema in exact.items():
        if name in found:
            found[name] = schema
    for name in _strict_types():
        if name in found:
            found[name]["additionalProperties"] = False
    if "DeleteDocuments" in found:
        found["DeleteDocuments"]["oneOf"] = [{"required": ["filter"]}, {"required": ["ids"]}]
    for name in ("HighlightOut",):
        if name in found:
            pair = {"type": "array", "items": {"type": "integer", "minimum": 0}}
            found[name]["properties"]["spans"]["items"] = {**pair, "minItems": 2, "maxItems": 2}
    if "EmbeddingsRequest" in found:
        found["EmbeddingsRequest"]["properties"]["input"] = schemas.EMBEDDINGS_INPUT_SCHEMA
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key from `appliance keys create`; needed once any key exists",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if path in _OPEN_PATHS:
                if path == "/ready":
                    ready = {"$ref": "#/components/schemas/Readiness"}
                    responses["503"] = {
                        "description": "still loading, or start-up failed",
                        "content": {"application/json": {"schema": ready}},
                    }
                continue
            if path == "/metrics":
                text = {"text/plain": {"schema": {"type": "string"}}}
                responses["200"] = {"description": "Prometheus text format", "content": text}
            operation["security"] = [{"apiKey": []}, {}]
            if operation.get("operationId") in _JOB_OPERATIONS:
                job = {"$ref": "#/components/schemas/JobOut"}
                responses["202"] = {
                    "description": "accepted as a background job: follow it at GET /jobs/{id}",
                    "content": {"application/json": {"schema": job}},
                }
            for status, description in ERROR_STATUSES.items():
                responses[status] = {"description": description, "content": error}
