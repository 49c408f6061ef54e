"""Shared fixtures: one real model for the session; real SQLite files and indexes per test.

The modules in POSTGRES_MODULES run each test twice, on a SQLite store and on a PostgreSQL one
(a database of its own in a throwaway cluster, tests/postgres_fixtures.py); the PostgreSQL
runs carry the `postgres` marker (`make test-postgres`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The default backend "auto" exports the model for OpenVINO on a first start (seconds of CPU
# per data dir). Tests embed with the reference backend unless they ask for another;
# tests/test_auto_backend.py covers "auto" itself. Subprocess servers inherit this.
os.environ.setdefault("APPLIANCE_EMBEDDING_BACKEND", "torch")

from appliance.config import Settings, load_settings
from appliance.embedding.encoder import Encoder
from appliance.models.registry import ModelRegistry
from appliance.service import Appliance
from tests.postgres_fixtures import postgres_cluster, postgres_url  # noqa: F401 (fixtures)

# Store, filter, search, job, key and change-detection tests: run on both dialects.
POSTGRES_MODULES = frozenset(
    {
        "test_filters",
        "test_jobs",
        "test_auth",
        "test_ingest_search",
        "test_data_version",
        "test_cache_warming",
        "test_result_cache_feedback",
        "test_keyword_index",
        "test_reindex",
        "test_crash",
        "test_store_dialects",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "store_dialect" in metafunc.fixturenames and module in POSTGRES_MODULES:
        metafunc.parametrize(
            "store_dialect",
            ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
            indirect=True,
        )


@pytest.fixture
def store_dialect(request: pytest.FixtureRequest) -> str:
    """ "sqlite", or "postgres" in a POSTGRES_MODULES test's second run."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(store_dialect: str, request: pytest.FixtureRequest) -> str:
    """The store's URL for Settings.database_url: "" (the SQLite file in the data dir), or a
    fresh PostgreSQL database, then also in APPLIANCE_DATABASE_URL for the CLI and servers the
    test starts."""
    if store_dialect == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        request.getfixturevalue("monkeypatch").setenv("APPLIANCE_DATABASE_URL", url)
        return url
    return ""


def sqlite_only(store_dialect: str, why: str) -> None:
    if store_dialect != "sqlite":
        pytest.skip(f"SQLite only: {why}")


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    model = ModelRegistry().resolve("all-MiniLM-L6-v2")
    return Encoder(model, device="cpu", batch_size=32)


@pytest.fixture
def settings_for(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", str(tmp_path / "data"))
        overrides.setdefault("load_sample", False)
        overrides.setdefault("database_url", database_url)
        return load_settings(Path("/nonexistent.toml"), **overrides)

    return build


@pytest.fixture
def open_appliance(
    settings_for: Callable[..., Settings], encoder: Encoder
) -> Iterator[Callable[..., Appliance]]:
    opened: list[Appliance] = []

    def build(**overrides: Any) -> Appliance:
        appliance = Appliance(settings_for(**overrides), encoder=encoder)
        opened.append(appliance)
        return appliance

    yield build
    for appliance in opened:
        appliance.db.close()


@pytest.fixture
def appliance(open_appliance: Callable[..., Appliance]) -> Appliance:
    return open_appliance()


ANIMALS = [
    ("cat", "The cat purrs and sleeps on the warm windowsill.", {"kind": "mammal", "legs": 4}),
    (
        "dog",
        "A loyal dog fetches the ball and barks at the mailman.",
        {"kind": "mammal", "legs": 4},
    ),
    (
        "eagle",
        "The eagle soars high above the mountains hunting prey.",
        {"kind": "bird", "legs": 2},
    ),
    ("salmon", "Salmon swim upstream in rivers to spawn.", {"kind": "fish", "legs": 0}),
    ("spider", "A spider spins a web to catch flies.", {"kind": "arachnid", "legs": 8}),
    (
        "penguin",
        "Penguins waddle on the Antarctic ice and dive for fish.",
        {"kind": "bird", "legs": 2},
    ),
]


@pytest.fixture(scope="session")
def live_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `appliance serve` shared by the HTTP client and LangChain tests (one start-up,
    ~10 s); see tests/live_server.py for its key and async threshold."""
    from tests.live_server import LIVE_ASYNC_THRESHOLD, LIVE_KEY, running_server

    with running_server(
        tmp_path_factory.mktemp("live-server"),
        admin_key=LIVE_KEY,
        async_threshold=str(LIVE_ASYNC_THRESHOLD),
    ) as url:
        yield url
