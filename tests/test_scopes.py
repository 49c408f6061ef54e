"""Scopes are named guards on the API's controllers and handlers: every route declares the scope
it needs, or is explicitly public, and one that declares nothing needs admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get, post
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient

from appliance.api.app import create_app, route_table
from appliance.api.auth import (
    PUBLIC_OPT,
    KeyRing,
    RequiresScope,
    auth_middleware,
    closed_by_default,
    declared_scope,
    requires_scope,
)
from appliance.api.errors import EXCEPTION_HANDLERS
from appliance.service import Appliance
from appliance.store import keys as key_store
from appliance.store.database import Database

# What each route needs: the contract test_auth.py checks by requests, here in one table.
SCOPES = {
    ("GET", "/collections"): "read",
    ("POST", "/collections"): "admin",
    ("GET", "/collections/{name:str}"): "read",
    ("DELETE", "/collections/{name:str}"): "admin",
    ("PUT", "/collections/{name:str}/index"): "admin",
    ("PUT", "/collections/{name:str}/documents"): "write",
    ("GET", "/collections/{name:str}/documents/{doc_id:str}"): "read",
    ("DELETE", "/collections/{name:str}/documents/{doc_id:str}"): "write",
    ("GET", "/collections/{name:str}/documents"): "read",
    # Search defaults change like the index does: admin.
    ("PATCH", "/collections/{name:str}"): "admin",
    ("POST", "/collections/{name:str}/documents/delete"): "write",
    # A document whose id is "delete" stays reachable beside the bulk delete route.
    ("GET", "/collections/{name:str}/documents/delete"): "read",
    ("DELETE", "/collections/{name:str}/documents/delete"): "write",
    ("GET", "/jobs"): "read",
    ("GET", "/jobs/{job_id:str}"): "read",
    ("POST", "/search"): "read",
    ("POST", "/collections/{name:str}/search"): "read",
    ("POST", "/collections/{name:str}/feedback"): "read",
    ("POST", "/collections/{name:str}/warm"): "admin",
    ("GET", "/collections/{name:str}/versions"): "read",
    ("POST", "/collections/{name:str}/reindex"): "admin",
    ("DELETE", "/collections/{name:str}/versions/{model:str}"): "admin",
    ("POST", "/v1/embeddings"): "read",
    ("GET", "/v1/models"): "read",
    ("GET", "/v1/models/{model:str}"): "read",
    ("GET", "/metrics"): "read",
    ("GET", "/auth/whoami"): "read",
    ("GET", "/schema"): "read",
    ("GET", "/schema/openapi.json"): "read",
    ("GET", "/schema/swagger"): "read",
    ("GET", "/schema/{path:str}"): "read",
    ("GET", "/schema/assets/{file_path:path}"): "read",
    ("HEAD", "/schema/assets/{file_path:path}"): "read",
}
PUBLIC_ROUTES = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/"),
    ("GET", "/console/{file_path:path}"),
    ("HEAD", "/console/{file_path:path}"),
}


def _handlers(app: Litestar) -> list[tuple[str, str, BaseRouteHandler]]:
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(getattr(handler, "http_methods", {"WEBSOCKET"})):
                found.append((method, route.path, handler))
    return found


def _generated_options(method: str, handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer (the Allow header) on every path: the authentication
    middleware lets OPTIONS through (CORS preflights carry no key), as before guards."""
    return method == "OPTIONS" and handler.handler_name == "options_handler"


def test_every_route_declares_a_scope_guard_or_is_public() -> None:
    undeclared = []
    for method, path, handler in _handlers(route_table()):
        if _generated_options(method, handler):
            continue
        public = bool(handler.opt.get(PUBLIC_OPT))
        scope = declared_scope(handler)
        if public == (scope is not None):
            undeclared.append(f"{method} {path}: public={public}, scope={scope}")
    assert undeclared == []


def test_each_route_needs_the_scope_it_always_needed() -> None:
    table = {}
    public = set()
    for method, path, handler in _handlers(route_table()):
        if _generated_options(method, handler):
            continue
        if handler.opt.get(PUBLIC_OPT):
            public.add((method, path))
        else:
            table[(method, path)] = declared_scope(handler)
    assert table == SCOPES
    assert public == PUBLIC_ROUTES


def test_the_served_app_has_the_same_routes_as_the_route_table(appliance: Appliance) -> None:
    served = {
        (method, path) for method, path, _ in _handlers(create_app(appliance.settings, appliance))
    }
    assert served == {(method, path) for method, path, _ in _handlers(route_table())}


def test_guards_are_named_and_shared() -> None:
    guard = requires_scope("write")
    assert isinstance(guard, RequiresScope) and guard.__name__ == "requires_write"
    assert requires_scope("write") is guard
    with pytest.raises(ValueError, match="not one of"):
        requires_scope("root")


@get("/unguarded", sync_to_thread=False)
def unguarded() -> dict[str, str]:
    return {"ok": "yes"}


@post("/written", sync_to_thread=False, guards=[requires_scope("write")])
def written() -> dict[str, str]:
    return {"ok": "yes"}


def test_a_route_that_declares_no_scope_needs_admin(tmp_path: Path) -> None:
    db = Database(tmp_path / "keys.sqlite3")
    with db.write() as session:
        read = key_store.create_key(session, "read")[1]
        write = key_store.create_key(session, "write")[1]
        admin = key_store.create_key(session, "admin")[1]
    db.close()
    keyring = KeyRing(tmp_path / "keys.sqlite3")
    app = Litestar(
        route_handlers=[unguarded, written],
        guards=[closed_by_default],
        middleware=[auth_middleware(keyring)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )

    def status(key: str, method: str, path: str) -> Any:
        response = client.request(method, path, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.json()

    with TestClient(app) as client:
        assert status(admin, "GET", "/unguarded")[0] == 200
        code, body = status(write, "GET", "/unguarded")
        assert code == 403 and body["error"] == "forbidden"
        assert body["detail"] == (
            "this key has scope 'write'; GET /unguarded needs a key with scope 'admin' or higher"
        )
        assert status(write, "POST", "/written")[0] == 201
        assert status(read, "POST", "/written")[0] == 403
    keyring.close()
