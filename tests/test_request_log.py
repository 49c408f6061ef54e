"""Request ids echoed in answers, one access log line per request, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import msgspec
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


@pytest.fixture
def root_level() -> Iterator[None]:
    """Litestar's logging set-up configures the root logger for the whole process."""
    root = logging.getLogger()
    level, litestar_level = root.level, logging.getLogger("litestar").level
    yield
    root.setLevel(level)
    logging.getLogger("litestar").setLevel(litestar_level)


@pytest.mark.parametrize(("level", "logged"), [("WARNING", False), ("info", True)])
def test_the_server_logs_at_the_configured_level(
    appliance: Appliance, root_level: None, level: str, logged: bool
) -> None:
    """Litestar's default set-up put the root logger at INFO whatever was configured: a
    server asked for WARNING still wrote an access line per request."""
    settings = msgspec.structs.replace(appliance.settings, log_level=level)
    appliance.ensure_collection(settings.default_collection)
    with TestClient(create_app(settings, appliance)) as test_client:
        assert test_client.get("/health").status_code == 200
        assert logging.getLogger("appliance.access").isEnabledFor(logging.INFO) is logged
        assert logging.getLogger().getEffectiveLevel() == logging.getLevelName(level.upper())


def test_log_level_flag_reaches_the_server_settings(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from appliance.cli import main
    from appliance.cli.base import settings_from

    seen: list[str] = []

    @main.command("show-level-for-test", hidden=True)
    @click.pass_context
    def show(ctx: click.Context) -> None:
        seen.append(settings_from(ctx).log_level)

    try:
        result = CliRunner().invoke(main, ["--log-level", "ERROR", "show-level-for-test"])
        assert result.exit_code == 0, result.output
        assert seen == ["ERROR"]
    finally:
        main.commands.pop("show-level-for-test")
