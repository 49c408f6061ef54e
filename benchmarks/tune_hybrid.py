"""Fit hybrid search's fusion on a BEIR training split, then report it on the test split.

    .venv/bin/python benchmarks/tune_hybrid.py ../shared/data/scifact --fit-split train
    .venv/bin/python benchmarks/tune_hybrid.py ../shared/data/nfcorpus --fit-split dev

Needs the data set's eval scratch store (run `appliance eval DIR --chunking off` once first).
Dense and keyword candidate lists come from the appliance's own search path; fusion settings
are then compared offline on the same lists. Parameters are chosen on the fit split only; the
test split is evaluated once per setting, for the report, never for the choice.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from appliance.bench.beir import load_beir
from appliance.bench.evaluate import COLLECTION, scratch_dir
from appliance.bench.metrics import drop_self_hits, evaluate
from appliance.config import load_settings
from appliance.search.fusion import reciprocal_rank_fusion, weighted_fusion
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance

DEPTH = 100


def candidate_lists(
    appliance: Appliance, queries: dict[str, str], title_weight: float
) -> dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]]]]:
    lists = {}
    for query_id, text in queries.items():
        dense = appliance.search.search(
            COLLECTION, text, options=SearchOptions(limit=DEPTH, mode="dense")
        ).results
        keyword = appliance.search.search(
            COLLECTION,
            text,
            options=SearchOptions(limit=DEPTH, mode="keyword", title_weight=title_weight),
        ).results
        lists[query_id] = (
            [(hit.id, hit.score) for hit in dense],
            [(hit.id, hit.score) for hit in keyword],
        )
    return lists


def fused_run(
    lists: dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]]]],
    setting: dict[str, float | str],
) -> dict[str, dict[str, float]]:
    run = {}
    for query_id, (dense, keyword) in lists.items():
        if setting["fusion"] == "rrf":
            fused = reciprocal_rank_fusion(
                [[d for d, _ in dense], [d for d, _ in keyword]],
                k=int(setting["k"]),
                weights=[float(setting["dense_weight"]), 1.0],
            )
        else:
            fused = weighted_fusion(dense, keyword, alpha=float(setting["alpha"]))
        run[query_id] = {doc: float(len(fused) - rank) for rank, (doc, _) in enumerate(fused)}
    return drop_self_hits(run)


def settings_grid() -> list[dict[str, float | str]]:
    grid: list[dict[str, float | str]] = [
        {"fusion": "rrf", "k": k, "dense_weight": w}
        for k, w in itertools.product((5, 10, 20, 30, 60, 100), (0.5, 0.75, 1.0, 1.25, 1.5, 2.0))
    ]
    grid += [{"fusion": "weighted", "alpha": a / 10} for a in range(1, 10)]
    return grid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--fit-split", default="train")
    parser.add_argument("--scratch", type=Path, default=Path("var/eval"))
    parser.add_argument("--out", type=Path, default=None, help="Write every row as JSON.")
    args = parser.parse_args()

    fit = load_beir(args.directory, args.fit_split)
    test = load_beir(args.directory, "test")
    base = load_settings(Path("/nonexistent.toml"), load_sample=False)
    model = Appliance.resolve_model(base)
    data_dir = scratch_dir(args.scratch, fit.name, model.fingerprint, chunking=False)
    appliance = Appliance(load_settings(Path("/nonexistent.toml"), data_dir=str(data_dir)))
    results = []
    for title_weight in (1.0, 2.0, 3.0):
        fit_lists = candidate_lists(appliance, fit.queries, title_weight)
        test_lists = candidate_lists(appliance, test.queries, title_weight)
        for setting in settings_grid():
            results.append(
                {
                    "title_weight": title_weight,
                    **setting,
                    "fit_ndcg@10": evaluate(fused_run(fit_lists, setting), fit.qrels)["ndcg@10"],
                    "test_ndcg@10": evaluate(fused_run(test_lists, setting), test.qrels)["ndcg@10"],
                }
            )
    results.sort(key=lambda row: float(row["fit_ndcg@10"]), reverse=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    baseline = next(
        r
        for r in results
        if r["title_weight"] == 1.0
        and r["fusion"] == "rrf"
        and r["k"] == 60
        and r["dense_weight"] == 1.0
    )
    print(
        json.dumps({"dataset": fit.name, "baseline_rrf60": baseline, "best": results[:5]}, indent=1)
    )


if __name__ == "__main__":
    main()
