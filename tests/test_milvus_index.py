"""The milvus backend against a real Milvus protocol (milvus-lite's server on loopback): the
VectorIndex verbs, search params, allowed-id filters, collection names, and a collection kept
equal to the store across a crash between the store commit and the Milvus write."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from appliance.bench.datasets import synthetic_dataset
from appliance.bench.sweep import SweepOptions, run_sweep
from appliance.collections.manager import CollectionManager
from appliance.errors import IndexBackendUnavailable, InvalidIndexSpec
from appliance.index import milvus_index
from appliance.index.base import IndexConfig, IndexPlace, IndexServer, SearchParams, parse_index_arg
from appliance.index.filtered import exact_top_k
from appliance.index.milvus_index import MilvusBackend, MilvusIndex, client_for, collection_name
from appliance.index.registry import DEFAULT_INDEX
from appliance.store import documents as document_store
from appliance.store.database import Database
from appliance.store.documents import EmbeddedText, NewDocument, content_hash
from tests.milvus_fixtures import milvus_server, milvus_uri

pytestmark = pytest.mark.milvus
__all__ = ["milvus_server", "milvus_uri"]

DIM = 16
ROOT = Path(__file__).resolve().parents[1]


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _open(server: IndexServer, spec: str, collection_id: int = 1, model: str = "m") -> MilvusIndex:
    config = IndexConfig(backend="milvus", spec=spec)
    return MilvusBackend().create(config, DIM, IndexPlace(server, collection_id, model))


def test_flat_add_search_remove_and_reopen(milvus_server: IndexServer) -> None:
    index = _open(milvus_server, "FLAT")
    vectors = _vectors(300)
    ids = np.arange(1, 301, dtype=np.int64)
    index.add(ids, vectors)
    assert len(index) == 300
    queries = _vectors(3, seed=1)
    scores, found = index.search(queries, 10, SearchParams())
    for row, query in enumerate(queries):
        want_scores, want_ids = exact_top_k(query, ids, vectors, 10)
        assert found[row].tolist() == want_ids.tolist()
        assert np.allclose(scores[row], want_scores, atol=1e-5)

    index.remove(np.array([1, 2, 3, 999], dtype=np.int64))  # 999 was never there
    assert len(index) == 297
    # Milvus keeps the index itself: a fresh open lists what the server holds.
    reopened = _open(milvus_server, "FLAT")
    assert sorted(reopened.ids().tolist()) == list(range(4, 301))
    assert len(reopened) == 297
    # k above what is there: the rest are misses.
    _, few = reopened.search(queries[:1], 400, SearchParams())
    assert (few[0] >= 0).sum() == 297 and few[0, -1] == -1


def test_hnsw_recall_and_query_time_params(milvus_server: IndexServer) -> None:
    index = _open(milvus_server, "HNSW,M=16,ef_construction=100")
    vectors = _vectors(1_000, seed=2)
    ids = np.arange(1, 1_001, dtype=np.int64)
    index.add(ids, vectors)
    queries = _vectors(10, seed=3)
    _, found = index.search(queries, 10, SearchParams(ef=64))
    hits = sum(
        len(set(found[row].tolist()) & set(exact_top_k(q, ids, vectors, 10)[1].tolist()))
        for row, q in enumerate(queries)
    )
    assert hits / 100 >= 0.9
    # ef: the query's, else the collection's, else 128; widened for a filter, at least k.
    assert index._params(SearchParams(ef=40), 10, 1.0)["params"] == {"ef": 40}
    assert index._params(SearchParams(), 10, 1.0)["params"] == {"ef": 128}
    assert index._params(SearchParams(ef=40), 10, 10.0)["params"] == {"ef": 400}
    assert index._params(SearchParams(ef=4), 10, 1.0)["params"] == {"ef": 10}
    ivf = _open(milvus_server, "IVF_FLAT,nlist=8", collection_id=2)
    assert ivf._params(SearchParams(nprobe=4), 10, 1.0)["params"] == {"nprobe": 4}
    assert ivf._params(SearchParams(), 10, 1.0) == {"metric_type": "IP", "params": {"nprobe": 16}}
    ivf.add(ids, vectors)
    _, found = ivf.search(queries[:1], 5, SearchParams(nprobe=8))  # every list: exact
    assert found[0].tolist() == exact_top_k(queries[0], ids, vectors, 5)[1].tolist()
    auto = _open(milvus_server, "AUTOINDEX", collection_id=3)
    assert auto._params(SearchParams(ef=40), 10, 1.0)["params"] == {}


def test_allowed_ids_short_list_oversampled_and_in_pieces(
    milvus_server: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(milvus_server, "FLAT")
    vectors = _vectors(600, seed=4)
    ids = np.arange(1, 601, dtype=np.int64)
    index.add(ids, vectors)
    query = _vectors(1, seed=5)
    cases = {"0.5 %": ids[::200], "10 %": ids[::10], "50 %": ids[::2]}

    def check() -> None:
        for label, allowed in cases.items():
            scores, found = index.search(query, 10, SearchParams(), allowed=allowed)
            want_scores, want_ids = exact_top_k(query[0], allowed, vectors[allowed - 1], 10)
            valid = found[0] >= 0
            assert found[0][valid].tolist() == want_ids.tolist(), label
            assert np.allclose(scores[0][valid], want_scores, atol=1e-5), label

    check()  # every list short: `id in [...]`
    monkeypatch.setattr(milvus_index, "MAX_ID_LIST", 2)
    check()  # oversampled, filtered here
    monkeypatch.setattr(milvus_index, "MAX_TOP_K", 12)
    check()  # oversampling capped: the list in pieces, merged


def test_names_keep_appliances_models_and_configs_apart(milvus_uri: str) -> None:
    first, second = IndexServer(milvus_uri, namespace="a1"), IndexServer(milvus_uri, namespace="b2")
    hnsw = IndexConfig(backend="milvus", spec="HNSW")
    names = {
        collection_name(IndexPlace(first, 1, "m"), hnsw),
        collection_name(IndexPlace(second, 1, "m"), hnsw),
        collection_name(IndexPlace(first, 1, "other-model"), hnsw),
        collection_name(IndexPlace(first, 2, "m"), hnsw),
        collection_name(IndexPlace(first, 1, "m"), IndexConfig(backend="milvus", spec="FLAT")),
    }
    assert len(names) == 5
    assert all(name.startswith(("appliance_a1_c", "appliance_b2_c")) for name in names)
    # Same collection id and model in two appliances' namespaces on one server.
    mine, theirs = _open(first, "FLAT"), _open(second, "FLAT")
    mine.add(np.array([1, 2]), _vectors(2))
    assert len(theirs) == 0 and theirs.ids().tolist() == []
    for index in (mine, theirs):
        index.drop()


def test_a_namespace_is_made_once_per_data_dir(tmp_path: Path) -> None:
    server = IndexServer("x.db", namespace_file=tmp_path / "milvus-namespace")
    made = server.resolved_namespace()
    assert len(made) == 12 and made == server.resolved_namespace()
    other = IndexServer("x.db", namespace_file=tmp_path / "other" / "milvus-namespace")
    assert other.resolved_namespace() != made
    assert IndexServer("x.db", namespace="site-a").resolved_namespace() == "site-a"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("IVF_PQ", "not understood"),
        ("HNSW,efSearch=3", "HNSW spec part 'efSearch=3'"),
        ("HNSW,M=x", "must be an integer"),
        ("FLAT,nlist=4", "no build options"),
        ("IVF_FLAT,nlist=0", "between 1 and 65536"),
    ],
)
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(InvalidIndexSpec, match=message):
        MilvusBackend().validate(IndexConfig(backend="milvus", spec=spec), DIM)


def test_without_pymilvus_the_backend_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_index, "pymilvus", None)
    with pytest.raises(IndexBackendUnavailable, match=r"needs pymilvus.*\[milvus\]"):
        MilvusBackend().validate(IndexConfig(backend="milvus", spec="HNSW"), DIM)


# -- a collection kept equal to the store -------------------------------------------------------
MILVUS_FLAT = IndexConfig(backend="milvus", spec="FLAT")


def _manager(directory: Path, server: IndexServer, *, repair: bool = True) -> CollectionManager:
    manager = CollectionManager(
        Database(directory / "store.sqlite3"),
        directory / "indexes",
        dimension_of=lambda _model: DIM,
        exact_filter_threshold=1_000,
        index_server=server,
        repair_server_indexes=repair,
    )
    manager.open_all()
    return manager


def _write(manager: CollectionManager, first: int, count: int, *, apply: bool = True) -> None:
    live = manager.get("c")
    vectors = _vectors(count, seed=first)
    documents = [
        NewDocument(f"d{i}", f"text {i}", {}, content_hash(f"text {i}"))
        for i in range(first, first + count)
    ]
    embedded = {
        doc.external_id: EmbeddedText([(0, 6)], vectors[n : n + 1])
        for n, doc in enumerate(documents)
    }
    with live.write_lock:
        with manager.db.write() as session:
            result = document_store.upsert_documents(session, live.id, "m", documents, embedded)
        if apply:
            manager.apply(live, result)


def _stored(manager: CollectionManager) -> list[int]:
    live = manager.get("c")
    with manager.db.read() as session:
        return sorted(document_store.vector_ids(session, live.id, live.model_id).tolist())


_CRASH = """
import os, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from appliance.index.base import IndexServer
from appliance.store import documents as document_store
from tests.test_milvus_index import _manager, _write

