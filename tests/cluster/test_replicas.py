"""Replicas over one store behind nginx (deploy/nginx/appliance-replicas.conf): a write one
replica acknowledges is searchable on every other within a second, and killing a replica
under search load fails no request and loses no acknowledged write."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.harness import CLUSTER_KEY, Cluster, site_config

pytestmark = pytest.mark.cluster

COLLECTION = "default"
HEADERS = {"Authorization": f"Bearer {CLUSTER_KEY}"}


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, shared_sqlite_url: str) -> str:
    """One SQLite file on this host, or a PostgreSQL database (tests/postgres_fixtures.py)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return shared_sqlite_url


def _upsert(client: httpx.Client, base: str, docs: list[dict[str, object]]) -> None:
    answer = client.put(
        f"{base}/collections/{COLLECTION}/documents", json={"documents": docs}, headers=HEADERS
    )
    assert answer.status_code == 200, answer.text


def _search_ids(client: httpx.Client, base: str, query: str) -> list[str]:
    answer = client.post(
        f"{base}/collections/{COLLECTION}/search",
        json={"query": query, "limit": 5},
        headers=HEADERS,
    )
    assert answer.status_code == 200, answer.text
    return [hit["id"] for hit in answer.json()["results"]]


def test_the_site_file_is_rewritten_with_every_replica() -> None:
    text = site_config([9001, 9002], 9000)
    assert "server 127.0.0.1:9001 max_fails=1" in text
    assert "server 127.0.0.1:9002 max_fails=1" in text
    assert "8001" not in text and "listen 127.0.0.1:9000;" in text
    assert "non_idempotent" in text  # searches are retried on another replica


def test_a_write_to_one_replica_is_searchable_on_the_others_within_a_second(
    cluster: Cluster,
) -> None:
    replicas = [cluster.start_replica() for _ in range(3)]
    delays = []
    with httpx.Client(timeout=30) as client:
        _upsert(client, replicas[0].url, [{"id": "seed", "text": "a seed document"}])
        for round_ in range(5):
            doc_id = f"visible-{round_}"
            writer, readers = (
                replicas[round_ % 3],
                [r for r in replicas if r is not replicas[round_ % 3]],
            )
            _upsert(
                client,
                writer.url,
                [{"id": doc_id, "text": f"quokka number {round_} basks on Rottnest island"}],
            )
            acknowledged = time.monotonic()
            for reader in readers:
                while doc_id not in _search_ids(client, reader.url, f"quokka number {round_}"):
                    assert time.monotonic() - acknowledged < 1.0, (
                        f"{doc_id} not visible on replica {reader.index} after 1 s"
                    )
                    time.sleep(0.01)
            delays.append(time.monotonic() - acknowledged)
    print(f"visibility delay, write acknowledged to seen on both others: max {max(delays):.3f} s")


def test_killing_a_replica_under_search_load_fails_no_request_and_loses_no_write(
    cluster: Cluster, tmp_path: Path
) -> None:
    first = cluster.start_replica(load_sample=True)
    others = [cluster.start_replica() for _ in range(2)]
    victim = others[-1]
    proxy = cluster.start_proxy()

    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def search_load(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                query = f"how do I parse {worker} arguments {n} from the command line"
                try:
                    answer = client.post(
                        f"{proxy}/collections/{COLLECTION}/search",
                        json={"query": query, "limit": 3},
                        headers=HEADERS,
                    )
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code}: {answer.text[:200]}")
                    else:
                        answered[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    workers = [threading.Thread(target=search_load, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    acknowledged: list[str] = []
    try:
        with httpx.Client(timeout=30) as client:
            # Writes straight to the replica that will die, each acknowledged before the next.
            for batch in range(6):
                docs = [
                    {"id": f"victim-{batch}-{i}", "text": f"document {i} of batch {batch}"}
                    for i in range(5)
                ]
                _upsert(client, victim.url, docs)
                acknowledged.extend(str(doc["id"]) for doc in docs)
            time.sleep(1.0)
            before_kill = answered[0]
            victim.kill()
            time.sleep(3.0)
            assert answered[0] > before_kill, "no search was answered after the kill"
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not failures, f"{len(failures)} of {answered[0] + len(failures)} failed: {failures[:5]}"
    with httpx.Client(timeout=30) as client:
        for survivor in (first, others[0]):
            for doc_id in acknowledged:
                answer = client.get(
                    f"{survivor.url}/collections/{COLLECTION}/documents/{doc_id}", headers=HEADERS
                )
                assert answer.status_code == 200, f"{doc_id} lost on replica {survivor.index}"
    print(
        f"replica killed under load: {answered[0]} searches answered, 0 failed; "
        f"{len(acknowledged)} acknowledged documents all present"
    )
