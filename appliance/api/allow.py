"""The `Allow` header of OPTIONS answers, listing every method of the path.

Litestar answers OPTIONS itself, but when one path's handlers are registered in more than one
group (a controller's route beside another's), its answer lists only the first group's
methods. This `before_send` hook sets the header from the app's routes instead: the methods
the API documents for the path (a handler kept out of the schema, such as the one serving the
document named "delete" beside the bulk delete, answers but is not advertised).
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

_METHODS_KEY = "_allow_methods_by_path"


def _methods_by_path(app: Any) -> dict[str, str]:
    cached: dict[str, str] | None = getattr(app.state, _METHODS_KEY, None)
    if cached is None:
        found: dict[str, set[str]] = {}
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                methods = found.setdefault(route.path_format, set())
                for handler in route.route_handlers:
                    if handler.include_in_schema or "OPTIONS" in handler.http_methods:
                        methods.update(handler.http_methods)
        cached = {path: ", ".join(sorted(methods)) for path, methods in found.items()}
        setattr(app.state, _METHODS_KEY, cached)
    return cached


async def allow_header(message: Message, scope: Scope) -> None:
    """An app-level `before_send` hook: OPTIONS and 405 answers name every method."""
    if message["type"] != "http.response.start" or scope.get("type") != "http":
        return
    status = message["status"]
    if not (scope.get("method") == "OPTIONS" and status < 300) and status != 405:
        return
    template = scope.get("path_template")
    if not template:
        return
    methods = _methods_by_path(scope["app"]).get(template)
    if methods:
        MutableScopeHeaders.from_message(message)["Allow"] = methods
