"""A throwaway PostgreSQL cluster for the `postgres` tests (`make test-postgres`).

`initdb` in a temp dir, started on a free loopback port, as an unprivileged user when the tests
run as root (PostgreSQL refuses root): `postgres` if the machine has it, else `nobody`. One
cluster per session; each test gets a database of its own, dropped after it. Needs the
PostgreSQL server binaries (`initdb`, `pg_ctl`) on PATH or under /usr/lib/postgresql/*/bin.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

SUPERUSER = "appliance"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> list[str]:
    """The prefix that runs a command as an unprivileged user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")


@dataclass
class PostgresCluster:
    port: int
    directory: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PostgresCluster:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    prefix = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
    if prefix:
        owner = pwd.getpwnam(prefix[2])
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    data = directory / "data"
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
         "--locale=C.UTF-8", "--no-sync"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = _free_port()
    # fsync off: the tests kill appliance processes, never the cluster itself.
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {directory} -c fsync=off "
        "-c full_page_writes=off -c max_connections=400"
    )
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w",
         "start"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return PostgresCluster(port, directory)


def stop_cluster(cluster: PostgresCluster) -> None:
    pg_ctl = _binary("pg_ctl")
    assert pg_ctl is not None
    subprocess.run(
        [*_run_as(), pg_ctl, "-D", str(cluster.directory / "data"), "-m", "immediate", "stop"],
        check=False,
        capture_output=True,
    )
    shutil.rmtree(cluster.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh database in the session's cluster, dropped after the test."""
    url = postgres_cluster.create_database()
    try:
        yield url
    finally:
        postgres_cluster.drop_database(url)
