"""IR metrics: hand-computed cases, trec_eval edge cases, and a cross-check against pytrec_eval."""

from __future__ import annotations

import math
import random

import pytest

from appliance.bench.metrics import (
    drop_self_hits,
    evaluate,
    mrr_at_k,
    ndcg_at_k,
    ranked,
    recall_at_k,
)

LOG2_3 = math.log2(3)


def test_ndcg_graded_hand_computed() -> None:
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7}}
    qrels = {"q": {"a": 1, "b": 0, "c": 2, "d": 1}}
    # DCG  = 1/log2(2) + 0/log2(3) + 2/log2(4)          = 1 + 0 + 1          = 2
    # IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4)          = 2 + 0.63093 + 0.5  = 3.13093
    # nDCG@10 = 2 / 3.13093 = 0.638787...
    expected = 2 / (2 + 1 / LOG2_3 + 0.5)
    assert ndcg_at_k(run, qrels, k=10) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.638787, abs=1e-6)


def test_ndcg_cutoff_truncates_run_and_ideal() -> None:
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7}}
    qrels = {"q": {"a": 1, "b": 0, "c": 2, "d": 1}}
    # k=2: DCG = 1 + 0 = 1; IDCG = 2 + 1/log2(3) = 2.63093; nDCG@2 = 0.380094...
    assert ndcg_at_k(run, qrels, k=2) == pytest.approx(1 / (2 + 1 / LOG2_3), abs=1e-12)


def test_perfect_ranking_scores_one() -> None:
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    qrels = {"q": {"a": 2, "b": 1, "c": 1}}
    assert ndcg_at_k(run, qrels) == pytest.approx(1.0)
    assert recall_at_k(run, qrels) == pytest.approx(1.0)
    assert mrr_at_k(run, qrels) == pytest.approx(1.0)


def test_negative_judgments_give_zero_gain() -> None:
    run = {"q": {"bad": 0.9, "good": 0.8}}
    qrels = {"q": {"bad": -1, "good": 1}}
    # trec_eval: gain(-1) = 0, so DCG = 0 + 1/log2(3); IDCG = 1 -> 0.63093
    assert ndcg_at_k(run, qrels) == pytest.approx(1 / LOG2_3, abs=1e-12)
    assert mrr_at_k(run, qrels) == pytest.approx(0.5)


def test_recall_hand_computed() -> None:
    run = {
        "q1": {"a": 0.9, "x": 0.8, "b": 0.7},
        "q2": {"y": 0.9, "z": 0.5},
    }
    qrels = {"q1": {"a": 1, "b": 2, "c": 1, "n": 0}, "q2": {"w": 1}}
    # q1: relevant {a, b, c} (n has rel 0); top 2 = [a, x] -> 1/3; top 3 -> 2/3. q2: 0.
    assert recall_at_k(run, qrels, k=2) == pytest.approx((1 / 3 + 0) / 2)
    assert recall_at_k(run, qrels, k=3) == pytest.approx((2 / 3 + 0) / 2)


def test_mrr_hand_computed() -> None:
    run = {
        "q1": {"x": 0.9, "a": 0.8},  # first relevant at rank 2 -> 1/2
        "q2": {"x": 0.9, "y": 0.8, "b": 0.7},  # rank 3 -> 1/3, but 0 when k=2
        "q3": {"c": 0.1},  # rank 1 -> 1
    }
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "x": 0}, "q3": {"c": 1}}
    assert mrr_at_k(run, qrels, k=10) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert mrr_at_k(run, qrels, k=2) == pytest.approx((1 / 2 + 0 + 1) / 3)


def test_mean_is_over_judged_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"n": 0}}
    run = {
        "q1": {"a": 1.0},  # perfect
        # q2 missing from the run: counts as 0
        "q3": {"n": 1.0},  # judged but nothing relevant: counts as 0, still in the mean
        "unjudged": {"z": 1.0},  # absent from qrels: ignored
    }
    assert ndcg_at_k(run, qrels) == pytest.approx(1 / 3)
    assert recall_at_k(run, qrels) == pytest.approx(1 / 3)
    assert mrr_at_k(run, qrels) == pytest.approx(1 / 3)


