"""1M documents × 384 dims: insert through the store, build the default index, restart-to-ready.

    nice .venv/bin/python benchmarks/scale_1m.py               # all steps, reusing what exists
    nice .venv/bin/python benchmarks/scale_1m.py --n 200000    # a smaller run
    nice .venv/bin/python benchmarks/scale_1m.py --build-limit 200000  # time a partial build

Steps (each cached under var/scale/n<N>/, so a rerun only measures restart):
1. insert: N synthetic documents (clustered unit vectors, `appliance.bench.synthetic`) through
   `upsert_documents`, 10k per transaction, as ingest writes them (FTS triggers included).
2. build: the default index (hnswlib M=32, ef_construction=200) from the stored vectors via
   `CollectionManager.open_all` with no snapshot (the rebuild-from-store path), timed, then
   `save_snapshots`; then, once, what a server's first run leaves: the keyword index built
   from the store and both snapshots saved (`prepare_restart`). With --build-limit, only the
   first L vectors are indexed (timed) and the full build time is extrapolated; the restart
   measurement then needs a full build.
3. restart: a fresh subprocess, from interpreter start to `open_all` returning (indexes loaded
   from the snapshot and caught up with the store), no model loaded; with RSS once loaded
   against vector bytes + `index.nbytes()`. `--cold` evicts the page cache first (all of it
   as root, else the data dir's files). Each restart runs twice, the baseline first: start-up
   checking every snapshot byte (xxh3, as before), then as it does now (sampled blocks, every
   byte checked in the background once ready), and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the editable install would import the main checkout's package instead.
sys.path.insert(0, str(ROOT))
DIM = 384
COLLECTION = "scale"
MODEL = "synthetic-384"


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _manager(directory: Path):  # type: ignore[no-untyped-def]
    from appliance.collections.manager import CollectionManager
    from appliance.store.database import Database

    db = Database(directory / "appliance.sqlite3")
    return CollectionManager(
        db, directory / "indexes", dimension_of=lambda _model: DIM, exact_filter_threshold=20_000
    )


def insert(directory: Path, n: int) -> dict[str, float]:

    from appliance.bench.synthetic import make_synthetic
    from appliance.index.registry import DEFAULT_INDEX
    from appliance.store import collections as collection_store
    from appliance.store.documents import (
        EmbeddedText,
        NewDocument,
        content_hash,
        count_documents,
        upsert_documents,
    )

    manager = _manager(directory)
    db = manager.db
    with db.write() as session:
        row = collection_store.find_collection(session, COLLECTION)
        if row is None:
            row = collection_store.create_collection(
                session,
                name=COLLECTION,
                backend=DEFAULT_INDEX.backend,
                spec=DEFAULT_INDEX.spec,
                options=dict(DEFAULT_INDEX.options),
                model_id=MODEL,
            )
        collection_id = row.id
    with db.read() as session:
        done = count_documents(session, collection_id)
    started = time.perf_counter()
    if done < n:
        data = make_synthetic(n, DIM, 0, seed=0)
        for start in range(done, n, 10_000):
            stop = min(n, start + 10_000)
            documents = []
            vectors = {}
            for row_number in range(start, stop):
                text = f"synthetic document {row_number} rank {int(data.rank[row_number])}"
                external_id = f"doc-{row_number}"
                documents.append(
                    NewDocument(external_id, text, data.metadata(row_number), content_hash(text))
                )
                vectors[external_id] = EmbeddedText(
                    [(0, len(text))], data.vectors[row_number : row_number + 1]
                )
            with db.write() as session:
                upsert_documents(session, collection_id, MODEL, documents, vectors)
            if (stop // 10_000) % 10 == 0:
                print(f"  inserted {stop:,}", file=sys.stderr, flush=True)
        del data
    seconds = time.perf_counter() - started
    db.close()
    return {"insert_s": round(seconds, 1), "inserted": n - done}


def build(directory: Path, limit: int | None, quick_ef: int | None) -> dict[str, object]:
    """Time a build from the stored vectors; leave a snapshot for the restart measurement.

    limit: time the default index over the first `limit` vectors only (no snapshot).
    quick_ef: build the snapshot with this ef_construction instead of 200 (M stays 32), saved
    under the collection's default spec. Its file has the same size and layout (hnswlib
    allocates M*2 level-0 links per vector whatever the graph's quality), so loading it costs
    what loading the default build costs; its search quality is not measured.
    """
    from appliance.index.base import IndexConfig
    from appliance.index.registry import DEFAULT_INDEX, backend_for
    from appliance.index.snapshots import save_snapshot
    from appliance.store import collections as collection_store
    from appliance.store import documents as document_store

    snapshot = directory / "indexes" / "collection-1"
    if limit is None and (snapshot / "manifest.json").is_file():
        return {}
    config = DEFAULT_INDEX
    if limit is None and quick_ef is not None:
        config = IndexConfig(
            backend="hnswlib",
            spec=f"M=32,ef_construction={quick_ef}",
            options=dict(DEFAULT_INDEX.options),
        )
    manager = _manager(directory)
    index = backend_for(config).create(config, DIM)
    started = time.perf_counter()
    added = 0
    with manager.db.read() as session:
        generation = collection_store.collection_generation(session, 1)
        for ids, vectors in document_store.iter_all_vectors(session, 1, MODEL, DIM):
            take = len(ids) if limit is None else min(len(ids), limit - added)
            index.add(ids[:take], vectors[:take])
            added += take
            elapsed = time.perf_counter() - started
            print(f"  {config.spec}: {added:,} vectors in {elapsed:.0f} s", file=sys.stderr)
            if limit is not None and added >= limit:
                break
    seconds = time.perf_counter() - started
    report: dict[str, object] = {"build_spec": config.spec, "build_vectors": added}
    report["build_s"] = round(seconds, 1)
    if limit is None:
        index.config = DEFAULT_INDEX  # type: ignore[misc]
        started = time.perf_counter()
        ids = index.ids()
        save_snapshot(index, snapshot, model_id=MODEL, max_id=int(ids.max()), generation=generation)
        report["snapshot_save_s"] = round(time.perf_counter() - started, 1)
    manager.db.close()
    return report


def prepare_restart(directory: Path) -> dict[str, object]:
    """What a server's first run leaves behind: the keyword index built from the store and
    saved beside the vector snapshot, which is saved again in this release's format (sampled
    block checksums). Once; timed."""
    keyword = directory / "indexes" / "keyword-1"
    if keyword.is_dir():
        return {}
    manager = _manager(directory)
    started = time.perf_counter()
    manager.open_all()
    opened_s = time.perf_counter() - started
    live = manager.peek(COLLECTION)
    assert live is not None
    live.dirty = True
    started = time.perf_counter()
    manager.save_snapshots()
    saved_s = time.perf_counter() - started
    manager.db.close()
    return {"keyword_build_open_s": round(opened_s, 1), "snapshots_save_s": round(saved_s, 1)}


def restart_child(directory: Path, started_ns: int, whole_check: bool) -> None:
    """Run in a fresh interpreter: time from process start to ready; print one JSON line.
    `whole_check`: the baseline, start-up checking every snapshot byte (xxh3)."""
    after_start = time.time_ns()
    imports = time.perf_counter()
    from appliance.collections import manager as _  # noqa: F401
    from appliance.index import snapshots

    if whole_check:
        sampled = snapshots.snapshot_file_problem

        def whole(directory: Path, manifest: dict[str, Any], *, depth: Any = "start") -> Any:
            return sampled(directory, manifest, depth="xxh3" if depth == "start" else depth)

        snapshots.snapshot_file_problem = whole

    import_s = time.perf_counter() - imports
    manager = _manager(directory)
    opened = time.perf_counter()
    manager.open_all()
    open_s = time.perf_counter() - opened
    ready_ns = time.time_ns()
    live = manager.peek(COLLECTION)
    assert live is not None
    count = len(live.index)
    vector_bytes = count * DIM * 4
    index_bytes = live.index.nbytes()
    rss = _rss_bytes()
    # What a ready server then runs in the background: xxh3 of every snapshot byte.
    checked = time.perf_counter()
    rebuilt = manager.check_snapshots()
    check_s = time.perf_counter() - checked
    print(
        json.dumps(
            {
                "vectors": count,
                "restart_to_ready_s": round((ready_ns - started_ns) / 1e9, 2),
                "interpreter_start_s": round((after_start - started_ns) / 1e9, 2),
                "imports_s": round(import_s, 2),
                "open_all_s": round(open_s, 2),
                "rss_gib": round(rss / 2**30, 2),
                "vector_gib": round(vector_bytes / 2**30, 2),
                "index_gib": round(index_bytes / 2**30, 2),
                "rss_over_vectors_plus_index": round(rss / (vector_bytes + index_bytes), 2),
                "dirty_after_open": live.dirty,
                "background_check_s": round(check_s, 2),
                "rebuilt_by_check": rebuilt,
            }
        )
    )


def drop_page_cache(directory: Path) -> str:
    """Evict cached pages before a cold restart: every page (root, /proc/sys/vm/drop_caches),
    else the data dir's files (posix_fadvise DONTNEED). Which one ran."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    except OSError:
        for path in directory.rglob("*"):
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        return "fadvise"


