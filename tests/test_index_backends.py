"""Every backend through the one VectorIndex interface, on real FAISS / hnswlib indexes."""

from pathlib import Path

import numpy as np
import pytest

from appliance.errors import InvalidIndexSpec
from appliance.index.base import IndexConfig, SearchParams, parse_index_arg
from appliance.index.registry import backend_for
from appliance.index.snapshots import load_snapshot, save_snapshot

DIM = 32
SPECS = [
    ("faiss", "Flat", 1.0),
    ("faiss", "HNSW32,Flat", 0.95),
    ("faiss", "IVF16,Flat", 0.8),
    ("faiss", "IVF16,PQ8", 0.3),
    ("faiss", "HNSW32,SQ8", 0.9),
    ("hnswlib", "M=16,ef_construction=100", 0.95),
]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((12_000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.arange(100, 100 + len(vectors), dtype=np.int64), vectors


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])
    )


@pytest.mark.parametrize(("backend", "spec", "min_recall"), SPECS)
def test_backend_adds_searches_removes_and_survives_a_snapshot(
    backend: str,
    spec: str,
    min_recall: float,
    data: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    ids, vectors = data
    config = IndexConfig(backend=backend, spec=spec)
    index = backend_for(config).create(config, DIM)
    # Two batches: indexes that train do so once enough vectors have arrived.
    index.add(ids[:500], vectors[:500])
    index.add(ids[500:], vectors[500:])
    assert len(index) == len(ids)
    queries = vectors[:40] + 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    _, found = index.search(queries, 10, SearchParams(ef=128, nprobe=8))
    assert recall(found, exact) >= min_recall

    removed = exact[:, 0]
    index.remove(removed)
    assert len(index) == len(ids) - len(set(removed.tolist()))
    _, after = index.search(queries, 10, SearchParams(ef=128, nprobe=8))
    assert not set(after.ravel().tolist()) & set(removed.tolist())
    assert not set(index.ids().tolist()) & set(removed.tolist())

    allowed = ids[1000:1003]
    _, filtered = index.search(queries[:1], 3, SearchParams(ef=64, nprobe=16), allowed=allowed)
    assert set(filtered[0][filtered[0] >= 0].tolist()) <= set(allowed.tolist())

    save_snapshot(index, tmp_path / "snap", model_id="m", max_id=int(ids.max()))
    loaded = load_snapshot(tmp_path / "snap", config, DIM, "m")
    assert loaded is not None
    restored, info = loaded
    assert len(restored) == len(index) and info.max_id == int(ids.max())
    _, again = restored.search(queries, 10, SearchParams(ef=128, nprobe=8))
    assert not set(again.ravel().tolist()) & set(removed.tolist())


def test_training_index_answers_exactly_until_it_has_enough_vectors(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    ids, vectors = data
    config = IndexConfig(backend="faiss", spec="IVF64,PQ8")
    index = backend_for(config).create(config, DIM)
    index.add(ids[:50], vectors[:50])
    _, found = index.search(vectors[:5], 1, SearchParams())
    assert found[:, 0].tolist() == ids[:5].tolist()


def test_corrupt_or_mismatched_snapshot_is_refused(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ids, vectors = data
    config = IndexConfig(backend="faiss", spec="Flat")
    index = backend_for(config).create(config, DIM)
    index.add(ids[:100], vectors[:100])
    save_snapshot(index, tmp_path / "snap", model_id="m", max_id=199)
    assert load_snapshot(tmp_path / "snap", config, DIM, "other-model") is None
    other = IndexConfig(backend="faiss", spec="HNSW32,Flat")
    assert load_snapshot(tmp_path / "snap", other, DIM, "m") is None
    (tmp_path / "snap" / "index.faiss").write_bytes(b"garbage")
    assert load_snapshot(tmp_path / "snap", config, DIM, "m") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("faiss:NotAnIndex", "cannot build"),
        ("hnswlib:M=abc", "integer"),
        ("hnswlib:depth=3", "not understood"),
        ("annoy:trees=10", "unknown index backend"),
    ],
)
def test_bad_index_specs_say_what_to_fix(text: str, message: str) -> None:
    config = parse_index_arg(text)
    with pytest.raises(InvalidIndexSpec, match=message):
        backend_for(config).validate(config, DIM)


def test_index_arg_needs_a_backend_and_spec() -> None:
    assert parse_index_arg("faiss:HNSW32,Flat").spec == "HNSW32,Flat"
    with pytest.raises(InvalidIndexSpec, match="BACKEND:SPEC"):
        parse_index_arg("Flat")
