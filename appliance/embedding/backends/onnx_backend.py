"""onnxruntime on the cpu, over the fp32 ONNX export or its int8 quantisation."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime

from appliance.embedding.backends.export_cache import ensure_export
from appliance.embedding.backends.layout import read_layout
from appliance.embedding.backends.onnx_export import (
    INT8_RECIPE,
    ONNX_FILE,
    ONNX_RECIPE,
    export_onnx,
    quantize_int8,
)
from appliance.embedding.backends.runtime import RuntimeBackend
from appliance.models.registry import LocalModel

# Nothing calls out. This call alone does not stop onnxruntime 1.32's DNS lookups of its events
# host (strace shows them); ORT_DISABLE_TELEMETRY=1, set in appliance/__init__.py before
# onnxruntime is imported, does. tests/test_embedding_backends.py checks with strace.
onnxruntime.disable_telemetry_events()


def build_onnx(model_dir: Path, target_dir: Path, *, int8: bool) -> None:
    if not int8:
        export_onnx(model_dir, target_dir / ONNX_FILE)
        return
    with tempfile.TemporaryDirectory(dir=target_dir.parent) as scratch:
        fp32 = export_onnx(model_dir, Path(scratch) / ONNX_FILE)
        quantize_int8(fp32, target_dir / ONNX_FILE)


class OnnxBackend(RuntimeBackend):
    def __init__(
        self,
        model: LocalModel,
        export_dir: Path,
        *,
        int8: bool,
        threads: int | None,
    ) -> None:
        layout = read_layout(model.directory)
        name = "onnx-int8" if int8 else "onnx"
        directory = ensure_export(
            export_dir,
            model.fingerprint,
            name,
            INT8_RECIPE if int8 else ONNX_RECIPE,
            lambda target: build_onnx(model.directory, target, int8=int8),
        )
        options = onnxruntime.SessionOptions()
        # 0 = onnxruntime's default: one thread per physical core.
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(directory / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.lossy_variant = "int8" if int8 else None
        super().__init__(layout, self._run)

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return np.asarray(self.session.run(None, feeds)[0])
