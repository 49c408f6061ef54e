"""The GPU device kit's contents (issue 12 item 9): the embedding model and SciFact, packed
small enough to travel to a lent GPU machine (64 MiB a call, the repo included), and unpacked
there by benchmarks/gpu_ingest.py. scripts/device_kit.sh adds the wheels.

The model travels with its float32 weights stored as float16 (45 MB instead of 91 MB, gzipped),
and is cast back to float32 before loading: both the CPU and the CUDA run on the device load
those same cast weights, so their ratio compares like with like. `pack` measures how far the
cast model's vectors are from the original's and records it in the manifest.

    .venv/bin/python -m benchmarks.gpu_kit --out .devkit    # model + corpus (no wheels)
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.checksums import file_sha256
from benchmarks.embedding_backends import read_texts

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
MODEL_NAME = "all-MiniLM-L6-v2"
WEIGHTS = "model.safetensors"
PACKED_WEIGHTS = "model.fp16.safetensors.gz"
MANIFEST = "manifest.json"
# Files a model directory holds that loading never reads.
_SKIPPED = {".gitattributes", "README.md"}
# Vectors of the cast model against the original's, on this many SciFact passages.
AGREEMENT_TEXTS = 64


def _gzip(source: Path, target: Path) -> None:
    # mtime=0: the same input always packs to the same bytes.
    with (
        source.open("rb") as raw,
        target.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz,
    ):
        shutil.copyfileobj(raw, gz)


def pack_model(source: Path, target: Path) -> dict[str, Any]:
    """Copy a sentence-transformers directory, its float32 tensors stored as float16."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and path.name != WEIGHTS and path.name not in _SKIPPED:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
    with safe_open(str(source / WEIGHTS), framework="np") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(source / WEIGHTS))
    cast = sorted(name for name, array in tensors.items() if array.dtype == np.float32)
    half = {
        name: array.astype(np.float16) if name in cast else array for name, array in tensors.items()
    }
    # Values float16 cannot hold (beyond 65504, or flushed to zero) would change the model.
    worst = max(float(np.abs(half[name].astype(np.float32) - tensors[name]).max()) for name in cast)
    overflow = [name for name in cast if not np.isfinite(half[name]).all()]
    if overflow:
        raise ValueError(f"float16 cannot hold these tensors: {', '.join(overflow)}")
    plain = target / "model.fp16.safetensors"
    save_file(half, str(plain), metadata=metadata)
    _gzip(plain, target / PACKED_WEIGHTS)
    plain.unlink()
    return {
        "source_sha256": file_sha256(source / WEIGHTS),
        "packed_sha256": file_sha256(target / PACKED_WEIGHTS),
        "cast_to_float16": cast,
        "max_abs_cast_error": worst,
    }


def unpack_model(kit: Path, target: Path) -> Path:
    """The kit's model as a loadable directory, its weights cast back to float32."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    manifest = read_manifest(kit)
    packed = kit / "model" / MODEL_NAME
    if file_sha256(packed / PACKED_WEIGHTS) != manifest["model"]["packed_sha256"]:
        raise ValueError(f"{packed / PACKED_WEIGHTS} does not match the kit's manifest")
    directory = target / MODEL_NAME
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(packed, directory, ignore=shutil.ignore_patterns(PACKED_WEIGHTS))
    plain = directory / "model.fp16.safetensors"
    with gzip.open(packed / PACKED_WEIGHTS, "rb") as gz, plain.open("wb") as out:
        shutil.copyfileobj(gz, out)
    with safe_open(str(plain), framework="np") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(plain))
    cast = set(manifest["model"]["cast_to_float16"])
    full = {
        name: array.astype(np.float32) if name in cast else array for name, array in tensors.items()
    }
    save_file(full, str(directory / WEIGHTS), metadata=metadata)
    plain.unlink()
    return directory


def pack_corpus(source: Path, target: Path) -> dict[str, Any]:
    """SciFact's corpus and queries, gzipped."""
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in ("corpus.jsonl", "queries.jsonl"):
        _gzip(source / name, target / f"{name}.gz")
        with (source / name).open("rb") as handle:
            counts[name] = sum(1 for line in handle if line.strip())
    return counts


def unpack_corpus(kit: Path, target: Path) -> tuple[Path, Path]:
    """(corpus.jsonl, queries.jsonl) under `target`, as BEIR lays them out."""
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("corpus.jsonl", "queries.jsonl"):
        with (
            gzip.open(kit / "scifact" / f"{name}.gz", "rb") as gz,
            (target / name).open("wb") as out,
        ):
            shutil.copyfileobj(gz, out)
        paths.append(target / name)
    return paths[0], paths[1]


def read_manifest(kit: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((kit / MANIFEST).read_text())
    return manifest


def cast_agreement(original: Path, cast: Path, texts: Sequence[str]) -> dict[str, float]:
    """Cosine of the cast model's vectors against the original's (torch, cpu, eager)."""
    from sentence_transformers import SentenceTransformer

    vectors = [
        SentenceTransformer(str(directory), device="cpu", local_files_only=True).encode(
            list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        for directory in (original, cast)
    ]
    cosines = np.sum(vectors[0] * vectors[1], axis=1)
    return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())}


def build(
    out: Path, scifact: Path, *, model: Path | None = None, check: bool = True
) -> dict[str, Any]:
    """Fill `out` with the model (by default the registered one, its sha256 verified: the
    model the appliance ships) and the corpus, and write its manifest."""
    from appliance.models.registry import ModelRegistry

    source = model or ModelRegistry().resolve(MODEL_NAME).directory
    for part in ("model", "scifact"):
        shutil.rmtree(out / part, ignore_errors=True)
    manifest: dict[str, Any] = {
        "model": {"name": MODEL_NAME, **pack_model(source, out / "model" / MODEL_NAME)},
        "scifact": pack_corpus(scifact, out / "scifact"),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if check:
        scratch = out / ".check"
        try:
            cast = unpack_model(out, scratch)
            texts = read_texts(scifact / "corpus.jsonl", AGREEMENT_TEXTS)
            manifest["model"]["cast_vs_original"] = {
                "texts": len(texts),
                **cast_agreement(source, cast, texts),
            }
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".devkit")
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument(
        "--no-check", action="store_true", help="skip the cast-vs-original vector check"
    )
    args = parser.parse_args(argv)
    manifest = build(args.out, args.scifact, check=not args.no_check)
    print(json.dumps(manifest["model"].get("cast_vs_original", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
