"""Recall on a corpus full of duplicates: 20 real texts and 2,000 copies of "t", embedded with
the bundled model, in the default index (hnswlib M=32) with and without duplicate grouping
(appliance/index/duplicates.py), in one run.

    .venv/bin/python benchmarks/duplicates_recall.py

Recall@10 is tie-aware: the i-th best score found must reach the i-th best exact score (the
copies are interchangeable). Also prints how often the query's own document comes first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.embedding.encoder import Encoder
from appliance.index.base import SearchParams
from appliance.index.registry import DEFAULT_INDEX, backend_for
from appliance.models.registry import ModelRegistry
from tests.test_duplicate_vectors import TOPICS


def main() -> None:
    encoder = Encoder(ModelRegistry().resolve("all-MiniLM-L6-v2"), device="cpu", batch_size=64)
    real = encoder.encode(TOPICS)
    copies = np.repeat(encoder.encode(["t"]), 2000, axis=0)
    queries = real
    everything = np.concatenate([copies, real])
    exact = np.sort(queries @ everything.T, axis=1)[:, ::-1][:, :10]
    backend = backend_for(DEFAULT_INDEX)
    for label, grouped in (("hnswlib M=32, every copy a node", False), ("grouped (default)", True)):
        index = backend.create(DEFAULT_INDEX, real.shape[1])
        target = index if grouped else index.inner  # type: ignore[attr-defined]
        target.add(np.arange(1, 2001), copies)
        target.add(np.arange(2001, 2001 + len(TOPICS)), real)
        for ef in (16, 128, 512):
            scores, ids = target.search(queries, 10, SearchParams(ef=ef))
            recall = float((np.sort(scores, axis=1)[:, ::-1] >= exact - 1e-5).mean())
            first = float(np.mean(ids[:, 0] == np.arange(2001, 2001 + len(TOPICS))))
            print(f"{label:34} ef {ef:4}: recall@10 {recall:.3f}, own document first {first:.2f}")


if __name__ == "__main__":
    main()
