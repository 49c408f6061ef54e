"""The exported embedding backends (onnxruntime, OpenVINO) against the torch reference: same
vectors on real texts, exports made once and reused, chosen by settings, nothing fetched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import load_settings
from appliance.embedding.backends import UnknownBackend, export_cache
from appliance.embedding.backends.fixed_lengths import FixedLengths, RequestPool
from appliance.embedding.backends.openvino_backend import OpenVinoBackend
from appliance.embedding.encoder import Encoder
from appliance.errors import InvalidConfig
from appliance.ingest.sample import SAMPLE_CORPUS
from appliance.models.registry import LocalModel, ModelRegistry
from appliance.service import Appliance
from tests.network_guard import NETWORK_GUARD

SAMPLE = SAMPLE_CORPUS


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return ModelRegistry().resolve("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = SAMPLE.read_text().splitlines()
    # Every 9th document: modules, classes and functions, short and long, plus edge cases.
    sample = [json.loads(line)["text"] for line in lines[::9]]
    return [*sample, "x", "Ünïcödé façade — naïve café", "word " * 400]


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def reference(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return encoder.encode(texts)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_backend_gives_torchs_vectors(
    backend: str,
    model: LocalModel,
    export_root: Path,
    encoder: Encoder,
    texts: list[str],
    reference: np.ndarray,
) -> None:
    fast = Encoder(model, backend=backend, batch_size=16, threads=1, export_dir=export_root)
    vectors = fast.encode(texts)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(vectors, reference).min() >= 0.9999
    # Neighbours of each text among the others are torch's.
    for row in range(0, len(texts), 7):
        fast_top = np.argsort(-(vectors @ vectors[row]))[:5]
        torch_top = np.argsort(-(reference @ reference[row]))[:5]
        assert len(set(fast_top) & set(torch_top)) >= 4
    # Numerically the same model: same id and fingerprint, so a collection or cache is shared.
    assert (fast.model_id, fast.fingerprint) == (encoder.model_id, encoder.fingerprint)
    assert (fast.dimension, fast.max_seq_length) == (encoder.dimension, encoder.max_seq_length)
    assert fast.max_chunk_tokens == encoder.max_chunk_tokens
    assert fast.count_tokens(texts) == encoder.count_tokens(texts)
    assert fast.token_offsets(texts[:5]) == encoder.token_offsets(texts[:5])
    assert (fast.texts_encoded, fast.tokens_encoded) == (len(texts), encoder.count_tokens(texts))
    assert fast.compute_seconds > 0
    assert fast.encode([]).shape == (0, encoder.dimension)
    fast.batch_size = 3  # batches of any size give the same vectors
    assert _cosines(fast.encode(texts[:7]), reference[:7]).min() >= 0.9999


class ShapeRecorder:
    """Stands in for a backend's dynamic-graph request pool: records the shape of each pass
    it is given, then runs it through the real pool."""

    def __init__(self, pool: RequestPool) -> None:
        self.pool = pool
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.shapes.append(feeds["input_ids"].shape)
        return self.pool.infer(feeds)


def test_a_lone_text_takes_the_fixed_length_graph_and_gets_torchs_vector(
    model: LocalModel, export_root: Path, texts: list[str], reference: np.ndarray
) -> None:
    fast = Encoder(
        model, backend="openvino", threads=1, export_dir=export_root, fixed_lengths=(8, 32)
    )
    assert fast.wait_until_settled(timeout=120)
    backend = fast._backend
    assert isinstance(backend, OpenVinoBackend)
    assert backend.fixed.ready_lengths == [8, 32]
    dynamic = ShapeRecorder(backend._dynamic)
    backend._dynamic = dynamic  # type: ignore[assignment]
    lengths = [fast.read_tokens(length) for length in fast.token_lengths(texts)]
    one_by_one = np.vstack([fast.encode([text]) for text in texts])
    assert _cosines(one_by_one, reference).min() >= 0.9999
    # Texts of at most 32 tokens never reached the dynamic graph; longer ones did, unpadded.
    assert sorted(width for _, width in dynamic.shapes) == sorted(
        length for length in lengths if length > 32
    )
    assert any(length <= 8 for length in lengths) and any(8 < n <= 32 for n in lengths)
    # A pass of several texts takes the dynamic graph (the planner may still give a text a
    # pass of its own, which takes a fixed length where one holds it).
    dynamic.shapes.clear()
    assert _cosines(fast.encode(texts[:8]), reference[:8]).min() >= 0.9999
    assert any(rows > 1 for rows, _ in dynamic.shapes)
    assert all(rows > 1 or width > 32 for rows, width in dynamic.shapes)


def test_fixed_lengths_that_cannot_compile_leave_every_text_to_the_dynamic_graph(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import openvino

    fixed = FixedLengths(openvino.Core(), tmp_path / "missing.xml", {}, [16], pad_id=0)
    assert fixed.wait_until_compiled(timeout=60)
    assert fixed.ready_lengths == []
    ids = np.ones((1, 5), dtype=np.int64)
    assert fixed.infer(ids, ids, np.zeros_like(ids)) is None
    assert "could not compile fixed-length graphs" in caplog.text


EXIT_DURING_COMPILE = r"""
import sys
from pathlib import Path
from appliance.embedding.encoder import Encoder
from appliance.models.registry import ModelRegistry

