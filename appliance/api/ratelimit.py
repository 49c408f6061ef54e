"""Rate limits with Litestar's RateLimitMiddleware: per key, with the limit of the key's scope,
and per client address for requests that carry no key. Over the limit: 429; the error
handler adds Retry-After from the middleware's RateLimit-Reset."""

from __future__ import annotations

from typing import Any

from litestar.connection import Request
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address

from appliance.api.auth import PUBLIC_OPT, handler_scope
from appliance.config import Settings
from appliance.store.keys import ActiveKey, scope_allows


def tier_of(request: Request[Any, Any, Any]) -> str:
    """The scope of the request's key (set by the auth middleware), or "anonymous"."""
    user = request.scope.get("user")
    return user.scope if isinstance(user, ActiveKey) else "anonymous"


def identifier_of(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    if isinstance(user, ActiveKey):
        return f"key:{user.key_id}"
    return f"addr:{get_remote_address(request)}"


def permitted(request: Request[Any, Any, Any]) -> bool:
    """Whether the request's key may use the route: one its scope guard refuses (403) costs
    nothing of the key's budget, as when the scope was checked before the limiter."""
    user = request.scope.get("user")
    if not isinstance(user, ActiveKey):
        return True
    return scope_allows(user.scope, handler_scope(request.route_handler))


def rate_limit_middleware(settings: Settings) -> list[DefineMiddleware]:
    """One Litestar rate limiter per tier whose limit is not 0; each counts only its tier."""
    limits = {
        "read": settings.rate_limit_read,
        "write": settings.rate_limit_write,
        "admin": settings.rate_limit_admin,
        "anonymous": settings.rate_limit_anonymous,
    }
    middleware = []
    for tier, limit in limits.items():
        if limit <= 0:
            continue

        # Async: Litestar runs a sync handler in a worker thread, one hop per tier per request.
        async def applies(request: Request[Any, Any, Any], tier: str = tier) -> bool:
            return tier_of(request) == tier and permitted(request)

        config = RateLimitConfig(
            rate_limit=(settings.rate_limit_window, limit),
            exclude_opt_key=PUBLIC_OPT,
            identifier_for_request=identifier_of,
            check_throttle_handler=applies,
        )
        middleware.append(config.middleware)
    return middleware
