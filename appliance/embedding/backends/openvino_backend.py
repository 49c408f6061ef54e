"""OpenVINO on the cpu: the ONNX export read by OpenVINO's runtime and saved as IR, inferred in
bf16 where the CPU has bf16 instructions (f32 otherwise), or in f32 on request. One text at a
time goes through a graph compiled for a fixed length where one holds it (fixed_lengths.py);
batches go through the graph compiled for any shape.

OpenVINO's telemetry is off: the package `appliance.embedding.backends` makes
openvino_telemetry unimportable before this module imports openvino. The model is converted
with the runtime's own ONNX reader (Core.read_model), never the telemetry-sending tool (ovc).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino

from appliance.embedding.backends.export_cache import ensure_export
from appliance.embedding.backends.fixed_lengths import FixedLengths, RequestPool
from appliance.embedding.backends.layout import read_layout
from appliance.embedding.backends.onnx_export import ONNX_FILE, ONNX_RECIPE, export_onnx
from appliance.embedding.backends.runtime import RuntimeBackend
from appliance.models.registry import LocalModel

IR_FILE = "model.xml"
IR_RECIPE = f"{ONNX_RECIPE}; openvino read_model + save_model f32 weights"


def build_ir(model_dir: Path, target_dir: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target_dir.parent) as scratch:
        onnx_file = export_onnx(model_dir, Path(scratch) / ONNX_FILE)
        graph = openvino.Core().read_model(str(onnx_file))
        # Weights stay f32 on disk: the precision is chosen when the model is compiled.
        openvino.save_model(graph, str(target_dir / IR_FILE), compress_to_fp16=False)


def cpu_has_bf16(core: openvino.Core) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoBackend(RuntimeBackend):
    def __init__(
        self,
        model: LocalModel,
        export_dir: Path,
        *,
        bf16: bool,
        threads: int | None,
        fixed_lengths: Sequence[int] = (),
    ) -> None:
        """`fixed_lengths`: token lengths to compile one-text graphs for (none: every text
        takes the dynamic graph)."""
        layout = read_layout(model.directory)
        directory = ensure_export(
            export_dir,
            model.fingerprint,
            "openvino",
            IR_RECIPE,
            lambda target: build_ir(model.directory, target),
        )
        core = openvino.Core()
        self.precision = "bf16" if bf16 and cpu_has_bf16(core) else "f32"
        config: dict[str, str | int] = {
            "INFERENCE_PRECISION_HINT": self.precision,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(directory / IR_FILE), "CPU", config)
        self._dynamic = RequestPool(self.compiled)
        super().__init__(layout, self._run)
        usable = [length for length in fixed_lengths if length <= layout.max_seq_length]
        self.fixed = FixedLengths(core, directory / IR_FILE, config, usable, self._pad_id)

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        return self.fixed.wait_until_compiled(timeout)

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        hidden = self.fixed.infer(ids, mask, types)
        if hidden is not None:
            return hidden
        return self._dynamic.infer(
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
