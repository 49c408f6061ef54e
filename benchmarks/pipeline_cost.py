"""The query pipeline's own cost: `SearchService.search` with the query's vector given (no
embedding, no HTTP), over the sample corpus, on one thread.

This is the Python a search adds on the server's event loop, where searches are answered once
their vector is in (`SearchService.answer_now`). Every query is one the run has not sent before
(SciFact and NFCorpus queries under the load bench's templates), so no answer comes from the
result cache. Prints the mean time per search of each batch, best and median, per mode.

    .venv/bin/python benchmarks/pipeline_cost.py [--batches 6] [--batch 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: the benchmarks package is the repo's
    sys.path.insert(0, str(REPO))

from appliance.collections.settings import Mode  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.ingest.sample import SAMPLE_CORPUS  # noqa: E402
from appliance.ingest.sources import read_jsonl  # noqa: E402
from appliance.search.pipeline import QueryVector, SearchOptions  # noqa: E402
from appliance.service import Appliance  # noqa: E402
from benchmarks.concurrency import DATA, fresh_queries  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per mode")
    parser.add_argument("--batch", type=int, default=200, help="searches per batch")
    parser.add_argument("--data", type=Path, default=DATA, help="holds scifact/, nfcorpus/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            Path(data_dir) / "none.toml",
            data_dir=data_dir,
            load_sample=False,
            embedding_backend=args.backend,
            warm_top_queries=0,
        )
        appliance = Appliance(settings)
        try:
            measure(appliance, args.data, args.batches, args.batch)
        finally:
            appliance.close()


def measure(appliance: Appliance, data: Path, batches: int, batch: int) -> None:
    collection = appliance.settings.default_collection
    appliance.ensure_collection(collection)
    documents = list(read_jsonl(SAMPLE_CORPUS))
    for start in range(0, len(documents), 200):
        appliance.ingest.upsert(collection, documents[start : start + 200])
    model_id = appliance.collections.get(collection).model_id
    encoder = appliance.encoders.get(model_id)
    # One warm-up batch and the timed ones, for each mode: every query used once.
    per_mode = (batches + 1) * batch
    queries = fresh_queries(data)[: 2 * per_mode]
    vectors = encoder.encode(queries)
    print(f"{len(documents)} documents; {len(queries)} queries embedded ahead", flush=True)
    modes: tuple[Mode, ...] = ("hybrid", "dense")
    for n, mode in enumerate(modes):
        options = SearchOptions(limit=10, mode=mode)
        offset = n * per_mode
        means = []
        for round_ in range(batches + 1):
            first = offset + round_ * batch
            started = time.perf_counter()
            for i in range(first, first + batch):
                embedded = QueryVector(model_id, vectors[i], 0.0)
                appliance.search.search(collection, queries[i], options=options, embedded=embedded)
            if round_:  # the first batch warms the caches
                means.append((time.perf_counter() - started) / batch * 1e6)
        print(
            f"{mode:7} per search: best batch {min(means):6.0f} us, "
            f"median {statistics.median(means):6.0f} us ({batches} batches of {batch})",
            flush=True,
        )


if __name__ == "__main__":
    main()
