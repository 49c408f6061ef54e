"""Request ids echoed in answers, one access log line per request, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.api.logging import JsonFormatter, configure_logging, litestar_logging_config
from appliance.service import Appliance


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection(appliance.settings.default_collection)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "appliance.access"]


def test_a_given_request_id_is_echoed_and_logged(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="appliance.access"):
        response = client.post("/search", json={"query": "cats"}, headers={"X-Request-ID": "abc-1"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-1"
    (record,) = _access_records(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc-1"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/search", 200)
    assert isinstance(line["ms"], float) and line["ms"] >= 0
    assert line["level"] == "INFO" and line["logger"] == "appliance.access"


def test_ids_are_made_when_missing_or_unsafe_and_errors_get_them_too(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="appliance.access"):
        made = client.get("/collections/missing")
        unsafe = client.get("/health", headers={"X-Request-ID": "x" * 500})
        unrouted = client.get("/no/such/route")
    ids = [made.headers["X-Request-ID"], unsafe.headers["X-Request-ID"]]
    assert all(len(i) == 32 for i in ids) and ids[0] != ids[1]
    assert unrouted.status_code == 404 and unrouted.headers["X-Request-ID"]
    records = _access_records(caplog)
    assert [r.status for r in records] == [404, 200, 404]  # type: ignore[attr-defined]
    assert [r.request_id for r in records[:2]] == ids  # type: ignore[attr-defined]


def test_json_log_format_writes_one_json_object_per_line() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    saved = [(h, h.formatter) for h in root.handlers]
    root.addHandler(handler)
    try:
        configure_logging("json")
        logging.getLogger("appliance.test").warning("disk %s", "low", extra={"free": 3})
    finally:
        root.removeHandler(handler)
        for h, formatter in saved:
            h.setFormatter(formatter)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "disk low" and entry["free"] == 3 and entry["level"] == "WARNING"
    assert isinstance(handler.formatter, JsonFormatter)


def test_json_mode_turns_off_litestar_logging_set_up() -> None:
    # Litestar's queue handler would wrap each JSON line in its own text format.
    assert litestar_logging_config("json") is None
    assert litestar_logging_config("text") is not None