def test_empty_run_and_empty_qrels_score_zero() -> None:
    qrels = {"q": {"a": 1}}
    assert evaluate({}, qrels) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert evaluate({"q": {}}, qrels) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert evaluate({"q": {"a": 1.0}}, {}) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_invalid_cutoff_rejected() -> None:
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k({"q": {"a": 1.0}}, {"q": {"a": 1}}, k=0)


def test_ties_broken_by_doc_id_descending() -> None:
    assert ranked({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5, "d": 2.0}) == ["d", "c", "b", "a", "z"]
    # String order, not numeric: "9" > "10".
    assert ranked({"10": 1.0, "9": 1.0}) == ["9", "10"]
    # With tied scores, "c" ranks above "a": only c's relevance lands at rank 1.
    run = {"q": {"a": 1.0, "c": 1.0}}
    assert mrr_at_k(run, {"q": {"a": 1}}) == pytest.approx(0.5)
    assert mrr_at_k(run, {"q": {"c": 1}}) == pytest.approx(1.0)
    # Recall@1 sees only "c".
    assert recall_at_k(run, {"q": {"a": 1}}, k=1) == 0.0


def test_evaluate_keys_and_values() -> None:
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7}}
    qrels = {"q": {"a": 1, "b": 0, "c": 2, "d": 1}}
    result = evaluate(run, qrels)
    assert set(result) == {"ndcg@10", "recall@100", "mrr@10"}
    assert result["ndcg@10"] == pytest.approx(ndcg_at_k(run, qrels, 10))
    assert result["recall@100"] == pytest.approx(2 / 3)
    assert result["mrr@10"] == pytest.approx(1.0)
    assert set(evaluate(run, qrels, ks=(5, 20, 3))) == {"ndcg@5", "recall@20", "mrr@3"}


def test_drop_self_hits() -> None:
    run = {"q1": {"q1": 1.0, "d1": 0.5}, "d1": {"d1": 0.9}, "q2": {"d2": 0.3}}
    assert drop_self_hits(run) == {"q1": {"d1": 0.5}, "d1": {}, "q2": {"d2": 0.3}}
    # The input is left untouched.
    assert run["q1"] == {"q1": 1.0, "d1": 0.5}


def _random_case(
    seed: int, n_queries: int = 50, n_docs: int = 100
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    doc_ids = [f"d{i}" for i in range(n_docs * 2)]
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        # Coarse scores so that many ties exercise the doc-id tie-break.
        run[qid] = {d: round(rng.random(), 2) for d in rng.sample(doc_ids, n_docs)}
        judged = rng.sample(doc_ids, rng.randint(1, 30))
        qrels[qid] = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytrec_eval(seed: int) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_case(seed)
    # One query the run misses and one unjudged run query, to check the averaging rules too.
    qrels["missed"] = {"d1": 1}
    run["unjudged"] = {"d1": 1.0}

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    # trec_eval has no MRR cutoff: recip_rank on each query's top 10 is MRR@10.
    top10 = {qid: {d: hits[d] for d in ranked(hits)[:10]} for qid, hits in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    def mean(values: dict[str, dict[str, float]], measure: str) -> float:
        # trec_eval -c: queries in qrels but missing from the run count as 0.
        return sum(values.get(qid, {}).get(measure, 0.0) for qid in qrels) / len(qrels)

    ours = evaluate(run, qrels)
    assert ours["ndcg@10"] == pytest.approx(mean(per_query, "ndcg_cut_10"), abs=1e-6)
    assert ours["recall@100"] == pytest.approx(mean(per_query, "recall_100"), abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(mean(rr, "recip_rank"), abs=1e-6)
    # Guard against a vacuous comparison.
    assert 0.0 < ours["ndcg@10"] < 1.0
