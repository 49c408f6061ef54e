"""API keys, scopes, the loopback-only open mode, and rate limits, through the HTTP API."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import select

from appliance.api.app import create_app
from appliance.api.auth import required_scope
from appliance.cli import main
from appliance.config import Settings
from appliance.errors import InvalidConfig
from appliance.service import Appliance
from appliance.store import keys as key_store
from appliance.store.migration import target_metadata

DOC = {"documents": [{"id": "a", "text": "a cat sleeps on the windowsill"}]}


def _new_key(appliance: Appliance, scope: str) -> str:
    with appliance.db.write() as session:
        return key_store.create_key(session, scope)[1]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection("default")
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def test_without_keys_loopback_is_open(client: TestClient[Any]) -> None:
    assert client.put("/collections/default/documents", json=DOC).status_code == 200
    assert client.post("/search", json={"query": "cat"}).status_code == 200
    assert client.post("/collections", json={"name": "more"}).status_code == 201


def test_once_a_key_exists_every_request_needs_one(
    client: TestClient[Any], appliance: Appliance
) -> None:
    _new_key(appliance, "read")
    for response in (
        client.post("/search", json={"query": "cat"}),
        client.get("/collections"),
        client.get("/metrics"),
        client.get("/schema/openapi.json"),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert "Bearer" in response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    for header in ("Bearer lsa_nope_nope", "Basic dXNlcjpwYXNz", "Bearer ", "lsa_x_y"):
        response = client.get("/collections", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_scopes_read_write_admin(client: TestClient[Any], appliance: Appliance) -> None:
    read, write, admin = (_new_key(appliance, s) for s in ("read", "write", "admin"))

    def status(key: str, method: str, path: str, body: Any = None) -> int:
        return client.request(method, path, json=body, headers=_bearer(key)).status_code

    # read: GET and search only.
    assert status(read, "GET", "/collections") == 200
    assert status(read, "POST", "/search", {"query": "cat"}) == 200
    assert status(read, "POST", "/collections/default/search", {"query": "cat"}) == 200
    forbidden = client.put("/collections/default/documents", json=DOC, headers=_bearer(read))
    assert forbidden.status_code == 403
    assert "needs a key with scope 'write'" in forbidden.json()["detail"]
    # write: documents, not collections.
    assert status(write, "PUT", "/collections/default/documents", DOC) == 200
    assert status(write, "GET", "/collections/default/documents/a") == 200
    assert status(write, "POST", "/collections", {"name": "pets"}) == 403
    assert status(write, "DELETE", "/collections/default/documents/a") == 200
    # admin: everything.
    assert status(admin, "POST", "/collections", {"name": "pets"}) == 201
    assert status(admin, "PUT", "/collections/pets/documents", DOC) == 200
    assert status(admin, "DELETE", "/collections/pets") == 204
    assert status(read, "DELETE", "/collections/default") == 403


def test_revoked_key_stops_working_at_once(client: TestClient[Any], appliance: Appliance) -> None:
    key = _new_key(appliance, "admin")
    _new_key(appliance, "read")  # another key keeps the appliance closed after the revoke
    assert client.get("/collections", headers=_bearer(key)).status_code == 200
    with appliance.db.write() as session:
        assert key_store.revoke_key(session, key_store.key_id_of(key))
    assert client.get("/collections", headers=_bearer(key)).status_code == 401


def _dump(appliance: Appliance) -> str:
    """Every row of every table, as text."""
    if appliance.db.path is not None:
        raw = sqlite3.connect(appliance.db.path)
        dump = "\n".join(raw.iterdump())
        raw.close()
        return dump
    with appliance.db.read() as session:
        return "\n".join(
            repr(session.execute(select(table)).all()) for table in target_metadata().sorted_tables
        )


def test_keys_are_stored_only_as_hashes(appliance: Appliance) -> None:
    key = _new_key(appliance, "write")
    dump = _dump(appliance)
    assert key not in dump
    assert key.split("_", 2)[2] not in dump
    assert hashlib.sha256(key.encode()).hexdigest() in dump


def test_cli_keys_create_list_revoke(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--scope", "write", "--data-dir", data])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("lsa_") and "not shown again" in created.stderr
    key_id = key_store.key_id_of(key)
    listed = runner.invoke(main, ["keys", "list", "--data-dir", data]).stdout
    assert f"{key_id}\twrite" in listed and "active" in listed and key not in listed
    revoked = runner.invoke(main, ["keys", "revoke", str(key_id), "--data-dir", data])
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.stdout
    assert "active" not in runner.invoke(main, ["keys", "list", "--data-dir", data]).stdout
    again = runner.invoke(main, ["keys", "revoke", str(key_id), "--data-dir", data])
    assert again.exit_code == 2 and "no active key" in again.stderr
    bad = runner.invoke(main, ["keys", "create", "--scope", "root", "--data-dir", data])
    assert bad.exit_code == 2


def test_open_appliance_refuses_a_public_address_once_every_key_is_revoked(
    open_appliance: Callable[..., Appliance], caplog: pytest.LogCaptureFixture
) -> None:
    appliance = open_appliance(host="0.0.0.0")
    key = _new_key(appliance, "admin")
    with appliance.db.write() as session:
        key_store.revoke_key(session, key_store.key_id_of(key))
    with pytest.raises(InvalidConfig, match="without API keys"):
        create_app(appliance.settings)
    with caplog.at_level(logging.WARNING):
        create_app(open_appliance(host="0.0.0.0", allow_open_network=True).settings)
    assert "no API keys" in caplog.text


def test_loopback_without_keys_stays_open(settings_for: Callable[..., Settings]) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        settings = settings_for(host=host)
        create_app(settings)
        assert not (settings.data_path / "admin.key").exists()


def test_public_address_is_allowed_once_a_key_exists(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance(host="0.0.0.0")
    _new_key(appliance, "admin")
    create_app(appliance.settings)
    assert not (appliance.settings.data_path / "admin.key").exists()


def test_serve_refuses_a_public_address_once_every_key_is_revoked(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    key = runner.invoke(main, ["keys", "create", "--scope", "read", "--data-dir", data]).stdout
    runner.invoke(main, ["keys", "revoke", key_store.key_id_of(key.strip()), "--data-dir", data])
    result = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--data-dir", data])
    assert result.exit_code == 2 and "refusing to serve on 0.0.0.0" in result.stderr


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/collections", "read"),
        ("GET", "/metrics", "read"),
        ("POST", "/search", "read"),
        ("POST", "/collections/x/search", "read"),
        ("PUT", "/collections/x/documents", "write"),
        ("DELETE", "/collections/x/documents/y", "write"),
        ("POST", "/collections", "admin"),
        ("DELETE", "/collections/x", "admin"),
        ("POST", "/some/route/added/later", "admin"),
    ],
)
def test_required_scope(method: str, path: str, scope: str) -> None:
    assert required_scope(method, path) == scope


def test_rate_limit_per_key_by_scope_gives_429_with_retry_after(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance(rate_limit_read=3, rate_limit_write=1)
    appliance.ensure_collection("default")
    read, other_read, write = (_new_key(appliance, s) for s in ("read", "read", "write"))
    with TestClient(create_app(appliance.settings, appliance)) as client:
        answers = [client.get("/collections", headers=_bearer(read)) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200] * 3
        # The IETF draft's headers on every counted answer.
        assert [answer.headers["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0"]
        assert answers[0].headers["RateLimit-Limit"] == "3"
        assert answers[0].headers["RateLimit-Policy"] == "3; w=60"
        assert 1 <= int(answers[0].headers["RateLimit-Reset"]) <= 60
        limited = client.get("/collections", headers=_bearer(read))
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Each key has its own budget, sized by its scope.
        assert client.get("/collections", headers=_bearer(other_read)).status_code == 200
        put = client.put("/collections/default/documents", json=DOC, headers=_bearer(write))
        assert put.status_code == 200
        put = client.put("/collections/default/documents", json=DOC, headers=_bearer(write))
        assert put.status_code == 429
        # Probes are never limited.
        assert all(client.get("/health").status_code == 200 for _ in range(5))


def test_a_tier_with_limit_0_is_unlimited_beside_limited_tiers(
    open_appliance: Callable[..., Appliance],
) -> None:
    """Each request reaches only its key's tier's limiter: a read route called with a write
    key counts against the write tier, and the read tier (limit 0) has none."""
    appliance = open_appliance(rate_limit_read=0, rate_limit_write=2)
    appliance.ensure_collection("default")
    read, write = _new_key(appliance, "read"), _new_key(appliance, "write")
    with TestClient(create_app(appliance.settings, appliance)) as client:
        assert all(
            client.get("/collections", headers=_bearer(read)).status_code == 200 for _ in range(8)
        )
        statuses = [client.get("/collections", headers=_bearer(write)).status_code for _ in "abc"]
        assert statuses == [200, 200, 429]


def test_rate_limit_per_address_without_keys(open_appliance: Callable[..., Appliance]) -> None:
    appliance = open_appliance(rate_limit_anonymous=2)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        assert [client.get("/collections").status_code for _ in range(3)] == [200, 200, 429]


def test_rate_limit_tiers_are_checked_without_a_worker_thread() -> None:
    """A sync check handler costs a thread hop per tier per request (4 per request, about
    1 ms on 2 cores); the handlers must be coroutines."""
    import inspect
    from pathlib import Path

    from appliance.api.ratelimit import rate_limit_middleware
    from appliance.config import load_settings

    (layer,) = rate_limit_middleware(load_settings(Path("/nonexistent.toml")))
    configs = layer.kwargs["configs"]
    assert set(configs) == {"read", "write", "admin", "anonymous"}
    for config in configs.values():
        assert inspect.iscoroutinefunction(config.check_throttle_handler)


def _requests_total(client: TestClient[Any], key: str, method: str, path: str) -> dict[str, float]:
    """http_requests_total for one route, by status code, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics", headers=_bearer(key)).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "http_requests_total"
                and labels.get("method") == method
                and labels.get("path") == path
            ):
                counts[labels["status_code"]] = sample.value
    return counts


