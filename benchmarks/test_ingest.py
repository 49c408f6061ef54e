"""Ingest through the appliance (validate, hash, embed, commit to SQLite, update the index)
against raw `SentenceTransformer.encode` of the same texts at the same batch size.
Target: appliance >= 0.9x raw throughput."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from appliance.config import Settings
from appliance.embedding.encoder import Encoder
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance

DOCUMENTS = 128


@pytest.mark.parametrize("role", ["baseline", "appliance"])
def test_ingest_throughput(
    benchmark: Any,
    report: Any,
    encoder: Encoder,
    settings_for: Callable[..., Settings],
    sample_documents: list[DocumentInput],
    role: str,
) -> None:
    documents = sample_documents[:DOCUMENTS]
    encoder.batch_size = 64
    benchmark.group = f"ingest {DOCUMENTS} documents, batch 64"
    benchmark.extra_info["documents_per_round"] = DOCUMENTS
    if role == "baseline":
        texts = [doc.text for doc in documents]
        benchmark.pedantic(
            lambda: encoder._st.encode(
                texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False
            ),
            rounds=3,
            warmup_rounds=1,
        )
    else:
        appliance = Appliance(settings_for(), encoder=encoder)
        names = (f"ingest{n}" for n in itertools.count())

        def fresh_collection() -> tuple[tuple[str], dict[str, Any]]:
            # A new collection each round: unchanged texts would not be embedded again.
            name = next(names)
            appliance.create_collection(name)
            return (name,), {}

        benchmark.pedantic(
            lambda name: appliance.ingest.upsert(name, documents),
            setup=fresh_collection,
            rounds=3,
            warmup_rounds=1,
        )
        appliance.db.close()
    report.pair(benchmark, "ingest (default index)", role, kind="throughput", target=0.9)
