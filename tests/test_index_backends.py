"""Every backend through the one VectorIndex interface, on real FAISS / hnswlib indexes."""

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
import pytest

from appliance.errors import InvalidIndexSpec
from appliance.index import faiss_index
from appliance.index.base import IndexConfig, SearchParams, parse_index_arg
from appliance.index.faiss_index import FaissIndex, gpu_count, gpu_for, index_kind
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


# -- the GPU copy of a FAISS index ---------------------------------------------------------
GPU_FAISS = gpu_count(faiss) > 0


@pytest.fixture
def device() -> Iterator[None]:
    """Tests that set the faiss device put the process default (auto) back."""
    yield
    faiss_index.use_device("auto")


@pytest.mark.parametrize(
    ("device_setting", "gpus", "kind", "quantizer", "expected"),
    [
        ("auto", 1, "IndexFlat", None, 0),
        ("cuda", 2, "IndexFlat", None, 0),
        ("auto", 1, "IndexIVFFlat", "IndexFlat", 0),
        ("auto", 1, "IndexIVFPQ", "IndexFlat", 0),
        ("auto", 1, "IndexIVFScalarQuantizer", "IndexFlat", 0),
        # No GPU, or the appliance told to stay on the CPU.
        ("auto", 0, "IndexFlat", None, None),
        ("cuda", 0, "IndexIVFFlat", "IndexFlat", None),
        ("cpu", 1, "IndexFlat", None, None),
        # Types faiss has no GPU form for, or whose quantizer cannot go.
        ("auto", 1, "IndexHNSWFlat", None, None),
        ("auto", 1, "IndexHNSWSQ", None, None),
        ("auto", 1, "IndexPQ", None, None),
        ("auto", 1, "IndexIVFPQFastScan", "IndexFlat", None),
        ("auto", 1, "IndexIVFFlat", "IndexHNSWFlat", None),
        ("auto", 1, "IndexPreTransform", None, None),
    ],
)
def test_gpu_for_decides_from_the_device_the_gpus_and_the_index_type(
    device_setting: str, gpus: int, kind: str, quantizer: str | None, expected: int | None
) -> None:
    assert gpu_for(device_setting, gpus, kind, quantizer) == expected


@pytest.mark.parametrize(
    ("spec", "on_a_gpu"),
    [
        ("Flat", True),
        ("IVF16,Flat", True),
        ("IVF16,PQ8", True),
        ("IVF16,SQ8", True),
        ("HNSW32,Flat", False),
        ("HNSW32,SQ8", False),
        ("PQ8", False),
        ("IVF16_HNSW32,Flat", False),
        ("OPQ8,IVF16,PQ8", False),
    ],
)
def test_the_index_kind_read_from_a_real_index_picks_the_gpu_types(
    spec: str, on_a_gpu: bool
) -> None:
    index = FaissIndex.build(IndexConfig(backend="faiss", spec=spec), DIM)
    assert (gpu_for("auto", 1, *index_kind(index._index)) is not None) is on_a_gpu


def test_gpu_count_needs_the_gpu_cloner_and_a_gpu() -> None:
    def gpus(n: int) -> int:
        return n

    cpu_build = SimpleNamespace(get_num_gpus=lambda: 0)
    no_cloner = SimpleNamespace(get_num_gpus=lambda: 2)
    gpu_build = SimpleNamespace(
        get_num_gpus=lambda: 2, StandardGpuResources=object, index_cpu_to_gpu=gpus
    )
    no_device = SimpleNamespace(
        get_num_gpus=lambda: 0, StandardGpuResources=object, index_cpu_to_gpu=gpus
    )
    assert gpu_count(cpu_build) == 0
    assert gpu_count(no_cloner) == 0
    assert gpu_count(gpu_build) == 2
    assert gpu_count(no_device) == 0
    assert gpu_count(SimpleNamespace()) == 0


