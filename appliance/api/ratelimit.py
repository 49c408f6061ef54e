"""Rate limits with Litestar's RateLimitMiddleware: per key, with the limit of the key's scope,
and per client address for requests that carry no key. Over the limit: 429; the error
handler adds Retry-After from the middleware's RateLimit-Reset."""

from __future__ import annotations

from time import time
from typing import Any, cast

from litestar.connection import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.stores.base import Store
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.api.auth import PUBLIC_OPT, handler_scope
from appliance.config import Settings
from appliance.store.keys import ActiveKey, scope_allows


def tier_of(scope: Scope) -> str:
    """The scope of the request's key (set by the auth middleware), or "anonymous"."""
    user = scope.get("user")
    return user.scope if isinstance(user, ActiveKey) else "anonymous"


def identifier_of(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    if isinstance(user, ActiveKey):
        return f"key:{user.key_id}"
    return f"addr:{get_remote_address(request)}"


# Async: Litestar runs a sync check handler in a worker thread, a hop per request.
async def permitted(request: Request[Any, Any, Any]) -> bool:
    """Whether the request counts: one its scope guard refuses (403) costs nothing of the
    key's budget, as when the scope was checked before the limiter."""
    user = request.scope.get("user")
    if not isinstance(user, ActiveKey):
        return True
    return scope_allows(user.scope, handler_scope(request.route_handler))


class CountingRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's limiter (its fixed window, identifiers, exclusions, headers and 429) with each
    window kept as a count in this process. Litestar's keeps the time of every request in the
    window as a JSON list in its store, read, copied and written back on each request: at the
    default 6,000 a minute that cost ~200 µs a request under the limiter's lock, the more the
    busier a client. It only ever uses the list's length."""

    # Windows of clients gone quiet are dropped when there are more than this many (at most
    # once a second: many live clients must not make every new one scan them all).
    PRUNE_ABOVE = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (requests, reset)
        self._next_prune = 0

    def _window(self, key: str) -> CacheObject:
        now = int(time())
        count, reset = self._windows.get(key, (0, 0))
        if reset <= now:
            count, reset = 0, now + DURATION_VALUES[self.unit]
        # `history` is only ever measured (len): a range of the count stands for the list.
        return CacheObject(history=cast(list[int], range(count)), reset=reset)

    def _count(self, key: str, window: CacheObject) -> None:
        count = len(window.history) + 1
        window.history = cast(list[int], range(count))
        now = int(time())
        if len(self._windows) >= self.PRUNE_ABOVE and now >= self._next_prune:
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
            self._next_prune = now + 1
        self._windows[key] = (count, window.reset)

    async def retrieve_cached_history(self, key: str, store: Store) -> CacheObject:
        return self._window(key)

    async def set_cached_history(self, key: str, cache_object: CacheObject, store: Store) -> None:
        self._count(key, cache_object)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Litestar's, without its lock and store: reading and counting a window await
        nothing, so no other request on the loop runs between them."""
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
        if await self.should_check_request(request):
            key = self.cache_key_from_request(request)
            window = self._window(key)
            with_headers = self.config.set_rate_limit_headers
            if len(window.history) >= self.max_requests:
                headers = self.create_response_headers(window) if with_headers else None
                raise TooManyRequestsException(headers=headers)
            self._count(key, window)
            if with_headers:
                send = self.create_send_wrapper(send, window)
        await self.app(scope, receive, send)

    def create_send_wrapper(self, send: Send, cache_object: CacheObject) -> Send:
        """The limit's headers appended to the answer's (Litestar's sets each through
        `MutableScopeHeaders`, a scan of every header per header: ~20 µs a request). No
        handler sets them, so appending cannot duplicate one."""

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    *(
                        (name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in self.create_response_headers(cache_object).items()
                    ),
                ]
            await send(message)

        return send_wrapper


class TieredRateLimits:
    """One ASGI layer in front of one limiter per tier: a request reaches only its own tier's
    limiter (or none, for a tier whose limit is 0). Four limiters stacked, each asking whether
    the request is its tier's, cost ~50 µs a request in middleware layers alone."""

    def __init__(self, app: ASGIApp, configs: dict[str, RateLimitConfig]) -> None:
        self.app = app
        self.limiters: dict[str, ASGIApp] = {
            tier: CountingRateLimitMiddleware(app, config) for tier, config in configs.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiters.get(tier_of(scope), self.app)
        await limiter(scope, receive, send)


def rate_limit_middleware(settings: Settings) -> list[DefineMiddleware]:
    """Litestar's rate limiter, one per tier whose limit is not 0, each counting only its
    tier, behind one layer; no layer at all when every limit is 0."""
    limits = {
        "read": settings.rate_limit_read,
        "write": settings.rate_limit_write,
        "admin": settings.rate_limit_admin,
        "anonymous": settings.rate_limit_anonymous,
    }
    configs = {
        tier: RateLimitConfig(
            rate_limit=(settings.rate_limit_window, limit),
            exclude_opt_key=PUBLIC_OPT,
            identifier_for_request=identifier_of,
            check_throttle_handler=permitted,
        )
        for tier, limit in limits.items()
        if limit > 0
    }
    return [DefineMiddleware(TieredRateLimits, configs=configs)] if configs else []
