"""Embedding throughput per batch size: the appliance's `Encoder.encode` against raw
`SentenceTransformer.encode` with the same texts, batch size and normalisation.
Target: appliance >= 0.9x raw throughput."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.embedding.encoder import Encoder
from appliance.ingest.pipeline import DocumentInput

TEXTS = 128
BATCH_SIZES = (16, 64, 128)


@pytest.mark.parametrize(
    ("batch_size", "role"),
    [(size, role) for size in BATCH_SIZES for role in ("baseline", "appliance")],
)
def test_embedding_throughput(
    benchmark: Any,
    report: Any,
    encoder: Encoder,
    sample_documents: list[DocumentInput],
    batch_size: int,
    role: str,
) -> None:
    texts = [doc.text for doc in sample_documents[:TEXTS]]
    if role == "appliance":
        encoder.batch_size = batch_size

        def run() -> Any:
            return encoder.encode(texts)
    else:
        raw = encoder._st

        def run() -> Any:
            return raw.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    benchmark.group = f"embed {TEXTS} texts, batch {batch_size}"
    benchmark.extra_info["texts_per_round"] = TEXTS
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    report.pair(benchmark, f"embed (torch) batch {batch_size}", role, kind="throughput", target=0.9)
