"""Embedding backend "auto", the default: OpenVINO on the cpu with torch's vectors; a first
start embeds with torch at once and switches once the export is made in the background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.config import load_settings
from appliance.embedding.backends import export_is_ready, resolve_backend
from appliance.embedding.encoder import Encoder
from appliance.models.registry import LocalModel, ModelRegistry

TEXTS = ["a dog barks at the mail carrier", "salmon swim upstream to spawn", "tea or coffee"]


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return ModelRegistry().resolve("all-MiniLM-L6-v2")


def test_auto_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLIANCE_EMBEDDING_BACKEND", raising=False)
    assert load_settings(Path("/nonexistent.toml")).embedding_backend == "auto"


def test_auto_means_openvino_on_the_cpu_and_torch_on_cuda() -> None:
    assert resolve_backend("auto", "cpu") == "openvino"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("onnx", "auto") == "onnx"


def test_first_start_serves_with_torch_then_switches_to_openvino(
    model: LocalModel, tmp_path: Path
) -> None:
    exports = tmp_path / "models"
    assert not export_is_ready("openvino", model, exports)
    encoder = Encoder(model, device="cpu", backend="auto", export_dir=exports)
    # Usable at once, on torch, while the export runs.
    before = encoder.encode(TEXTS)
    model_id = encoder.model_id
    assert encoder.wait_until_settled(timeout=300)
    assert encoder.backend_name == "openvino"
    assert export_is_ready("openvino", model, exports)
    after = encoder.encode(TEXTS)
    # Same model id, same vectors: nothing stored or cached has to change.
    assert encoder.model_id == model_id
    assert np.min(np.sum(before * after, axis=1)) >= 0.9999

    # The next start finds the export and starts on OpenVINO, no torch interlude.
    again = Encoder(model, device="cpu", backend="auto", export_dir=exports)
    assert again.backend_name == "openvino"
    assert again.wait_until_settled(timeout=0)


def test_exported_backends_take_runtime_threads_and_torch_its_own(
    model: LocalModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import appliance.embedding.encoder as encoder_module

    real = encoder_module.load_backend
    asked: list[tuple[str, int | None]] = []

    def recording(name: str, *args: object, threads: int | None, **kwargs: object) -> object:
        asked.append((name, threads))
        return real(name, *args, threads=threads, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encoder_module, "load_backend", recording)
    exports = tmp_path / "models"
    first = Encoder(
        model, device="cpu", backend="auto", threads=1, runtime_threads=0, export_dir=exports
    )
    assert first.wait_until_settled(timeout=300)
    # A first start serves on torch (its threads) and switches to OpenVINO (the runtime's).
    assert asked == [("torch", 1), ("openvino", 0)]
    asked.clear()
    Encoder(
        model, device="cpu", backend="openvino", threads=1, runtime_threads=0, export_dir=exports
    )
    Encoder(model, device="cpu", backend="openvino", threads=1, export_dir=exports)
    Encoder(model, device="cpu", backend="torch", threads=1, runtime_threads=0, export_dir=exports)
    assert asked == [("openvino", 0), ("openvino", 1), ("torch", 1)]
    # The setting's default: every core for the exported backends.
    assert load_settings(Path("/nonexistent.toml")).runtime_threads == 0