def test_without_faiss_installed_the_cuda_device_still_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GPU device kit carries no faiss: asking for cuda must not import it and fail."""
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    assert faiss_index._installed_gpus.__wrapped__() == 0
    monkeypatch.setattr(faiss_index, "_installed_gpus", faiss_index._installed_gpus.__wrapped__)
    faiss_index.use_device("cuda")
    faiss_index.use_device("auto")


@pytest.mark.skipif(GPU_FAISS, reason="faiss here is a GPU build that sees a GPU")
@pytest.mark.parametrize("spec", ["Flat", "IVF16,Flat", "HNSW32,Flat"])
def test_a_cpu_faiss_build_searches_on_the_cpu(
    spec: str, data: tuple[np.ndarray, np.ndarray], device: None
) -> None:
    ids, vectors = data
    faiss_index.use_device("cuda")
    index = FaissIndex.build(IndexConfig(backend="faiss", spec=spec), DIM)
    index.add(ids, vectors)
    _, found = index.search(vectors[:5], 1, SearchParams(nprobe=16))
    assert found[:, 0].tolist() == ids[:5].tolist()
    assert index.search_device == "cpu"
    assert index._gpu_index is None


def test_the_cpu_setting_keeps_every_index_on_the_cpu(
    data: tuple[np.ndarray, np.ndarray], device: None
) -> None:
    ids, vectors = data
    faiss_index.use_device("cpu")
    config = IndexConfig(backend="faiss", spec="Flat")
    index = backend_for(config).create(config, DIM)
    index.add(ids[:100], vectors[:100])
    index.search(vectors[:2], 3, SearchParams())
    assert index.search_device == "cpu"  # read through the deduplicating wrapper


@pytest.mark.skipif(not GPU_FAISS, reason="needs a GPU build of faiss and a GPU")
@pytest.mark.parametrize("spec", ["Flat", "IVF16,Flat", "IVF16,PQ8", "IVF16,SQ8"])
def test_the_gpu_copy_answers_as_the_cpu_index_does(
    spec: str, data: tuple[np.ndarray, np.ndarray], device: None, tmp_path: Path
) -> None:
    ids, vectors = data
    config = IndexConfig(backend="faiss", spec=spec)
    queries = vectors[:40] + 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    params = SearchParams(nprobe=8) if spec != "Flat" else SearchParams()

    faiss_index.use_device("cpu")
    on_cpu = FaissIndex.build(config, DIM)
    on_cpu.add(ids, vectors)
    save_snapshot(on_cpu, tmp_path / "snap", model_id="m", max_id=int(ids.max()))
    _, expected = on_cpu.search(queries, 10, params)

    faiss_index.use_device("auto")
    loaded = load_snapshot(tmp_path / "snap", config, DIM, "m")
    assert loaded is not None
    index = loaded[0]
    assert index.search_device == "cuda:0"
    _, found = index.search(queries, 10, params)
    assert index.inner._gpu_index is not None  # type: ignore[attr-defined]
    # The same codes searched on another device: equal up to float ties.
    assert recall(found, expected) >= 0.95

    # An add reaches the copy; a removal drops it, and the next search copies again.
    new_id = np.array([10**9], dtype=np.int64)
    index.add(new_id, queries[:1])
    assert index.inner._gpu_index is not None  # type: ignore[attr-defined]
    _, top = index.search(queries[:1], 10, params)
    assert 10**9 in top[0].tolist()
    index.remove(new_id)
    assert index.inner._gpu_index is None  # type: ignore[attr-defined]
    _, top = index.search(queries[:1], 10, params)
    assert 10**9 not in top[0].tolist()
    assert index.inner._gpu_index is not None  # type: ignore[attr-defined]

    # A filtered search is answered by the CPU index, with its id selector.
    allowed = ids[1000:1003]
    _, filtered = index.search(queries[:1], 3, params, allowed=allowed)
    assert set(filtered[0][filtered[0] >= 0].tolist()) <= set(allowed.tolist())
