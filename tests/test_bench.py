"""`appliance bench`: synthetic data, the sweep's points and their JSON contract, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from appliance.bench import sweep
from appliance.bench.datasets import synthetic_dataset
from appliance.bench.report import pareto_front
from appliance.bench.sweep import SweepOptions, SweepPoint, query_params, run_sweep
from appliance.bench.synthetic import make_synthetic, rank_windows
from appliance.cli import main
from appliance.index.base import parse_index_arg

CONTRACT_KEYS = {
    "index",
    "params",
    "filter_selectivity",
    "k",
    "recall@10",
    "qps_1thread",
    "qps_all",
    "build_s",
    "index_bytes",
    "rss_delta_bytes",
    "ndcg@10",
}


def test_synthetic_vectors_are_unit_and_reproducible() -> None:
    first = make_synthetic(500, 16, 20, seed=3)
    second = make_synthetic(500, 16, 20, seed=3)
    assert first.vectors.shape == (500, 16) and first.queries.shape == (20, 16)
    assert np.allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first.vectors, second.vectors)
    assert sorted(first.rank.tolist()) == list(range(500))
    assert first.ids[0] == 1 and first.ids[-1] == 500


def test_rank_windows_match_exactly_the_asked_count() -> None:
    data = make_synthetic(1_000, 8, 1)
    for count in (1, 10, 500, 1_000):
        for allowed in rank_windows(data.rank, data.ids, count, n_windows=5):
            assert len(allowed) == count == len(np.unique(allowed))
            ranks = np.sort(data.rank[allowed - 1])
            # A window of consecutive ranks: what {"rank": {"$gte": a, "$lt": a + m}} matches.
            assert ranks[-1] - ranks[0] == count - 1


def test_query_params_follow_the_index_kind() -> None:
    efs, nprobes = (16, 64), (8,)
    assert query_params(parse_index_arg("hnswlib:M=16"), efs, nprobes) == [{"ef": 16}, {"ef": 64}]
    assert query_params(parse_index_arg("faiss:HNSW32,Flat"), efs, nprobes)[0] == {"ef": 16}
    assert query_params(parse_index_arg("faiss:IVF64,PQ8"), efs, nprobes) == [{"nprobe": 8}]
    assert query_params(parse_index_arg("faiss:Flat"), efs, nprobes) == [{}]


@pytest.fixture(autouse=True)
def one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny indexes: OpenMP thread start-up and spinning would cost more than the work.
    monkeypatch.setattr(sweep, "cores", lambda: 1)


def test_sweep_points_keep_recall_filtered_and_not() -> None:
    dataset = synthetic_dataset(1_000, 16, 30)
    options = SweepOptions(
        indexes=[
            parse_index_arg("hnswlib:M=16,ef_construction=100"),
            parse_index_arg("faiss:HNSW16,Flat"),
            parse_index_arg("faiss:IVF16,Flat"),
        ],
        efs=(64,),
        nprobes=(8,),
        selectivities=(0.01, 0.5),
        filter_queries=10,
        # Every filtered point through the widened index search (the exact path is trivial).
        exact_threshold=0,
        progress=False,
    )
    points = run_sweep(dataset, options)
    assert len(points) == 3 * (1 + 2)
    for point in points:
        assert set(point.to_json()) == CONTRACT_KEYS
        assert point.qps_1thread > 0 and point.qps_all > 0 and point.index_bytes > 0
        assert point.ndcg_at_10 is None
        # Widened searches (and exact ones) find the true filtered top-10.
        assert point.recall >= 0.95, point
    assert [p.filter_selectivity for p in points[:3]] == [None, 0.01, 0.5]


def test_pareto_front_drops_dominated_points() -> None:
    def point(recall: float, qps: float) -> SweepPoint:
        return SweepPoint("i", {}, None, 10, recall, qps, qps, 0, 1, 0, None, 0, 0)

    fast, slow_exact, dominated = point(0.9, 1000), point(1.0, 100), point(0.85, 500)
    assert pareto_front([dominated, slow_exact, fast]) == [fast, slow_exact]


def test_bench_command_prints_json_and_plots(tmp_path: Path) -> None:
    plot = tmp_path / "sweep.png"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--synthetic",
            "1000",
            "--dim",
            "16",
            "--index",
            "faiss:HNSW16,Flat",
            "--index",
            "faiss:Flat",
            "--ef",
            "16,32",
            "--queries",
            "30",
            "--filter-selectivity",
            "0.1",
            "--filter-queries",
            "10",
            "--json",
            "--no-progress",
            "--plot",
            str(plot),
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)
    assert [(p["index"], p["params"], p["filter_selectivity"]) for p in points] == [
        ("faiss:HNSW16,Flat", {"ef": 16}, None),
        ("faiss:HNSW16,Flat", {"ef": 16}, 0.1),
        ("faiss:HNSW16,Flat", {"ef": 32}, None),
        ("faiss:HNSW16,Flat", {"ef": 32}, 0.1),
        ("faiss:Flat", {}, None),
        ("faiss:Flat", {}, 0.1),
    ]
    assert all(set(p) == CONTRACT_KEYS for p in points)
    assert points[-2]["recall@10"] == 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_command_needs_one_source() -> None:
    result = CliRunner().invoke(main, ["bench", "--no-progress"])
    assert result.exit_code != 0
    assert "--synthetic" in result.output


def test_bench_and_eval_scratch_keys_name_the_embedding_backend(tmp_path: Path) -> None:
    """A bench run after an eval run with another backend must not reuse that backend's
    vectors: both key their scratch store by model and backend."""
    from appliance.bench.datasets import scratch_dir_for
    from appliance.bench.evaluate import vectors_key
    from appliance.config import Settings

    corpus = tmp_path / "corpus.jsonl"
    dirs = {
        backend: scratch_dir_for(
            Settings(data_dir=str(tmp_path), embedding_backend=backend), corpus, corpus
        )
        for backend in ("torch", "openvino", "onnx")
    }
    assert len(set(dirs.values())) == 3
    assert dirs["openvino"].name.endswith("-openvino")
    assert vectors_key("fp", "torch") == "fp" and vectors_key("fp", "openvino") == "fp-openvino"


def test_bench_on_a_jsonl_corpus_embeds_it_once_into_its_scratch_store(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"document {i} about topic {i % 7}"}) + "\n"
            for i in range(60)
        )
    )
    args = [
        "bench",
        str(corpus),
        "--index",
        "faiss:Flat",
        "--queries",
        "10",
        "--no-progress",
        "--data-dir",
        str(tmp_path / "data"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    scratch = list((tmp_path / "data" / "bench").iterdir())
    assert len(scratch) == 1 and scratch[0].name.startswith("corpus.jsonl-")
    again = CliRunner().invoke(main, args)  # reuses the stored vectors
    assert again.exit_code == 0, again.output
    assert list((tmp_path / "data" / "bench").iterdir()) == scratch


def test_filtered_points_are_compared_with_unfiltered_recall_at_the_same_params() -> None:
    from appliance.bench.report import filtered_recall_gaps, format_table

    def point(index: str, ef: int, selectivity: float | None, recall: float) -> SweepPoint:
        return SweepPoint(index, {"ef": ef}, selectivity, 10, recall, 1, 1, 0, 1, 0, None, 0, 0)

    points = [
        point("hnsw", 16, None, 0.94),
        point("hnsw", 16, 0.5, 0.93),
        point("hnsw", 16, 0.1, 0.95),
        point("hnsw", 128, None, 0.99),
        point("hnsw", 128, 0.5, 0.96),
        point("flat", 16, 0.5, 0.5),  # no unfiltered twin: left out
    ]
    gaps = filtered_recall_gaps(points)
    assert [(g.index, g.params, g.selectivity, round(g.gap, 4)) for g in gaps] == [
        ("hnsw", "ef=16", 0.5, -0.01),
        ("hnsw", "ef=16", 0.1, 0.01),
        ("hnsw", "ef=128", 0.5, -0.03),
    ]
    table = format_table(points)
    assert "worst -0.0300 (hnsw ef=128 at 50.000%)" in table and "MISSED over 3 points" in table
    assert "ok over 2 points" in format_table(points[:3])