def test_http_requests_total_counts_401_403_and_429_by_their_status(
    open_appliance: Callable[..., Appliance],
) -> None:
    """They are raised in middleware; the metric must see the status sent, not a 200."""
    appliance = open_appliance(rate_limit_read=3)
    appliance.ensure_collection("default")
    admin, read = _new_key(appliance, "admin"), _new_key(appliance, "read")
    with TestClient(create_app(appliance.settings, appliance)) as client:
        before = _requests_total(client, admin, "GET", "/collections")
        put_before = _requests_total(client, admin, "PUT", "/collections/{name}/documents")
        assert client.get("/collections").status_code == 401
        assert client.get("/collections", headers=_bearer("lsa_nope_nope")).status_code == 401
        put = client.put("/collections/default/documents", json=DOC, headers=_bearer(read))
        assert put.status_code == 403
        statuses = [client.get("/collections", headers=_bearer(read)).status_code for _ in "abcd"]
        assert statuses == [200, 200, 200, 429]
        after = _requests_total(client, admin, "GET", "/collections")
        put_after = _requests_total(client, admin, "PUT", "/collections/{name}/documents")

    def added(now: dict[str, float], then: dict[str, float], status: str) -> float:
        return now.get(status, 0) - then.get(status, 0)

    assert added(after, before, "401") == 2
    assert added(after, before, "429") == 1
    assert added(after, before, "200") == 3
    assert added(put_after, put_before, "403") == 1
    assert added(put_after, put_before, "200") == 0