model = ModelRegistry().resolve("all-MiniLM-L6-v2")
encoder = Encoder(model, backend="openvino", threads=1, export_dir=Path(sys.argv[1]),
                  fixed_lengths=range(8, 257, 8))
encoder.encode(["one query, then the process ends"])
print("done")
"""


def test_a_process_that_exits_while_lengths_compile_exits_cleanly(export_root: Path) -> None:
    # Exiting while OpenVINO compiled on a daemon thread aborted the process ("terminate
    # called without an active exception", exit code 134): a one-shot CLI search failed.
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, "-c", EXIT_DURING_COMPILE, str(export_root)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert completed.stdout.strip() == "done"
        assert "terminate called" not in completed.stderr


def test_openvino_fixed_lengths_setting_reads_a_list_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPLIANCE_OPENVINO_FIXED_LENGTHS", "8, 24")
    assert load_settings(Path("/nonexistent.toml")).openvino_fixed_lengths == (8, 24)
    monkeypatch.setenv("APPLIANCE_OPENVINO_FIXED_LENGTHS", "")
    assert load_settings(Path("/nonexistent.toml")).openvino_fixed_lengths == ()
    monkeypatch.setenv("APPLIANCE_OPENVINO_FIXED_LENGTHS", "16,0")
    with pytest.raises(InvalidConfig, match="openvino_fixed_lengths must be token lengths"):
        load_settings(Path("/nonexistent.toml"))


def test_int8_is_a_distinct_model_with_close_vectors(
    model: LocalModel, export_root: Path, encoder: Encoder, texts: list[str], reference: np.ndarray
) -> None:
    int8 = Encoder(model, backend="onnx-int8", batch_size=16, threads=1, export_dir=export_root)
    vectors = int8.encode(texts)
    cosines = _cosines(vectors, reference)
    # Per-channel int8 measured 0.993 mean here (per-tensor: 0.959).
    assert cosines.mean() > 0.985 and cosines.min() > 0.95
    # Lossy: its vectors must never share an index or an embedding-cache entry with torch's.
    assert int8.model_id != encoder.model_id and int8.fingerprint != encoder.fingerprint
    assert int8.model_id.startswith("all-MiniLM-L6-v2+int8@")


def test_second_load_reuses_the_export(
    model: LocalModel, export_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Encoder(model, backend="onnx", threads=1, export_dir=export_root)
    directory = export_cache.export_path(export_root, model.fingerprint, "onnx")
    manifest = directory / export_cache.MANIFEST
    stamp = manifest.stat().st_mtime_ns

    def no_export(*_args: object) -> Path:
        raise AssertionError("exported again")

    monkeypatch.setattr("appliance.embedding.backends.onnx_backend.export_onnx", no_export)
    second = Encoder(model, backend="onnx", threads=1, export_dir=export_root)
    assert manifest.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.encode(["reuse"]), first.encode(["reuse"]))
    assert not [p for p in export_root.iterdir() if p.name.startswith(".tmp-")]


def test_export_cache_builds_once_and_rebuilds_altered_files(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(target: Path) -> None:
        builds.append(target)
        (target / "model.bin").write_bytes(b"weights")

    first = export_cache.ensure_export(tmp_path, "abc", "onnx", "v1", build)
    assert first == tmp_path / "abc-onnx" and (first / "model.bin").read_bytes() == b"weights"
    assert export_cache.ensure_export(tmp_path, "abc", "onnx", "v1", build) == first
    assert len(builds) == 1
    (first / "model.bin").write_bytes(b"tampered")
    assert not export_cache.is_valid(first, "abc", "onnx", "v1")
    export_cache.ensure_export(tmp_path, "abc", "onnx", "v1", build)
    assert len(builds) == 2 and (first / "model.bin").read_bytes() == b"weights"
    # Another backend, model or recipe never reuses this export.
    assert export_cache.is_valid(first, "abc", "onnx", "v1")
    assert not export_cache.is_valid(first, "abc", "openvino", "v1")
    assert not export_cache.is_valid(first, "abd", "onnx", "v1")
    export_cache.ensure_export(tmp_path, "abc", "onnx", "v2", build)
    assert len(builds) == 3 and export_cache.is_valid(first, "abc", "onnx", "v2")
    assert [p.name for p in tmp_path.iterdir()] == ["abc-onnx"]


def test_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    def build(target: Path) -> None:
        (target / "half.bin").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError):
        export_cache.ensure_export(tmp_path, "abc", "onnx", "v1", build)
    assert list(tmp_path.iterdir()) == []


def test_backend_comes_from_settings_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    none = Path("/nonexistent.toml")
    assert load_settings(none).backend_for("all-MiniLM-L6-v2") == "torch"
    monkeypatch.setenv("APPLIANCE_EMBEDDING_BACKEND", "openvino")
    assert load_settings(none).backend_for("all-MiniLM-L6-v2") == "openvino"
    table = {"all-MiniLM-L6-v2": "onnx"}
    settings = load_settings(none, embedding_backends=table)
    assert settings.backend_for("all-MiniLM-L6-v2") == "onnx"
    assert settings.backend_for("/models/other") == "openvino"


def test_appliance_embeds_with_the_configured_backend(
    model: LocalModel, export_root: Path, tmp_path: Path, reference: np.ndarray, texts: list[str]
) -> None:
    Encoder(model, backend="onnx", threads=1, export_dir=export_root)  # export made (or reused)
    data = tmp_path / "data"
    name = f"{model.fingerprint}-onnx"
    shutil.copytree(export_root / name, data / "models" / name)
    settings = load_settings(
        Path("/nonexistent.toml"),
        data_dir=str(data),
        load_sample=False,
        embedding_backends={"all-MiniLM-L6-v2": "onnx"},
    )
    appliance = Appliance(settings)
    try:
        assert appliance.encoder.backend_name == "onnx"
        assert _cosines(appliance.encoder.encode(texts[:3]), reference[:3]).min() >= 0.9999
    finally:
        appliance.close()


def test_unknown_backend_is_a_clear_error(model: LocalModel, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match=r"unknown embedding backend 'tensorrt'.*openvino"):
        load_settings(Path("/nonexistent.toml"), embedding_backend="tensorrt")
    with pytest.raises(InvalidConfig, match="unknown embedding backend 'tensorrt'"):
        load_settings(Path("/nonexistent.toml"), embedding_backends={"m": "tensorrt"})
    with pytest.raises(UnknownBackend, match="choose one of auto, torch, onnx"):
        Encoder(model, backend="tensorrt", export_dir=tmp_path)
    with pytest.raises(InvalidConfig, match="cpu only"):
        Encoder(model, backend="onnx", device="cuda", export_dir=tmp_path)
    result = CliRunner().invoke(main, ["eval", str(tmp_path), "--backend", "tensorrt"])
    assert result.exit_code == 2 and "tensorrt" in result.output


GUARD = (
    NETWORK_GUARD
    + r"""
