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
