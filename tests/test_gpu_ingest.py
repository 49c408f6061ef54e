"""benchmarks/gpu_ingest.py, the CUDA-against-CPU ingest run for a lent GPU machine (issue 12
item 9), and its kit (benchmarks/gpu_kit.py): here on the CPU, with a tiny model and a corpus
of 40 documents, as the machine would run it without CUDA. The real kit (`make device-kit`)
only in the slow suite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from benchmarks import gpu_ingest, gpu_kit
from tests.tiny_models import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "appliance" / "sample" / "python-stdlib.jsonl"


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def tiny_kit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A kit of a tiny model and 40 sample documents (BEIR layout), and the model packed."""
    base = tmp_path_factory.mktemp("gpu-kit")
    corpus = base / "corpus"
    corpus.mkdir()
    lines = SAMPLE.read_text().splitlines()[:40]
    (corpus / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    queries = [
        {"_id": str(n), "text": json.loads(line)["text"][:40]} for n, line in enumerate(lines[:10])
    ]
    (corpus / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    model = build_tiny_model(base / "tiny")
    kit = base / "kit"
    gpu_kit.build(kit, corpus, model=model, check=False)
    return kit, model


def test_the_kit_carries_float16_and_restores_float32_weights(
    tiny_kit: tuple[Path, Path], tmp_path: Path
) -> None:
    kit, model = tiny_kit
    packed = kit / "model" / gpu_kit.MODEL_NAME
    assert (packed / gpu_kit.PACKED_WEIGHTS).is_file()
    assert not (packed / gpu_kit.WEIGHTS).exists()
    restored = gpu_kit.unpack_model(kit, tmp_path)
    original, back = (
        load_file(str(model / "model.safetensors")),
        load_file(str(restored / "model.safetensors")),
    )
    assert set(original) == set(back)
    for name, array in original.items():
        assert back[name].dtype == array.dtype, name
        # float16 keeps ~3 significant digits: the cast is the only change.
        np.testing.assert_allclose(back[name], array, rtol=1e-3, atol=1e-4)
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        p.name for p in model.iterdir() if p.name not in {"README.md", ".gitattributes"}
    )


def test_a_kit_that_does_not_match_its_manifest_is_refused(
    tiny_kit: tuple[Path, Path], tmp_path: Path
) -> None:
    kit, _ = tiny_kit
    copy = tmp_path / "kit"
    shutil.copytree(kit, copy)
    manifest = gpu_kit.read_manifest(copy)
    manifest["model"]["packed_sha256"] = "0" * 64
    (copy / gpu_kit.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="does not match"):
        gpu_kit.unpack_model(copy, tmp_path / "out")


def test_a_cpu_fallback_is_not_counted_as_cuda() -> None:
    assert gpu_ingest.runs_on({"parameter_device": "cuda:0"}, "cuda")
    assert not gpu_ingest.runs_on({"parameter_device": "cpu"}, "cuda")
    assert not gpu_ingest.runs_on({"parameter_device": None}, "cuda")


@pytest.mark.skipif(_cuda(), reason="checks the run on a machine without CUDA")
def test_without_cuda_it_says_so_runs_the_cpu_part_and_fails_unless_allowed(
    tiny_kit: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit, _ = tiny_kit
    common = ["--kit", str(kit), "--out", str(tmp_path), "--queries", "10", "--warmup", "2"]
    assert gpu_ingest.main([*common, "--allow-cpu-only", "--upsert-batch", "16"]) == 0
    assert "no CUDA device" in capsys.readouterr().err
    summary = json.loads((tmp_path / "gpu_ingest.json").read_text())
    assert summary["verdict"] == "no CUDA device"
    assert summary["cuda"] is None and summary["ratios"] is None
    cpu = summary["cpu"]
    assert cpu["docs"] == 40 and cpu["docs_per_s"] > 0 and cpu["vectors"] >= 40
    assert cpu["encoder"]["parameter_device"] == "cpu"
    assert cpu["encoder"]["backend"] == "torch"
    assert cpu["query"]["queries"] == 10 and cpu["query"]["collection_docs"] == 40
    assert cpu["query"]["p50_ms"] > 0
    # Without --allow-cpu-only a run with no CUDA is a failed device check.
    assert gpu_ingest.main([*common, "--cpu-docs", "5", "--queries", "2"]) == (
        gpu_ingest.NO_CUDA_EXIT
    )


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".devkit" / "manifest.json").is_file(), reason="make device-kit")
@pytest.mark.skipif(_cuda(), reason="checks the run on a machine without CUDA")
def test_the_real_kit_runs_on_the_cpu(tmp_path: Path) -> None:
    """The kit `make device-kit` built: the real model, cast back, on 40 SciFact documents."""
    argv = ["--kit", str(ROOT / ".devkit"), "--out", str(tmp_path), "--allow-cpu-only"]
    assert gpu_ingest.main([*argv, "--limit-docs", "40", "--queries", "10"]) == 0
    summary = json.loads((tmp_path / "gpu_ingest.json").read_text())
    assert summary["cpu"]["docs"] == 40
    assert summary["model"]["cast_vs_original"]["min_cosine"] > 0.9999


def test_the_cuda_branch_runs_with_the_cpu_standing_in(
    tiny_kit: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The branch only a GPU machine takes, walked here so that the one device call does not
    find its bugs: several CUDA batch sizes, the same-documents ratio, the query timings on
    the whole corpus's collection reopened with the CPU encoder, the vector agreement."""
    kit, _ = tiny_kit
    real = gpu_ingest.environment
    monkeypatch.setattr(gpu_ingest, "environment", lambda: {**real(), "cuda_available": True})
    monkeypatch.setattr(gpu_ingest, "ACCELERATOR", "cpu")
    argv = ["--kit", str(kit), "--out", str(tmp_path), "--queries", "5", "--warmup", "1"]
    argv += ["--cpu-docs", "16", "--upsert-batch", "8", "--cuda-batch-sizes", "16,32"]
    assert gpu_ingest.main([*argv, "--embed-batch-size", "16"]) == 0
    summary = json.loads((tmp_path / "gpu_ingest.json").read_text())
    assert summary["verdict"] == "ok"
    runs = summary["cuda"]
    assert [run["embed_batch_size"] for run in runs] == [16, 32]
    assert all(run["docs"] == 40 and run["first_docs"] == 16 for run in runs)
    assert "query" in runs[0] and "query" not in runs[1]
    # The CPU's query timings are on the same 40-document collection as the "CUDA" ones.
    assert summary["cpu"]["docs"] == 16
    assert summary["cpu"]["query"]["collection_docs"] == 40
    assert set(summary["ratios"]) == {
        "ingest_same_docs_cuda_over_cpu",
        "ingest_best_cuda_whole_corpus_over_cpu",
        "query_p50_cpu_over_cuda",
    }
    assert summary["cuda_vs_cpu_vectors"]["min_cosine"] > 0.9999
