"""Embedding backends, one small module each; `load_backend` picks one by name.

| name | runs | vectors |
| auto | openvino on the cpu, torch where CUDA is present (see `resolve_backend`) | as those |
| torch | sentence-transformers (cpu/cuda) | the reference |
| onnx | onnxruntime, fp32 graph exported with torch.onnx | same model (cosine 1.0) |
| onnx-int8 | onnxruntime, dynamic int8 quantisation of that graph | a lossy variant |
| openvino | OpenVINO CPU, bf16 where the CPU has it (else f32) | same model (cos > 0.9999) |
| openvino-f32 | OpenVINO CPU, f32 | same model |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
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


AUTO = "auto"


def _nvidia_device_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def resolve_backend(name: str, device: str) -> str:
    """The backend `name` stands for: itself, or for "auto" OpenVINO on the cpu and torch where
    CUDA is present (checked without importing torch where no NVIDIA device exists)."""
    check_backend(name)
    if name != AUTO:
        return name
    if device == "cpu":
        return "openvino"
    if device == "cuda" or device.startswith("cuda:"):
        return "torch"
    if not _nvidia_device_present():
        return "openvino"
    from appliance.embedding.backends.torch_backend import pick_device

    return "torch" if pick_device("auto") == "cuda" else "openvino"


def query_batch_workers_for(backend: str) -> int:
    """How many workers should embed batches of concurrent queries on `backend`. OpenVINO is
    compiled with one stream: it runs one inference at a time on every core, so a second worker
    only splits the queue into two smaller batches that wait on each other. Measured at 32
    connections, four runs each: hybrid 274-349 req/s with one worker against 258-307 with
    two, dense 347-415 against 310-365, p99/p50 1.4-1.7 against 1.6-1.9. Torch (one thread a
    pass) and onnxruntime run passes side by side: two."""
    return 1 if backend == "openvino" else 2


def export_is_ready(name: str, model: LocalModel, export_dir: Path) -> bool:
    """Whether backend `name` can load `model` without exporting it first."""
    if name in ("openvino", "openvino-f32"):
        from appliance.embedding.backends.export_cache import export_path, is_valid
        from appliance.embedding.backends.openvino_backend import IR_RECIPE

        directory = export_path(export_dir, model.fingerprint, "openvino")
        return is_valid(directory, model.fingerprint, "openvino", IR_RECIPE)
    # torch needs no export; onnx exports on load (auto never picks it).
    return name == "torch"


def load_backend(
    name: str,
    model: LocalModel,
    *,
    device: str,
    threads: int | None,
    export_dir: Path,
    fixed_lengths: Sequence[int] = (),
) -> EmbeddingBackend:
    """Load backend `name` for `model`, exporting it into `export_dir` on first use.
    `fixed_lengths`: OpenVINO's one-text graphs (see fixed_lengths.py); others ignore it."""
    name = resolve_backend(name, device)
    if name == "torch":
        from appliance.embedding.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=device, threads=threads)
    if device not in ("auto", "cpu"):
        raise InvalidConfig(f"embedding backend {name!r} runs on the cpu only, not {device!r}")
    if name in ("onnx", "onnx-int8"):
        from appliance.embedding.backends.onnx_backend import OnnxBackend

        return OnnxBackend(model, export_dir, int8=name == "onnx-int8", threads=threads)
    from appliance.embedding.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(
        model,
        export_dir,
        bf16=name == "openvino",
        threads=threads,
        fixed_lengths=fixed_lengths,
    )


__all__ = [
    "AUTO",
    "BACKENDS",
    "EmbeddingBackend",
    "UnknownBackend",
    "check_backend",
    "export_is_ready",
    "load_backend",
    "resolve_backend",
]
