"""Embedding throughput per batch size: the appliance's `Encoder.encode` against raw
`SentenceTransformer.encode` with the same texts, batch size and normalisation.
Target: appliance >= 0.9x raw throughput. Then each exported backend (onnx, onnx-int8,
openvino) against the same raw torch baseline: throughput per batch size, single-query p50."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_settings
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


# Exported backends against raw torch, each measured right after its own baseline. Targets
# from issue 4: a fast backend embeds >= 2x torch's passages/s and answers a single query in
# <= 0.35x torch's time; onnx fp32 is there for comparison (about torch's throughput).
BACKEND_TARGETS: dict[str, tuple[float | None, float | None]] = {
    "onnx": (None, None),
    "onnx-int8": (2.0, 0.35),
    "openvino": (2.0, 0.35),
}
BACKEND_BATCH_SIZES = (16, 64)
QUERIES = 32


@pytest.fixture(scope="session")
def backend_encoders(encoder: Encoder) -> dict[str, Encoder]:
    """Built like the service builds them (same thread setting as the torch encoder); exports
    are made once into the default data dir's models/ and reused by later runs."""
    defaults = load_settings(Path("/nonexistent.toml"))
    return {
        name: Encoder(
            encoder.model,
            batch_size=64,
            threads=defaults.torch_threads,
            backend=name,
            export_dir=defaults.model_export_dir,
        )
        for name in BACKEND_TARGETS
    }


def _raw_encode(encoder: Encoder, texts: list[str], batch_size: int) -> Any:
    return encoder._st.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


@pytest.mark.parametrize(
    ("backend", "batch_size", "role"),
    [
        (backend, size, role)
        for backend in BACKEND_TARGETS
        for size in BACKEND_BATCH_SIZES
        for role in ("baseline", "appliance")
    ],
)
def test_backend_throughput(
    benchmark: Any,
    report: Any,
    encoder: Encoder,
    backend_encoders: dict[str, Encoder],
    sample_documents: list[DocumentInput],
    backend: str,
    batch_size: int,
    role: str,
) -> None:
    texts = [doc.text for doc in sample_documents[:TEXTS]]
    fast = backend_encoders[backend]
    if role == "appliance":
        fast.batch_size = batch_size

        def run() -> Any:
            return fast.encode(texts)
    else:

        def run() -> Any:
            return _raw_encode(encoder, texts, batch_size)

    benchmark.group = f"embed {TEXTS} texts, batch {batch_size}: {backend} vs raw torch"
    benchmark.extra_info["texts_per_round"] = TEXTS
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    name = f"embed ({backend} vs raw torch) batch {batch_size}"
    report.pair(benchmark, name, role, kind="throughput", target=BACKEND_TARGETS[backend][0])


@pytest.mark.parametrize(
    ("backend", "role"),
    [(backend, role) for backend in BACKEND_TARGETS for role in ("baseline", "appliance")],
)
def test_backend_query_latency(
    benchmark: Any,
    report: Any,
    encoder: Encoder,
    backend_encoders: dict[str, Encoder],
    sample_documents: list[DocumentInput],
    backend: str,
    role: str,
) -> None:
    queries = iter(itertools.cycle(doc.text for doc in sample_documents[-QUERIES:]))
    fast = backend_encoders[backend]

    def run() -> Any:
        text = [next(queries)]
        return fast.encode(text) if role == "appliance" else _raw_encode(encoder, text, 1)

    benchmark.group = f"one query: {backend} vs raw torch"
    benchmark.pedantic(run, rounds=QUERIES, warmup_rounds=2)
    name = f"query ({backend} vs raw torch)"
    report.pair(benchmark, name, role, kind="latency", target=BACKEND_TARGETS[backend][1])
