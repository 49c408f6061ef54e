"""Retrieval quality on the shared BEIR data sets against published figures (`make quality`).

Not in the default run: the first run embeds SciFact and NFCorpus (minutes on 2 cores); the
scratch stores under var/eval are reused afterwards, so later runs take seconds per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.bench.evaluate import EvalConfig, run_eval
from appliance.config import load_settings
from appliance.index.base import IndexConfig
from appliance.index.registry import DEFAULT_INDEX
from appliance.search.pipeline import SearchOptions

pytestmark = pytest.mark.quality

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCRATCH = Path(__file__).resolve().parents[1] / "var" / "eval"
FLAT = IndexConfig(backend="faiss", spec="Flat")
# MTEB's figures for all-MiniLM-L6-v2, and the targets.
DENSE_FLAT = {"scifact": 0.6451, "nfcorpus": 0.3159}
KEYWORD_MIN = {"scifact": 0.68, "nfcorpus": 0.32}
HYBRID_MIN = {"scifact": 0.72, "nfcorpus": 0.355}
_cache: dict[tuple[Any, ...], dict[str, Any]] = {}


def ndcg(dataset: str, mode: str, index: IndexConfig) -> float:
    key = (dataset, mode, index.label)
    if key not in _cache:
        directory = DATA / dataset
        if not directory.is_dir():
            pytest.skip(f"{directory} is not on this machine")
        config = EvalConfig(
            directory=directory,
            index=index,
            chunking=False,
            search=SearchOptions(limit=100, mode=mode),  # type: ignore[arg-type]
        )
        settings = load_settings(Path("/nonexistent.toml"), torch_threads=0)
        _cache[key] = run_eval(config, settings, SCRATCH)
        print(_cache[key])
    return float(_cache[key]["ndcg@10"])


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_dense_flat_reproduces_mteb(dataset: str) -> None:
    assert ndcg(dataset, "dense", FLAT) == pytest.approx(DENSE_FLAT[dataset], abs=0.005)


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_default_hnsw_keeps_flat_quality(dataset: str) -> None:
    assert ndcg(dataset, "dense", DEFAULT_INDEX) >= ndcg(dataset, "dense", FLAT) - 0.005


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_keyword_bm25_meets_target(dataset: str) -> None:
    assert ndcg(dataset, "keyword", FLAT) >= KEYWORD_MIN[dataset]


@pytest.mark.parametrize("dataset", ["scifact", "nfcorpus"])
def test_hybrid_meets_target(dataset: str) -> None:
    assert ndcg(dataset, "hybrid", FLAT) >= HYBRID_MIN[dataset]
