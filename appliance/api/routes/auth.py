"""Who the caller is: the scope of the request's key, so a client (the web console) can show
only the controls that key may use. The server still checks every request's scope."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from appliance.api.auth import requires_scope, scope_of
from appliance.api.schemas import WhoAmI


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    guards = [requires_scope("read")]

    @get("/whoami")
    async def whoami(self, request: Request[Any, Any, Any]) -> WhoAmI:
        """The scope of the key sent (read, write or admin). An appliance with no keys answers
        `keys_required: false` and `scope: null`: every request is allowed there."""
        scope = scope_of(request.scope.get("user"))
        return WhoAmI(scope=scope, keys_required=scope is not None)
