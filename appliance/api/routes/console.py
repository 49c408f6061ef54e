"""The web console: a static page and its plain JavaScript and CSS, shipped in the package.
The page holds no data; it calls the API with the user's key, like any other client."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from appliance.api.auth import PUBLIC

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

# Everything the page loads comes from the appliance itself: no CDN, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load, so an upgraded appliance never runs yesterday's script.
    "Cache-Control": "no-cache",
}


@get("/", include_in_schema=False, sync_to_thread=False, opt=PUBLIC)
def console_page() -> Response[bytes]:
    """The console's single page (search, collections, jobs, status)."""
    return Response(
        (CONSOLE_DIR / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers=SECURITY_HEADERS,
    )


def console_assets() -> Router:
    return create_static_files_router(
        path="/console",
        directories=[CONSOLE_DIR],
        name="console",
        include_in_schema=False,
        cache_control=CacheControlHeader(no_cache=True),
        opt=PUBLIC,
    )
