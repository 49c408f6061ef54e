"""The HTTP metrics middleware counts exactly what Litestar's own Prometheus middleware counts."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.params import FromPath
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from appliance.api.http_metrics import PrometheusHttpMiddleware

PREFIX = "httpmetricstest"
in_flight: list[float] = []


def _in_progress(path: str) -> float:
    value = REGISTRY.get_sample_value(
        f"{PREFIX}_requests_in_progress",
        {"method": "GET", "path": path, "status_code": "200", "app_name": "test"},
    )
    return value or 0.0


@get("/items/{n:int}", sync_to_thread=False)
def item(n: FromPath[int]) -> dict[str, int]:
    in_flight.append(_in_progress("/items/{n}"))
    return {"n": n}


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("boom")


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            timed = sample.name.endswith("_sum") or sample.labels.get("le", "+Inf") != "+Inf"
            if (
                sample.name.startswith(PREFIX)
                and not sample.name.endswith("_created")
                and not timed
            ):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _run(middleware_class: type[PrometheusMiddleware]) -> dict[Any, float]:
    """What one round of requests adds to every sample, but those that depend on how long a
    request took (the sums of durations and the buckets below +Inf)."""
    config = PrometheusConfig(
        app_name="test", prefix=PREFIX, group_path=True, middleware_class=middleware_class
    )
    app = Litestar(route_handlers=[item, boom], middleware=[config.middleware])
    before = _samples()
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [client.get(f"/items/{n}").status_code for n in (1, 2, 3)] == [200] * 3
        assert client.get("/items/x").status_code == 404  # no route: no middleware
        assert client.get("/boom").status_code == 500
    after = _samples()
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value != before.get(key, 0.0)
    }


def test_the_same_counts_as_litestars_middleware() -> None:
    in_flight.clear()
    theirs = _run(PrometheusMiddleware)
    ours = _run(PrometheusHttpMiddleware)
    assert ours == theirs
    # What both counted: three answers on the route's template, one 500 and its error.
    assert theirs[(f"{PREFIX}_requests_total", _labels("/items/{n}", "200"))] == 3
    assert theirs[(f"{PREFIX}_requests_total", _labels("/boom", "500"))] == 1
    assert theirs[(f"{PREFIX}_requests_error_total", _labels("/boom", "500"))] == 1
    duration_count = (f"{PREFIX}_request_duration_seconds_count", _labels("/items/{n}", "200"))
    assert theirs[duration_count] == 3
    # In progress while the handler ran, and back to 0 after.
    assert in_flight == [1.0] * 6
    assert _in_progress("/items/{n}") == 0.0


def _labels(path: str, status: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted({"method": "GET", "path": path, "status_code": status, "app_name": "test"}.items())
    )
