"""The API docs work offline: /schema/swagger references only same-origin URLs, each of which
the appliance serves itself, and no docs page that would load a CDN is mounted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.service import Appliance
from appliance.store import keys as key_store

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _References(HTMLParser):
    """Every URL an element loads or links to, and the inline scripts' text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href", "srcset", "data", "action", "poster"):
            if found.get(name):
                self.urls.append(str(found[name]))
        self._in_script = tag == "script" and not found.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def _same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection(appliance.settings.default_collection)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def _page(client: TestClient[Any], path: str = "/schema/swagger") -> _References:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    references = _References()
    references.feed(response.text)
    return references


def test_swagger_page_loads_only_same_origin_assets(client: TestClient[Any]) -> None:
    page = _page(client)
    script_urls = re.findall(r"https?://[^\s\"'<>)]+", "".join(page.inline_scripts))
    assert script_urls == [], f"the inline script names other hosts: {script_urls}"
    config_urls = [
        value
        for script in page.inline_scripts
        for value in re.findall(r'"(?:url|validatorUrl|oauth2RedirectUrl)":\s*"([^"]*)"', script)
        if value != "none"
    ]
    assert config_urls == ["/schema/openapi.json"]
    assert page.urls, "the page loads no assets at all"
    assert all(_same_origin(url) for url in page.urls), page.urls
    assets = set(page.urls)
    assert {u.rsplit(".", 1)[-1] for u in assets} >= {"js", "css", "png"}
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 100, url
        expected = CONTENT_TYPES["." + url.rsplit(".", 1)[-1]]
        assert response.headers["content-type"].startswith(expected), (url, response.headers)
        if url.endswith(".css"):
            # A stylesheet may load fonts or images: only inline data, never another host.
            for target in re.findall(r"url\(\s*['\"]?([^'\")]+)", response.text):
                assert target.startswith("data:") or _same_origin(target), target
    # The schema the page asks for is served, and is OpenAPI 3.1 (Swagger UI 5 renders it).
    schema = client.get(config_urls[0])
    assert schema.status_code == 200
    assert json.loads(schema.content)["openapi"].startswith("3.1")
    assert "/search" in schema.json()["paths"]


def test_schema_root_is_the_same_offline_page(client: TestClient[Any]) -> None:
    assert _page(client, "/schema").urls == _page(client).urls


@pytest.mark.parametrize("path", ["/schema/redoc", "/schema/elements", "/schema/rapidoc"])
def test_no_cdn_docs_page_is_mounted(client: TestClient[Any], path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "http" not in response.text


def test_assets_need_the_same_key_as_the_page(appliance: Appliance) -> None:
    with appliance.db.write() as session:
        _, read_key = key_store.create_key(session, "read", "docs reader")
    page, asset = "/schema/swagger", "/schema/assets/swagger-ui-bundle.js"
    with TestClient(create_app(appliance.settings, appliance)) as client:
        assert client.get(page).status_code == 401
        assert client.get(asset).status_code == 401
        headers = {"Authorization": f"Bearer {read_key}"}
        assert client.get(page, headers=headers).status_code == 200
        assert client.get(asset, headers=headers).status_code == 200
