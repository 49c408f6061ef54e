"""One-text passes through OpenVINO graphs compiled for a few fixed lengths.

A graph compiled with dynamic shapes pays, on every inference, for shape inference and for
re-preparing its nodes when the length changes: measured on the 2-core box (MiniLM-L6, bf16,
one thread, SciFact and NFCorpus queries), about 1.5 ms of a 5.4 ms query. The same graph
compiled for a fixed [1, L] shape pays about 0.03 ms, and a text padded to the next fixed
length costs about 0.13 ms a padding token. Lengths 8 apart up to 64 took a lone query's
inference from 4.9 to 3.2 ms p50 (one thread) and from 4.3 to 3.0 ms (two threads).

The padding changes nothing a caller sees: padded positions are masked out of attention and of
the mean, and the output is cut back to the text's own width (cosine 0.99999 against the
dynamic graph). Each fixed length is its own compiled graph, with its own repacked copy of the
weights: 55-85 MiB each for MiniLM-L6. They are compiled in a background thread after the
backend loads; until a length is ready, its texts take the dynamic graph. A process that
exits meanwhile (a one-shot CLI command) first lets the length being compiled finish and
compiles no more: exiting while OpenVINO compiles on another thread aborts the process.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino

log = logging.getLogger(__name__)


class RequestPool:
    """Infer requests of one compiled graph, reused (creating one costs about as much as a
    short query); one per concurrent caller, as the Encoder may be called from several
    threads."""

    def __init__(self, compiled: openvino.CompiledModel) -> None:
        self.compiled = compiled
        self._idle: queue.SimpleQueue[openvino.InferRequest] = queue.SimpleQueue()

    def infer(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            # Copied: the request's output buffer is reused by its next inference.
            return np.array(request.infer(feeds)[0], copy=True)
        finally:
            self._idle.put(request)


class FixedLengths:
    """Graphs for one text of at most each of `lengths` tokens, compiled in the background."""

    def __init__(
        self,
        core: openvino.Core,
        model_file: Path,
        config: dict[str, Any],
        lengths: Sequence[int],
        pad_id: int,
    ) -> None:
        self.lengths = sorted({int(length) for length in lengths if length > 0})
        self._pad_id = pad_id
        self._pools: dict[int, RequestPool] = {}
        self._compiled = threading.Event()
        if not self.lengths:
            self._compiled.set()
            return
        stop, compiled = threading.Event(), self._compiled

        def finish_at_exit() -> None:
            # Holds the two events only, never the graphs, so a dropped backend is freed.
            stop.set()
            compiled.wait()

        atexit.register(finish_at_exit)
        threading.Thread(
            target=self._compile_all,
            args=(core, model_file, config, stop),
            name="openvino-fixed-lengths",
            daemon=True,
        ).start()

    def _compile_all(
        self,
        core: openvino.Core,
        model_file: Path,
        config: dict[str, Any],
        stop: threading.Event,
    ) -> None:
        try:
            graph = core.read_model(str(model_file))
            names = [port.get_any_name() for port in graph.inputs]
            for length in self.lengths:
                if stop.is_set():
                    break
                shaped = graph.clone()
                shaped.reshape({name: [1, length] for name in names})
                self._pools[length] = RequestPool(core.compile_model(shaped, "CPU", config))
        except Exception:  # the dynamic graph answers every length; say why once
            log.exception("could not compile fixed-length graphs: every text takes the dynamic one")
        finally:
            self._compiled.set()

    def wait_until_compiled(self, timeout: float | None = None) -> bool:
        return self._compiled.wait(timeout)

    @property
    def ready_lengths(self) -> list[int]:
        return sorted(self._pools)

    def infer(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray | None:
        """The hidden states of one text through the shortest fixed length that holds it, cut
        to the text's width; None where none holds it or that length is not compiled yet (a
        longer one would pad more than the dynamic graph costs)."""
        rows, width = ids.shape
        if rows != 1:
            return None
        length = next((length for length in self.lengths if length >= width), None)
        if length is None:
            return None
        pool = self._pools.get(length)
        if pool is None:
            return None
        feeds = {
            "input_ids": _right_padded(ids, length, self._pad_id),
            "attention_mask": _right_padded(mask, length, 0),
            "token_type_ids": _right_padded(types, length, 0),
        }
        return pool.infer(feeds)[:, :width]


def _right_padded(row: np.ndarray, length: int, value: int) -> np.ndarray:
    """`row` (1, width) padded on the right to (1, length) with `value`. Not `np.pad`: its
    generality costs 24 µs a call here, three calls a query, against under 1 µs."""
    padded = np.full((1, length), value, dtype=row.dtype)
    padded[:, : row.shape[1]] = row
    return padded
