"""The web console's page and assets, the scope endpoint it asks, and the job list it shows,
through the HTTP API (the browser tests are in tests/e2e/)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.api.routes.console import CONSOLE_DIR
from appliance.service import Appliance
from appliance.store import keys as key_store
from tests.conftest import ANIMALS

DOCS = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection("default")
    appliance.jobs.start()
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client
    appliance.jobs.stop()


def _new_key(appliance: Appliance, scope: str) -> str:
    with appliance.db.write() as session:
        return key_store.create_key(session, scope)[1]


def test_the_page_at_root_loads_only_its_own_assets(client: TestClient[Any]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<input id="query" name="query" type="search"' in page.text
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert sorted(assets) == ["/console/app.css", "/console/app.js", "/console/favicon.svg"]
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.content == (CONSOLE_DIR / asset.removeprefix("/console/")).read_bytes()
    assert (
        client.get("/console/app.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    # Nothing from another origin, and no inline script the CSP would have to allow.
    for name in ("index.html", "app.js", "app.css"):
        # The SVG namespace is a name, not something fetched.
        text = (CONSOLE_DIR / name).read_text().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
    assert "<script>" not in page.text and "innerHTML" not in (CONSOLE_DIR / "app.js").read_text()


def test_the_page_loads_without_a_key_but_the_api_still_needs_one(
    client: TestClient[Any], appliance: Appliance
) -> None:
    read = _new_key(appliance, "read")
    assert client.get("/").status_code == 200
    assert client.get("/console/app.js").status_code == 200
    assert client.get("/console/missing.js").status_code == 404
    assert client.get("/collections").status_code == 401
    assert client.get("/auth/whoami").status_code == 401
    assert client.get("/jobs").status_code == 401
    authorized = {"Authorization": f"Bearer {read}"}
    assert client.get("/collections", headers=authorized).status_code == 200


def test_whoami_answers_the_scope_of_the_key(client: TestClient[Any], appliance: Appliance) -> None:
    assert client.get("/auth/whoami").json() == {"scope": None, "keys_required": False}
    keys = {scope: _new_key(appliance, scope) for scope in ("read", "write", "admin")}
    for scope, key in keys.items():
        answer = client.get("/auth/whoami", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert answer.json() == {"scope": scope, "keys_required": True}
    wrong = client.get("/auth/whoami", headers={"Authorization": "Bearer lsa_no_such"})
    assert wrong.status_code == 401


def test_jobs_lists_the_recent_jobs_newest_first(client: TestClient[Any]) -> None:
    assert client.get("/jobs").json() == {"jobs": []}
    ids = []
    for batch in (DOCS[:2], DOCS[2:]):
        response = client.put(
            "/collections/default/documents?async=true", json={"documents": batch}
        )
        assert response.status_code == 202
        ids.append(response.json()["id"])
        time.sleep(0.01)  # distinct created_at
    deadline = time.monotonic() + 60
    while True:
        jobs = client.get("/jobs").json()["jobs"]
        if all(job["state"] == "succeeded" for job in jobs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [job["id"] for job in jobs] == ids[::-1]
    assert [(job["done"], job["total"]) for job in jobs] == [(4, 4), (2, 2)]
    assert all(job["state"] == "succeeded" and job["collection"] == "default" for job in jobs)
    assert [job["id"] for job in client.get("/jobs?limit=1").json()["jobs"]] == ids[-1:]
    assert client.get("/jobs?limit=0").status_code == 400