manager = _manager(Path({directory!r}), IndexServer({uri!r}, namespace={namespace!r}))
_write(manager, 100, 15, apply=False)  # committed; the Milvus insert never happens
live = manager.peek("c")  # peek: get() would catch the index up
with manager.db.write() as session:
    document_store.delete_documents(session, live.id, ["d0", "d1", "d2"])
os._exit(0)  # before the index is told: a crash between the store commit and Milvus
"""


def test_a_crash_between_the_store_commit_and_the_milvus_write_converges(
    tmp_path: Path, milvus_server: IndexServer
) -> None:
    manager = _manager(tmp_path, milvus_server)
    manager.create("c", MILVUS_FLAT, "m")
    _write(manager, 0, 20)
    index = manager.get("c").index
    assert sorted(index.ids().tolist()) == _stored(manager)
    manager.db.close()

    script = textwrap.dedent(_CRASH).format(
        root=str(ROOT),
        directory=str(tmp_path),
        uri=milvus_server.uri,
        namespace=milvus_server.namespace,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)

    # As verify sees it: the Milvus collection lags the store (+15 stored, -3 deleted).
    lagging = _manager(tmp_path, milvus_server, repair=False)
    held = set(lagging.get("c").index.ids().tolist())
    stored = set(_stored(lagging))
    assert len(stored - held) == 15 and len(held - stored) == 3
    lagging.db.close()

    # A fresh start lists what Milvus holds and catches it up from the stored vectors.
    restarted = _manager(tmp_path, milvus_server)
    live = restarted.get("c")
    assert sorted(live.index.ids().tolist()) == _stored(restarted)
    assert len(live.index) == 32
    query = _vectors(1, seed=100)[0]  # the vector of d100, written before the crash
    _, ids = restarted.search(live, query, 1, SearchParams())
    with restarted.db.read() as session:
        assert ids.tolist() == [int(document_store.vector_ids(session, live.id, "m").max()) - 14]
    restarted.db.close()


def test_reconfigure_builds_a_new_milvus_collection_and_drops_the_old(
    tmp_path: Path, milvus_server: IndexServer
) -> None:
    manager = _manager(tmp_path, milvus_server)
    manager.create("c", DEFAULT_INDEX, "m")
    _write(manager, 0, 30)
    # Local to Milvus: built from the stored vectors while the hnswlib index serves.
    live = manager.reconfigure("c", IndexConfig(backend="milvus", spec="HNSW"))
    first = live.index
    assert isinstance(first, MilvusIndex)
    assert sorted(first.ids().tolist()) == _stored(manager)
    # Another Milvus config is another collection; the old one is dropped after the switch.
    live = manager.reconfigure("c", MILVUS_FLAT)
    second = live.index
    assert isinstance(second, MilvusIndex) and second.name != first.name
    client = client_for(milvus_server)
    assert not client.has_collection(first.name) and client.has_collection(second.name)
    _write(manager, 30, 5)
    assert sorted(second.ids().tolist()) == _stored(manager)
    manager.drop("c")
    assert not client.has_collection(second.name)
    manager.db.close()


def test_verify_reads_milvus_without_repairing_it(
    tmp_path: Path, milvus_server: IndexServer
) -> None:
    manager = _manager(tmp_path, milvus_server)
    manager.create("c", MILVUS_FLAT, "m")
    _write(manager, 0, 10)
    _write(manager, 10, 4, apply=False)
    manager.db.close()
    lagging = _manager(tmp_path, milvus_server, repair=False)
    assert len(lagging.get("c").index.ids()) == 10
    lagging.db.close()
    repaired = _manager(tmp_path, milvus_server)
    assert len(repaired.get("c").index.ids()) == 14
    repaired.db.close()


def test_the_bench_measures_a_milvus_index_beside_hnswlib_and_drops_it(
    milvus_server: IndexServer,
) -> None:
    dataset = synthetic_dataset(500, DIM, 10)
    options = SweepOptions(
        indexes=[parse_index_arg("milvus:HNSW"), parse_index_arg("hnswlib:M=16")],
        efs=(32,),
        selectivities=(0.1,),
        filter_queries=5,
        exact_threshold=0,
        progress=False,
        index_server=milvus_server,
    )
    points = run_sweep(dataset, options)
    by_index = {(p.index, p.filter_selectivity): p for p in points}
    assert set(by_index) == {
        ("milvus:HNSW", None),
        ("milvus:HNSW", 0.1),
        ("hnswlib:M=16", None),
        ("hnswlib:M=16", 0.1),
    }
    for point in points:
        assert point.recall >= 0.9 and point.qps_1thread > 0 and point.latency_p50_ms > 0
    assert by_index[("milvus:HNSW", None)].params == {"ef": 32}
    prefix = f"appliance_{milvus_server.namespace}_"
    assert not [n for n in client_for(milvus_server).list_collections() if n.startswith(prefix)]
