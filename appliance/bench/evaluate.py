"""Retrieval quality on a BEIR-format data set, through the normal ingest and search paths.

The corpus is ingested once into a scratch data dir keyed by data set, model and chunking, so
evaluating another mode, index or fusion setting reuses the stored vectors and takes seconds.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from appliance.bench.beir import load_beir
from appliance.bench.metrics import drop_self_hits, evaluate
from appliance.config import Settings
from appliance.errors import CollectionNotFound
from appliance.index.base import IndexConfig
from appliance.index.registry import DEFAULT_INDEX
from appliance.ingest.files import ingest_file
from appliance.ingest.sources import count_lines
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store.documents import count_documents
from appliance.store.feedback import judgments as feedback_judgments

COLLECTION = "corpus"
T = TypeVar("T")
Progress = Callable[[Iterable[T], int, str], Iterator[T]]


def _no_progress(items: Iterable[T], _total: int, _label: str) -> Iterator[T]:
    return iter(items)


@dataclass(frozen=True)
class EvalConfig:
    directory: Path
    split: str = "test"
    index: IndexConfig | None = None
    chunking: bool = False
    rerank_model: str = ""
    # BEIR's evaluator ignores a hit whose id equals the query id.
    ignore_identical_ids: bool = True
    search: SearchOptions = field(default_factory=lambda: SearchOptions(limit=100))


def vectors_key(model: str, backend: str) -> str:
    """What a scratch store's vectors depend on: the model and the backend that embedded them.
    A backend other than torch gets its own store even where its vectors keep the model's id
    (onnx, openvino): otherwise it would be measured on the torch vectors already stored.
    Eval and bench both key their scratch stores with it."""
    return model if backend == "torch" else f"{model}-{backend}"


def scratch_dir(root: Path, dataset: str, model_fingerprint: str, chunking: bool) -> Path:
    return root / f"{dataset}-{model_fingerprint}-chunking-{'on' if chunking else 'off'}"


def run_eval(
    config: EvalConfig,
    base_settings: Settings,
    scratch_root: Path,
    *,
    progress: Progress[Any] = _no_progress,
    appliance_factory: Callable[[Settings], Appliance] = Appliance,
) -> dict[str, Any]:
    dataset = load_beir(config.directory, config.split)
    started = time.perf_counter()
    probe = Appliance.resolve_model(base_settings)
    backend = base_settings.backend_for(probe.name)
    settings = msgspec.structs.replace(
        base_settings,
        data_dir=str(
            scratch_dir(
                scratch_root,
                dataset.name,
                vectors_key(probe.fingerprint, backend),
                config.chunking,
            )
        ),
        load_sample=False,
        rerank_model=config.rerank_model,
    )
    appliance = appliance_factory(settings)
    try:
        index = config.index or DEFAULT_INDEX
        live = _prepare_collection(appliance, index, config.chunking)
        total = count_lines(dataset.corpus_path)
        with appliance.db.read() as session:
            stored = count_documents(session, live.id)
        if stored < total:
            # The progress display advances a document at a time, as ingest_file reports them.
            ticks = progress(itertools.repeat(None, total), total, "ingest (documents)")
            ingest_file(
                appliance.ingest,
                COLLECTION,
                dataset.corpus_path,
                progress=lambda done: deque(itertools.islice(ticks, done), maxlen=0),
            )
            appliance.collections.save_snapshots()
        ingest_seconds = time.perf_counter() - started

        options = config.search
        if config.ignore_identical_ids:
            options = replace(options, limit=options.limit + 1)
        run: dict[str, dict[str, float]] = {}
        outcome_mode = options.mode or "dense"
        search_started = time.perf_counter()
        for query_id, text in progress(dataset.queries.items(), len(dataset.queries), "queries"):
            outcome = appliance.search.search(COLLECTION, text, options=options)
            hits, outcome_mode = outcome.results, outcome.mode
            # Rank-derived scores keep the appliance's order exactly, ties included.
            run[query_id] = {hit.id: float(len(hits) - rank) for rank, hit in enumerate(hits)}
        search_seconds = time.perf_counter() - search_started
        if config.ignore_identical_ids:
            run = drop_self_hits(run)
        metrics = evaluate(run, dataset.qrels)
        return {
            "dataset": dataset.name,
            "split": config.split,
            "mode": outcome_mode,
            "backend": backend,
            "index": appliance.collections.get(COLLECTION).config.label,
            "chunking": config.chunking,
            "rerank": config.rerank_model or None,
            **{name: round(value, 4) for name, value in metrics.items()},
            "queries": len(dataset.queries),
            "docs": total,
            "seconds": round(time.perf_counter() - started, 2),
            "ingest_seconds": round(ingest_seconds, 2),
            "query_ms_mean": round(1000 * search_seconds / max(1, len(dataset.queries)), 2),
        }
    finally:
        appliance.close()


def _prepare_collection(appliance: Appliance, index: IndexConfig, chunking: bool) -> Any:
    try:
        appliance.collections.get(COLLECTION)
    except CollectionNotFound:
        options = {**index.options, "chunking": chunking}
        appliance.create_collection(COLLECTION, msgspec.structs.replace(index, options=options))
    return appliance.collections.reconfigure(COLLECTION, index)


def feedback_eval(appliance: Appliance, collection: str) -> dict[str, Any]:
    """nDCG@10 and MRR@10 of the rankings users were served, judged by their own feedback."""
    live = appliance.collections.get(collection)
    with appliance.db.read() as session:
        qrels, served = feedback_judgments(session, live.id)
    run = {
        query_id: {doc: float(len(ranking) - rank) for rank, doc in enumerate(ranking)}
        for query_id, ranking in served.items()
    }
    metrics = evaluate(run, qrels)
    return {
        "collection": collection,
        "source": "feedback",
        "ndcg@10": round(metrics["ndcg@10"], 4),
        "mrr@10": round(metrics["mrr@10"], 4),
        "queries": len(qrels),
        "judgments": sum(len(judged) for judged in qrels.values()),
    }
