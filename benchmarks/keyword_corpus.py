"""A 100k-document text corpus for keyword-search timings, and the queries to time it with.

No real corpus of that size is on the box, so documents are assembled from the sentences of the
SciFact and NFCorpus corpora (shuffled, each with a real title), which keeps term statistics
Zipfian as in real text. Queries are the two data sets' test queries with 3-6 terms left after
stop words. Only the FTS side is filled: documents go into the store without vectors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from appliance.bench.beir import load_beir
from appliance.store import collections as collection_store
from appliance.store.database import Database
from appliance.store.documents import content_hash
from appliance.store.keyword import match_expression
from appliance.store.schema import DocumentRow

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("scifact", "nfcorpus")
COLLECTION = "keyword-bench"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pools(data: Path) -> tuple[list[str], list[str], list[int]]:
    sentences: list[str] = []
    titles: list[str] = []
    lengths: list[int] = []
    for name in DATASETS:
        with (data / name / "corpus.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                parts = [s for s in _SENTENCE_END.split(record.get("text", "")) if s.strip()]
                sentences.extend(parts)
                lengths.append(max(1, len(parts)))
                if record.get("title"):
                    titles.append(record["title"])
    return sentences, titles, lengths


def build_corpus(path: Path, n: int, *, data: Path = DATA, seed: int = 0) -> Database:
    """The store at `path` with `n` synthetic documents in collection COLLECTION (built once)."""
    if path.exists():
        return Database(path)
    staging = path.with_suffix(".building")
    for leftover in staging.parent.glob(staging.name + "*"):
        leftover.unlink()
    db = Database(staging)
    sentences, titles, lengths = _pools(data)
    rng = np.random.default_rng(seed)
    with db.write() as session:
        collection = collection_store.create_collection(
            session,
            name=COLLECTION,
            backend="hnswlib",
            spec="M=32,ef_construction=200",
            options={},
            model_id="none",
        )
        collection_id = collection.id
    for start in range(0, n, 10_000):
        rows = []
        for number in range(start, min(n, start + 10_000)):
            # Document lengths follow the source corpora's sentence counts.
            count = int(lengths[rng.integers(len(lengths))])
            text = " ".join(sentences[i] for i in rng.integers(len(sentences), size=count))
            title = titles[rng.integers(len(titles))]
            rows.append(
                {
                    "collection_id": collection_id,
                    "external_id": f"doc-{number}",
                    "text": text,
                    "meta": {"title": title},
                    "content_hash": content_hash(text),
                }
            )
        with db.write() as session:
            session.execute(insert(DocumentRow), rows)
    db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{staging}{suffix}").unlink(missing_ok=True)
    staging.rename(path)
    return Database(path)


def bench_queries(data: Path = DATA, min_terms: int = 3, max_terms: int = 6) -> list[str]:
    """Test queries of both data sets with `min_terms`..`max_terms` terms after stop words."""
    kept: list[str] = []
    for name in DATASETS:
        for text in load_beir(data / name, "test").queries.values():
            expression = match_expression(text)
            terms = expression.count(" OR ") + 1 if expression else 0
            if min_terms <= terms <= max_terms:
                kept.append(text)
    return kept
