"""IR metrics (nDCG@k, Recall@k, MRR@k) following trec_eval's ranking and gain conventions."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]
_PerQuery = Callable[[Mapping[str, float], Mapping[str, int], int], float]


def ranked(hits: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties broken by doc id descending."""
    # Two stable sorts: secondary key first. Doc ids are compared as strings (trec_eval uses
    # strcmp; Python's code-point order matches UTF-8 byte order).
    by_doc = sorted(hits, reverse=True)
    return sorted(by_doc, key=lambda doc_id: hits[doc_id], reverse=True)


def _dcg(gains: Iterable[float]) -> float:
    # Rank r (1-based) is discounted by log2(r + 1), so the first hit is undiscounted.
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def _gain(relevance: int) -> float:
    # trec_eval gives judged-negative documents zero gain, not a penalty.
    return float(max(relevance, 0))


def _query_ndcg(hits: Mapping[str, float], judgments: Mapping[str, int], k: int) -> float:
    ideal = _dcg(sorted((_gain(rel) for rel in judgments.values()), reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    actual = _dcg(_gain(judgments.get(doc_id, 0)) for doc_id in ranked(hits)[:k])
    return actual / ideal


def _query_recall(hits: Mapping[str, float], judgments: Mapping[str, int], k: int) -> float:
    relevant = {doc_id for doc_id, rel in judgments.items() if rel > 0}
    if not relevant:
        return 0.0
    return sum(1 for doc_id in ranked(hits)[:k] if doc_id in relevant) / len(relevant)


def _query_mrr(hits: Mapping[str, float], judgments: Mapping[str, int], k: int) -> float:
    for rank, doc_id in enumerate(ranked(hits)[:k], start=1):
        if judgments.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def _mean_over_qrels(run: Run, qrels: Qrels, k: int, per_query: _PerQuery) -> float:
    # Averaged over every judged query (trec_eval -c): a query the run missed scores 0,
    # and run queries without judgments are ignored.
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not qrels:
        return 0.0
    empty: dict[str, float] = {}
    total = sum(per_query(run.get(qid, empty), judgments, k) for qid, judgments in qrels.items())
    return total / len(qrels)


def ndcg_at_k(run: Run, qrels: Qrels, k: int = 10) -> float:
    """Mean nDCG@k with linear graded gain and log2(rank + 1) discount (trec_eval ndcg_cut)."""
    return _mean_over_qrels(run, qrels, k, _query_ndcg)


def recall_at_k(run: Run, qrels: Qrels, k: int = 100) -> float:
    """Mean fraction of a query's relevant (rel > 0) documents found in its top k."""
    return _mean_over_qrels(run, qrels, k, _query_recall)


def mrr_at_k(run: Run, qrels: Qrels, k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant (rel > 0) document within the top k."""
    return _mean_over_qrels(run, qrels, k, _query_mrr)


def evaluate(run: Run, qrels: Qrels, ks: tuple[int, int, int] = (10, 100, 10)) -> dict[str, float]:
    """nDCG, Recall and MRR at the cutoffs `ks` = (ndcg_k, recall_k, mrr_k)."""
    ndcg_k, recall_k, mrr_k = ks
    return {
        f"ndcg@{ndcg_k}": ndcg_at_k(run, qrels, ndcg_k),
        f"recall@{recall_k}": recall_at_k(run, qrels, recall_k),
        f"mrr@{mrr_k}": mrr_at_k(run, qrels, mrr_k),
    }


def drop_self_hits(run: Run) -> dict[str, dict[str, float]]:
    """Copy of `run` without hits whose doc id equals the query id (BEIR ignore_identical_ids)."""
    return {
        qid: {doc_id: score for doc_id, score in hits.items() if doc_id != qid}
        for qid, hits in run.items()
    }
