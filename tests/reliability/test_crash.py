"""Crash safety: a real server is SIGKILLed at random moments while a client ingests, then
restarted. Every acknowledged document must survive and be findable, every batch must be all
or nothing, and `appliance verify` must find the indexes equal to the store after each kill.
Some rounds end with SIGTERM instead: the request in flight finishes and snapshots are saved.

Run with `make test-reliability` (CRASH_KILLS sets the number of SIGKILLs, default 20); on a
PostgreSQL store too with `make test-postgres`.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from crash_server import Server, request, verify
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

WORDS = [
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "glacier", "harbor", "island",
    "jasper", "kelp", "lagoon", "meadow", "nebula", "orchard", "prairie", "quartz", "river",
    "savanna", "tundra", "upland", "valley", "willow", "xylem", "zephyr",
]  # fmt: skip


# uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is -15.
GRACEFUL = (0, -15)


@dataclass
class Ledger:
    """What the client knows: acknowledged ids with their text, and unanswered batches."""

    acked: dict[str, str] = field(default_factory=dict)
    unanswered: list[list[str]] = field(default_factory=list)
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _batch(rng: random.Random, prefix: str, size: int) -> list[dict[str, str]]:
    return [
        {"id": f"{prefix}-{i}", "text": f"{prefix} {i} " + " ".join(rng.sample(WORDS, 8))}
        for i in range(size)
    ]


def _send(server: Server, ledger: Ledger, docs: list[dict[str, str]]) -> bool:
    try:
        status, body = request(
            f"{server.base}/collections/default/documents", {"documents": docs}, "PUT", 60
        )
    except OSError:
        with ledger.lock:
            ledger.unanswered.append([d["id"] for d in docs])
        return False
    assert status == 200, (status, body)
    with ledger.lock:
        ledger.acked.update({d["id"]: d["text"] for d in docs})
        ledger.batches += 1
    return True


def _writer(server: Server, ledger: Ledger, rng: random.Random, tag: str, stop: threading.Event):
    n = 0
    while not stop.is_set():
        n += 1
        if not _send(server, ledger, _batch(rng, f"{tag}b{n}", rng.randint(1, 24))):
            return


_STORED_IDS = (
    "SELECT d.external_id FROM documents d JOIN collections c "
    "ON c.id = d.collection_id WHERE c.name = 'default'"
)


def _stored_ids(data_dir: Path, database_url: str = "") -> set[str]:
    if database_url:  # a PostgreSQL store: read it as another client would
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return set(connection.scalars(text(_STORED_IDS)))
        finally:
            engine.dispose()
    raw = sqlite3.connect(f"file:{data_dir / 'appliance.sqlite3'}?mode=ro", uri=True)
    try:
        rows = raw.execute(_STORED_IDS).fetchall()
    finally:
        raw.close()
    return {row[0] for row in rows}


def _check_nothing_lost(
    server: Server, ledger: Ledger, rng: random.Random, database_url: str
) -> None:
    stored = _stored_ids(server.data_dir, database_url)
    lost = set(ledger.acked) - stored
    assert not lost, f"{len(lost)} acknowledged documents lost: {sorted(lost)[:5]}"
    for batch in ledger.unanswered:
        present = sum(doc_id in stored for doc_id in batch)
        assert present in (0, len(batch)), f"half-written batch: {present}/{len(batch)}"
    # Findable by search: the newest acknowledged documents and a random sample.
    ids = list(ledger.acked)
    for doc_id in set(ids[-3:] + rng.sample(ids, min(5, len(ids)))):
        status, body = request(
            f"{server.base}/collections/default/search",
            {"query": ledger.acked[doc_id], "limit": 5},
            "POST",
        )
        assert status == 200, body
        assert doc_id in [hit["id"] for hit in body["results"]], (doc_id, body)


def _verify_ok(data_dir: Path) -> None:
    outcome = verify(data_dir)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


@pytest.mark.slow
def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, database_url: str) -> None:
    """`database_url`: "" for a SQLite store; a PostgreSQL database in the `postgres` run (the
    server and `verify` get it through APPLIANCE_DATABASE_URL)."""
    kills_wanted = int(os.environ.get("CRASH_KILLS", "20"))
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261127")))
    data_dir = tmp_path / "data"
    ledger = Ledger()
    kills = startup_kills = sigterms = 0
    started = time.monotonic()
    server = Server(data_dir, tmp_path / "server.log")
    server.start()
    server.wait_ready()
    round_no = 0
    while kills < kills_wanted:
        round_no += 1
        if ledger.acked:
            _check_nothing_lost(server, ledger, rng, database_url)
        if round_no % 6 == 0:
            # Graceful: the request in flight at SIGTERM completes, snapshots are saved.
            docs = _batch(rng, f"r{round_no}term", 24)
            result: list[bool] = []
            sender = threading.Thread(
                target=lambda sent=docs, out=result: out.append(_send(server, ledger, sent))
            )
            sender.start()
            time.sleep(0.3)
            assert server.terminate() in GRACEFUL
            sender.join(60)
            assert result == [True], "a request in flight at SIGTERM did not finish"
            assert list(data_dir.glob("indexes/collection-*/manifest.json"))
            sigterms += 1
        else:
            stop = threading.Event()
            writers = [
                threading.Thread(
                    target=_writer, args=(server, ledger, random.Random(rng.random()), t, stop)
                )
                for t in (f"r{round_no}x", f"r{round_no}y")
            ]
            for writer in writers:
                writer.start()
            time.sleep(rng.uniform(0.2, 3.0))
            server.kill()
            stop.set()
            for writer in writers:
                writer.join(60)
            kills += 1
        _verify_ok(data_dir)
        server.start()
        if round_no % 5 == 2:
            # Killed again while it loads its indexes and catches up.
            time.sleep(rng.uniform(0.5, 4.0))
            server.kill()
            kills += 1
            startup_kills += 1
            _verify_ok(data_dir)
            server.start()
        server.wait_ready()
    _check_nothing_lost(server, ledger, rng, database_url)
    assert server.terminate() in GRACEFUL
    _verify_ok(data_dir)
    lost = len(set(ledger.acked) - _stored_ids(data_dir, database_url))
    print(
        f"\ncrash test ({'postgresql' if database_url else 'sqlite'}): {kills} SIGKILLs "
        f"survived ({startup_kills} during start-up), "
        f"{sigterms} SIGTERMs, {len(ledger.acked)} acknowledged documents in "
        f"{ledger.batches} batches, {lost} lost, {len(ledger.unanswered)} unanswered batches "
        f"all-or-nothing, {time.monotonic() - started:.0f} s"
    )
    assert lost == 0