def test_rate_limit_windows_are_counts_that_reset_and_get_pruned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Litestar's limiter kept every request's time in a JSON list, decoded and re-encoded per
    request (~200 µs at 6,000 a minute); ours keeps a count with the same answers."""
    import asyncio

    from litestar.middleware.rate_limit import RateLimitConfig

    from appliance.api import ratelimit

    now = [1_000_000.0]
    monkeypatch.setattr(ratelimit, "time", lambda: now[0])
    limiter = ratelimit.CountingRateLimitMiddleware(
        app=None,  # type: ignore[arg-type]
        config=RateLimitConfig(rate_limit=("minute", 3)),
    )
    store: Any = None

    async def hit(key: str) -> tuple[int, int]:
        window = await limiter.retrieve_cached_history(key, store)
        await limiter.set_cached_history(key, window, store)
        headers = limiter.create_response_headers(window)
        return len(window.history), int(headers[limiter.config.rate_limit_remaining_header_key])

    async def scenario() -> None:
        assert [await hit("a") for _ in range(3)] == [(1, 2), (2, 1), (3, 0)]
        assert len((await limiter.retrieve_cached_history("a", store)).history) == 3  # full
        assert await hit("b") == (1, 2)  # each identifier has its own window
        now[0] += 61  # the window is over: counting starts again
        assert await hit("a") == (1, 2)
        monkeypatch.setattr(limiter, "PRUNE_ABOVE", 2)
        now[0] += 61
        await hit("c")  # b's and a's windows are over and dropped
        assert set(limiter._windows) == {"c"}

    asyncio.run(scenario())
