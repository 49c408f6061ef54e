"""Shared fixtures for the benchmark suites (`make bench`), and the ratio report.

Every suite measures the appliance and its baseline in the same run, adjacent to each other,
records both medians with `record`, and the summary prints appliance-vs-baseline ratios.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Settings, load_settings
from appliance.embedding.encoder import Encoder
from appliance.ingest.pipeline import DocumentInput
from appliance.ingest.sample import SAMPLE_CORPUS
from appliance.ingest.sources import read_jsonl
from appliance.models.registry import ModelRegistry


@dataclass
class Pair:
    # "throughput": ratio = baseline time / appliance time (1.0 = as fast as the baseline).
    # "latency": ratio = appliance time / baseline time (1.0 = no added latency).
    kind: str
    target: float | None
    appliance: float | None = None
    baseline: float | None = None

    def ratio(self) -> float | None:
        if not self.appliance or not self.baseline:
            return None
        if self.kind == "throughput":
            return self.baseline / self.appliance
        return self.appliance / self.baseline

    def verdict(self) -> str:
        ratio = self.ratio()
        if ratio is None:
            return "incomplete"
        if self.target is None:
            return "(no target)"
        ok = ratio >= self.target if self.kind == "throughput" else ratio <= self.target
        return "ok" if ok else "MISSED"


PAIRS: dict[str, Pair] = {}
ABSOLUTE: dict[str, tuple[float, float]] = {}  # name -> (median seconds, budget seconds)


class Report:
    """Given to every suite as the `report` fixture."""

    def pair(
        self, benchmark: Any, name: str, role: str, *, kind: str, target: float | None
    ) -> None:
        """Remember the benchmark that just ran as `role` ("appliance" or "baseline") of the
        pair `name`."""
        stats = getattr(benchmark, "stats", None)
        if stats is None:  # --benchmark-disable
            return
        pair = PAIRS.setdefault(name, Pair(kind=kind, target=target))
        # Throughput: the fastest round, the least disturbed by the other processes of a shared
        # box (noise only ever adds time). Latency targets are about p50: the median round.
        value = stats.stats.min if kind == "throughput" else stats.stats.median
        setattr(pair, role, float(value))

    def absolute(self, benchmark: Any, name: str, budget_s: float) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            ABSOLUTE[name] = (float(stats.stats.median), budget_s)


@pytest.fixture(scope="session")
def report() -> Report:
    return Report()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not PAIRS and not ABSOLUTE:
        return
    write = terminalreporter.write_line
    terminalreporter.section("appliance vs same-run baseline")
    for name, pair in PAIRS.items():
        ratio = pair.ratio()
        shown = "-" if ratio is None else f"{ratio:.3f}"
        sense = ">=" if pair.kind == "throughput" else "<="
        medians = ""
        if pair.appliance and pair.baseline:
            statistic = "min" if pair.kind == "throughput" else "median"
            medians = (
                f"  ({statistic} appliance {pair.appliance * 1000:.3f} ms, "
                f"baseline {pair.baseline * 1000:.3f} ms)"
            )
        target = "" if pair.target is None else f" (target {sense} {pair.target})"
        write(f"{name:<44} {pair.kind:<10} ratio {shown:>6}{target} {pair.verdict()}{medians}")
    for name, (median, budget) in ABSOLUTE.items():
        verdict = "ok" if median <= budget else "MISSED"
        write(f"{name:<44} p50 {median * 1000:.3f} ms (budget {budget * 1000:.1f} ms) {verdict}")


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """Built as the service builds it (its torch thread setting included), so that the
    appliance and the raw baselines run the same torch configuration."""
    defaults = load_settings(Path("/nonexistent.toml"))
    model = ModelRegistry().resolve(defaults.model)
    return Encoder(model, device="cpu", batch_size=64, threads=defaults.torch_threads)


@pytest.fixture(scope="session")
def sample_documents() -> list[DocumentInput]:
    return list(read_jsonl(SAMPLE_CORPUS))


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", str(tmp_path / "data"))
        overrides.setdefault("load_sample", False)
        return load_settings(Path("/nonexistent.toml"), **overrides)

    return build


@pytest.fixture
def single_thread() -> Iterator[None]:
    """ANN comparisons run on one thread: per-query latency, as the API serves queries."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def cores() -> int:
    return len(os.sched_getaffinity(0))
