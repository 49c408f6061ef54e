"""API-key authentication, scope guards, and the rule for which addresses may run without keys.

Once any key exists every request needs one (`Authorization: Bearer KEY`), on any address;
the handlers declared `PUBLIC` stay open: `/health`, `/ready` and the web console's static page
and assets (the page asks for a key and sends it with every API call; all its data comes from
the API). Which scope a route needs is a named guard on its controller or handler,
`guards=[requires_scope("write")]`; several guards on one handler (its controller's and its
own) mean the highest of their scopes, and a handler that declares none needs admin, so a
route added later is closed by default rather than open. With no key at all the appliance is
open, which it allows only on a loopback address unless `allow_open_network` says otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import (
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp

from appliance.config import Settings
from appliance.errors import InvalidConfig
from appliance.store import keys as key_store
from appliance.store.database import Database
from appliance.store.dialect import StoreLocation
from appliance.store.keys import ActiveKey

log = logging.getLogger(__name__)

# Probes must answer without a key (an orchestrator has none); the console's page must load
# before its user has typed one. The page holds no data: it calls the API with the user's key.
# Litestar's authentication middleware (and our rate limits) skip a handler with this opt.
PUBLIC_OPT = "exclude_from_auth"
PUBLIC = {PUBLIC_OPT: True}
SCOPES = ("read", "write", "admin")


class RequiresScope:
    """A guard: the request's key must have `scope` or a higher one. Answers 403 naming the
    scope the handler needs (the highest its guards declare)."""

    def __init__(self, scope: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
        self.scope = scope
        self.__name__ = f"requires_{scope}"

    def __repr__(self) -> str:
        return f"requires_scope({self.scope!r})"

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        authorize(connection, handler)


def requires_scope(scope: str) -> RequiresScope:
    """The guard for routes that need a key with `scope` (read < write < admin)."""
    if scope not in _GUARDS:
        raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
    return _GUARDS[scope]


_GUARDS = {scope: RequiresScope(scope) for scope in SCOPES}


def declared_scope(handler: BaseRouteHandler) -> str | None:
    """The highest scope the handler's guards (its own and its owners') declare, or None."""
    declared = [
        guard.scope for guard in handler.resolve_guards() if isinstance(guard, RequiresScope)
    ]
    return max(declared, key=SCOPES.index) if declared else None


def handler_scope(handler: BaseRouteHandler) -> str:
    """The scope a request to `handler` needs: the declared one, else admin."""
    return declared_scope(handler) or "admin"


def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Refuse (403) a key whose scope is below the handler's. A request without a key got
    past authentication only where no key exists (the open appliance): allowed."""
    key = connection.scope.get("user")
    if not isinstance(key, ActiveKey):
        return
    needed = handler_scope(handler)
    if not key_store.scope_allows(key.scope, needed):
        method = str(connection.scope.get("method", "GET"))
        raise PermissionDeniedException(
            f"this key has scope {key.scope!r}; {method} {connection.scope['path']} "
            f"needs a key with scope {needed!r} or higher"
        )


async def closed_by_default(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app's guard: a handler with no scope guard of its own needs admin."""
    if declared_scope(handler) is None:
        authorize(connection, handler)


def required_scope(method: str, path: str) -> str:
    """The scope a request needs, as the guards of the route that answers it declare (for
    tools and tests: the guards themselves check requests). A request no route answers, or
    a route that declares no scope, needs admin."""
    from appliance.api.app import route_table

    try:
        handler = route_table().asgi_router.handle_routing(path=path, method=method)[1]
    except (NotFoundException, MethodNotAllowedException):
        return "admin"
    return handler_scope(handler)


class KeyRing:
    """The active keys, re-read from the store whenever anything may have been committed since
    the last read (the store's data_version), so a key created or revoked by the CLI beside a
    running server, or by another replica, counts at its next request. On SQLite an unchanged
    store costs no query at all; on PostgreSQL every request reads the keys (one query)."""

    def __init__(self, database_location: StoreLocation) -> None:
        self.database_location = database_location
        self._db: Database | None = None
        self._lock = threading.Lock()
        self._keys: dict[str, ActiveKey] = {}
        self._read_at_version = -1

    def _database(self) -> Database:
        with self._lock:
            if self._db is None:
                self._db = Database(self.database_location)
            return self._db

    def active(self) -> dict[str, ActiveKey]:
        db = self._database()
        version = db.data_version()
        if version != self._read_at_version:
            with db.read() as session:
                keys = key_store.active_keys(session)
            # The version taken before the read: a commit after it is seen next time.
            self._keys, self._read_at_version = keys, version
        return self._keys

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, keyring: KeyRing, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.keyring = keyring

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
        keys = self.keyring.active()
        if not keys:
            return AuthenticationResult(user=None, auth=None)
        challenge = {"WWW-Authenticate": 'Bearer realm="appliance"'}
        header = connection.headers.get("authorization")
        if not header:
            raise NotAuthorizedException(
                "this appliance requires an API key: send 'Authorization: Bearer KEY' "
                "(an admin creates keys with `appliance keys create --scope read`)",
                headers=challenge,
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                "the Authorization header must read 'Bearer KEY'", headers=challenge
            )
        key = key_store.match_key(keys, token.strip())
        if key is None:
            raise NotAuthorizedException(
                "the API key is unknown or revoked; ask an admin for a valid key",
                headers=challenge,
            )
        return AuthenticationResult(user=key, auth=key.key_id)


def scope_of(user: object) -> str | None:
    """The scope of the key the auth middleware accepted, or None when the request carried
    none, which it only may while the store holds no key (the open appliance)."""
    return user.scope if isinstance(user, ActiveKey) else None


def auth_middleware(keyring: KeyRing) -> DefineMiddleware:
    return DefineMiddleware(ApiKeyMiddleware, keyring=keyring, exclude_from_auth_key=PUBLIC_OPT)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to anything: treat it as public.
        return False


def check_bind_address(settings: Settings, keyring: KeyRing) -> None:
    """Refuse to serve an open (keyless) appliance beyond loopback unless told to."""
    if is_loopback(settings.host) or keyring.active():
        return
    if not settings.allow_open_network:
        raise InvalidConfig(
            f"refusing to serve on {settings.host} without API keys: anyone who can reach it "
            "could read and change every collection, and every key this store had is revoked. "
            "Create a key first "
            "(`appliance keys create --scope admin`), bind to 127.0.0.1, or pass "
            "--allow-open-network to accept the risk"
        )
    log.warning(
        "serving on %s with no API keys (allow_open_network): every request is allowed",
        settings.host,
    )