def restart(directory: Path, cold: bool = False, whole_check: bool = False) -> dict[str, object]:
    evicted = drop_page_cache(directory) if cold else None
    started_ns = time.time_ns()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(directory),
            str(started_ns),
            "whole" if whole_check else "sampled",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    if evicted:
        result["page_cache"] = f"cold ({evicted})"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--build-limit", type=int, default=None)
    parser.add_argument("--quick-ef", type=int, default=None, help="see build()")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument(
        "--cold", action="store_true", help="evict the page cache before each restart"
    )
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        restart_child(Path(args.child[0]), int(args.child[1]), args.child[2] == "whole")
        return
    directory = ROOT / "var" / "scale" / f"n{args.n}"
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"n": args.n, "dim": DIM}
    report.update(insert(directory, args.n))
    print(json.dumps(report), flush=True)
    report.update(build(directory, args.build_limit, args.quick_ef))
    print(json.dumps(report), flush=True)
    if args.build_limit is None:
        report.update(prepare_restart(directory))
        print(json.dumps(report), flush=True)
        for attempt in range(args.restarts):
            baseline = restart(directory, args.cold, whole_check=True)
            measured = restart(directory, args.cold)
            ratio = float(measured["restart_to_ready_s"]) / float(baseline["restart_to_ready_s"])  # type: ignore[arg-type]
            report[f"restart_{attempt}"] = {
                "sampled_check": measured,
                "whole_check_baseline": baseline,
                "ratio_to_baseline": round(ratio, 3),
            }
            print(json.dumps(report[f"restart_{attempt}"]), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