import multiprocessing
from pathlib import Path

def start(self):  # openvino_telemetry sends from a child process
    attempts.append(["process", repr(self)])

multiprocessing.Process.start = start

from appliance.embedding.encoder import Encoder
from appliance.models.registry import ModelRegistry
import os

model = ModelRegistry().resolve("all-MiniLM-L6-v2")
vectors = Encoder(model, backend=sys.argv[2], threads=1, export_dir=Path(sys.argv[1])).encode(
    ["no network needed"])
print(json.dumps({
    "attempts": attempts,
    "offline": os.environ.get("HF_HUB_OFFLINE"),
    "openvino_imported": "openvino" in sys.modules,
    "telemetry": getattr(sys.modules.get("openvino.tools.ovc.telemetry_utils"), "tm", sys).__name__,
    "norm": float((vectors ** 2).sum()),
}))
"""
)


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_export_and_inference_stay_offline(
    backend: str, tmp_path: Path, model: LocalModel, export_root: Path
) -> None:
    """With HF_HUB_OFFLINE unset by the caller: a fresh export (ONNX, then OpenVINO IR) and an
    OpenVINO inference, or an onnxruntime inference; the hub is offline anyway, OpenVINO's
    telemetry is its no-op stub, and nothing calls out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["APPLIANCE_CONFIG"] = str(tmp_path / "none.toml")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    if backend == "onnx":
        Encoder(model, backend="onnx", threads=1, export_dir=export_root)  # made or reused
        exports = export_root
    else:
        exports = tmp_path / "exports"
    command = [sys.executable, "-c", GUARD, str(exports), backend]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=True
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["offline"] == "1"
    if backend == "openvino":
        assert report["openvino_imported"]
        assert report["telemetry"].endswith("telemetry_stub")
    assert abs(report["norm"] - 1.0) < 1e-4


