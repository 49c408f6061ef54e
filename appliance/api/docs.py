"""The API docs at /schema/swagger (and /schema): Swagger UI with its JavaScript, CSS and icon
served by the appliance itself from appliance/api/static/swagger-ui, so the page works with no
network. No other docs UI is mounted: Litestar's ReDoc, RapiDoc, Elements and Scalar pages all
load their scripts from a CDN."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.static_files import create_static_files_router

SWAGGER_UI_VERSION = "5.35.0"
ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"
# Under the OpenAPI router's path: /schema/assets/...
ASSETS_PATH = "/assets"
_ASSETS_ROUTE = "swagger-ui-assets"


class LocalSwaggerPlugin(OpenAPIRenderPlugin):
    """Swagger UI over the served openapi.json, every asset from ASSETS_DIR."""

    def __init__(self, path: str = "/swagger") -> None:
        super().__init__(path=path, favicon="", style="")

    def receive_router(self, router: Router) -> None:
        router.register(
            create_static_files_router(
                path=ASSETS_PATH, directories=[ASSETS_DIR], name=_ASSETS_ROUTE
            )
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        def asset(name: str) -> str:
            return html.escape(request.app.route_reverse(_ASSETS_ROUTE, file_path=f"/{name}"))

        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        config = {
            "url": self.get_openapi_json_route(request),
            "dom_id": "#swagger-ui",
            "deepLinking": True,
            # The default sends the schema's URL to an online validator for a badge.
            "validatorUrl": "none",
            "layout": "BaseLayout",
        }
        # Escaped so that no string in the options can end the inline script.
        options = json.dumps(config).replace("</", "<\\/")
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" type="image/png" href="{asset("favicon-32x32.png")}">
  <link rel="stylesheet" href="{asset("swagger-ui.css")}">
  <style>body {{ margin: 0; padding: 0 }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{asset("swagger-ui-bundle.js")}"></script>
  <script>
    const options = {options};
    options.presets = [SwaggerUIBundle.presets.apis];
    window.ui = SwaggerUIBundle(options);
  </script>
</body>
</html>
"""
        return page.encode()
