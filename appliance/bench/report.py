"""How a sweep's points are shown: a terminal table, JSON, the Pareto front and a plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.bench.sweep import SweepPoint


def points_json(points: Sequence[SweepPoint]) -> str:
    return json.dumps([point.to_json() for point in points], indent=2)


def format_table(points: Sequence[SweepPoint]) -> str:
    header = (
        f"{'index':<34} {'params':<12} {'filter':>7} {'recall':>7} {'qps 1t':>9} {'qps all':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'build s':>8} {'index MB':>9} {'rss MB':>8} {'nDCG@10':>8}"
    )
    lines = [header, "-" * len(header)]
    for p in points:
        params = ",".join(f"{key}={value}" for key, value in p.params.items()) or "-"
        selectivity = "-" if p.filter_selectivity is None else f"{p.filter_selectivity:.3%}"
        ndcg = "-" if p.ndcg_at_10 is None else f"{p.ndcg_at_10:.4f}"
        lines.append(
            f"{p.index:<34} {params:<12} {selectivity:>7} {p.recall:>7.4f} {p.qps_1thread:>9.1f} "
            f"{p.qps_all:>9.1f} {p.latency_p50_ms:>8.3f} {p.latency_p99_ms:>8.3f} "
            f"{p.build_s:>8.2f} {p.index_bytes / 2**20:>9.1f} {p.rss_delta_bytes / 2**20:>8.1f} "
            f"{ndcg:>8}"
        )
    gaps = filtered_recall_gaps(points)
    if gaps:
        worst = min(gaps, key=lambda gap: gap.gap)
        verdict = "ok" if worst.gap >= -FILTERED_RECALL_TOLERANCE else "MISSED"
        lines.append(
            f"filtered recall minus unfiltered at the same index and params: worst "
            f"{worst.gap:+.4f} ({worst.index} {worst.params} at {worst.selectivity:.3%}), "
            f"target >= -{FILTERED_RECALL_TOLERANCE}: {verdict} over {len(gaps)} points"
        )
    return "\n".join(lines)


# Filtered recall@k must stay within this of unfiltered recall at the same query parameters.
FILTERED_RECALL_TOLERANCE = 0.02


@dataclass(frozen=True)
class FilteredGap:
    index: str
    params: str
    selectivity: float
    gap: float  # filtered recall minus unfiltered recall


def filtered_recall_gaps(points: Sequence[SweepPoint]) -> list[FilteredGap]:
    """Each filtered point's recall against the unfiltered point of the same index and query
    parameters (points without an unfiltered twin are left out)."""
    unfiltered = {
        (p.index, json.dumps(p.params, sort_keys=True)): p.recall
        for p in points
        if p.filter_selectivity is None
    }
    gaps = []
    for p in points:
        key = (p.index, json.dumps(p.params, sort_keys=True))
        if p.filter_selectivity is None or key not in unfiltered:
            continue
        params = ",".join(f"{name}={value}" for name, value in p.params.items()) or "-"
        gaps.append(FilteredGap(p.index, params, p.filter_selectivity, p.recall - unfiltered[key]))
    return gaps


def pareto_front(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """Points no other point beats on both recall and single-thread QPS, fastest first."""
    front: list[SweepPoint] = []
    best_recall = -1.0
    for point in sorted(points, key=lambda p: (-p.qps_1thread, -p.recall)):
        if point.recall > best_recall:
            front.append(point)
            best_recall = point.recall
    return front


def plot_points(points: Sequence[SweepPoint], path: Path) -> None:
    """Recall vs single-thread QPS, one line per configuration (and filter), front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6))
    series: dict[str, list[SweepPoint]] = {}
    for point in points:
        label = point.index
        if point.filter_selectivity is not None:
            label += f" (filter {point.filter_selectivity:.1%})"
        series.setdefault(label, []).append(point)
    for label, members in series.items():
        members = sorted(members, key=lambda p: p.recall)
        axes.plot(
            [p.recall for p in members], [p.qps_1thread for p in members], marker="o", label=label
        )
    unfiltered = [p for p in points if p.filter_selectivity is None]
    front = pareto_front(unfiltered)
    if front:
        axes.plot(
            [p.recall for p in front],
            [p.qps_1thread for p in front],
            linestyle="--",
            color="black",
            marker="*",
            markersize=12,
            label="Pareto front (unfiltered)",
        )
    axes.set_xlabel(f"recall@{points[0].k if points else 10}")
    axes.set_ylabel("queries per second (1 thread, log)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
