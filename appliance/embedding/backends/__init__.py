"""Embedding backends, one small module each; `load_backend` picks one by name.

| name | runs | vectors |
| torch | sentence-transformers (cpu/cuda) | the reference |
| onnx | onnxruntime, fp32 graph exported with torch.onnx | same model (cosine 1.0) |
| onnx-int8 | onnxruntime, dynamic int8 quantisation of that graph | a lossy variant |
| openvino | OpenVINO CPU, bf16 where the CPU has it (else f32) | same model (cos > 0.9999) |
| openvino-f32 | OpenVINO CPU, f32 | same model |
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
# `import openvino` (by us or by any library in this process) imports its conversion tool,
# which sends usage events to Intel from a child process unless a consent file says no. With
# openvino_telemetry unimportable, openvino falls back to its built-in no-op stub.
if "openvino_telemetry" not in sys.modules:
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    sys.modules["openvino_telemetry.backend"] = None  # type: ignore[assignment]

from appliance.config import EMBEDDING_BACKENDS
from appliance.embedding.backends.base import EmbeddingBackend
from appliance.errors import InvalidConfig
from appliance.models.registry import LocalModel

BACKENDS = EMBEDDING_BACKENDS


class UnknownBackend(InvalidConfig):
    code = "unknown_backend"


# The backend that makes each lossy variant (the `+variant` in a model id).
VARIANT_BACKENDS = {"int8": "onnx-int8"}


def backend_for_variant(variant: str) -> str:
    backend = VARIANT_BACKENDS.get(variant)
    if backend is None:
        raise UnknownBackend(
            f"no embedding backend makes the model variant {variant!r} "
            f"(known: {', '.join(VARIANT_BACKENDS)})"
        )
    return backend


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise UnknownBackend(
            f"unknown embedding backend {name!r}: choose one of {', '.join(BACKENDS)}"
        )
    return name


def load_backend(
    name: str,
    model: LocalModel,
    *,
    device: str,
    threads: int | None,
    export_dir: Path,
) -> EmbeddingBackend:
    """Load backend `name` for `model`, exporting it into `export_dir` on first use."""
    check_backend(name)
    if name == "torch":
        from appliance.embedding.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=device, threads=threads)
    if device not in ("auto", "cpu"):
        raise InvalidConfig(f"embedding backend {name!r} runs on the cpu only, not {device!r}")
    if name in ("onnx", "onnx-int8"):
        from appliance.embedding.backends.onnx_backend import OnnxBackend

        return OnnxBackend(model, export_dir, int8=name == "onnx-int8", threads=threads)
    from appliance.embedding.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(model, export_dir, bf16=name == "openvino", threads=threads)


__all__ = ["BACKENDS", "EmbeddingBackend", "UnknownBackend", "check_backend", "load_backend"]
