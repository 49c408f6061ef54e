"""Fixtures of the replica tests (`make test-cluster`): a store shared by every replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, nginx_binary


@pytest.fixture
def shared_sqlite_url(tmp_path: Path) -> str:
    """One SQLite file that every replica on this host opens (WAL: readers beside one writer)."""
    return f"sqlite:///{tmp_path / 'shared-store' / 'appliance.sqlite3'}"


@pytest.fixture
def cluster(tmp_path: Path, store_url: str) -> Iterator[Cluster]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: apt-get install nginx (.ci/run does)")
    (tmp_path / "shared-store").mkdir(exist_ok=True)
    running = Cluster(workdir=tmp_path / "cluster", database_url=store_url)
    running.workdir.mkdir()
    try:
        yield running
    finally:
        running.stop()