def test_models_export_verb_reuses_a_verified_export(
    model: LocalModel, export_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Encoder(model, backend="onnx", threads=1, export_dir=export_root)  # made or reused
    data = tmp_path / "data"
    name = f"{model.fingerprint}-onnx"
    shutil.copytree(export_root / name, data / "models" / name)

    def no_export(*_args: object) -> Path:
        raise AssertionError("exported again")

    monkeypatch.setattr("appliance.embedding.backends.onnx_backend.export_onnx", no_export)
    result = CliRunner().invoke(
        main, ["models", "export", "--backend", "onnx", "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert f"ok: {model.model_id} (onnx)" in result.output


PROBE = r"""
import sys
from pathlib import Path
from appliance.embedding.encoder import Encoder
from appliance.models.registry import ModelRegistry

model = ModelRegistry().resolve("all-MiniLM-L6-v2")
for backend in ("onnx", "openvino"):
    encoder = Encoder(model, backend=backend, threads=1, export_dir=Path(sys.argv[1]))
    for _ in range(10):
        encoder.encode(["an offline query", "and a longer passage " * 20])
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_native_code_makes_no_network_syscall(
    tmp_path: Path, model: LocalModel, export_root: Path
) -> None:
    """Telemetry in native code (onnxruntime's 1DS client) bypasses Python's socket module:
    trace the system calls of the whole process tree instead."""
    for backend in ("onnx", "openvino"):
        Encoder(model, backend=backend, threads=1, export_dir=export_root)  # made or reused
    if subprocess.run(["strace", "-o", os.devnull, "true"], check=False).returncode != 0:
        pytest.skip("strace cannot trace here (ptrace not permitted)")
    unset = ("HF_HUB_OFFLINE", "ORT_DISABLE_TELEMETRY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    trace = tmp_path / "trace.txt"
    command = ["strace", "-f", "-qq", "-e", "trace=socket,connect", "-o", str(trace)]
    command += [sys.executable, "-c", PROBE, str(export_root)]
    subprocess.run(command, env=env, capture_output=True, timeout=300, check=True)
    # A DNS lookup or a connection starts with an AF_INET/AF_INET6 socket; local services
    # (nscd) use AF_UNIX. Before ORT_DISABLE_TELEMETRY, onnxruntime made UDP sockets for DNS.
    lines = trace.read_text().splitlines()
    assert [line for line in lines if "AF_INET" in line] == []


def test_backend_flag_wins_over_the_configuration(tmp_path: Path) -> None:
    from appliance.cli.base import settings_from as _settings

    config = tmp_path / "appliance.toml"
    config.write_text(
        'embedding_backend = "onnx"\n[embedding_backends]\n"all-MiniLM-L6-v2" = "onnx"\n'
    )
    ctx = click.Context(main, obj={"config": config})
    assert _settings(ctx).backend_for("all-MiniLM-L6-v2") == "onnx"
    assert _settings(ctx, "openvino").backend_for("all-MiniLM-L6-v2") == "openvino"


def test_openvino_reused_requests_are_safe_across_threads(
    model: LocalModel, export_root: Path, texts: list[str]
) -> None:
    """Infer requests are pooled; callers running at once must each get their own answer."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = Encoder(model, device="cpu", backend="openvino", export_dir=export_root)
    alone = [encoder.encode([text])[0] for text in texts[:24]]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda text: encoder.encode([text])[0], texts[:24]))
    for one, other in zip(alone, together, strict=True):
        assert float(one @ other) > 0.9999
