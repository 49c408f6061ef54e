"""The bundled sample corpus a first start serves (the Python standard library's module docs),
ingested through the same file path as `appliance ingest`."""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.ingest.files import ingest_file
from appliance.ingest.pipeline import IngestService

log = logging.getLogger(__name__)

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "sample" / "python-stdlib.jsonl"


def load_sample_corpus(
    ingest: IngestService, collection: str, corpus: Path = SAMPLE_CORPUS, batch: int = 256
) -> int:
    """Upsert the sample corpus into `collection`; the number of documents upserted."""
    log.info("empty store: ingesting the sample corpus %s into %r", corpus, collection)
    loaded = ingest_file(ingest, collection, corpus, batch_size=batch).upserted
    log.info("sample corpus ingested: %d documents", loaded)
    return loaded
