"""Index snapshots on disk: the index files plus a manifest with a watermark and checksums.

A snapshot is written to a temporary directory and renamed into place, so a crash leaves either
the old snapshot or the new one. A snapshot that is missing, corrupt or for another config is
reported as None; the caller rebuilds from the store.

Integrity: the manifest holds each file's size, xxh3-128 and sha256, and xxh3 of up to 64
blocks of 1 MiB spread over each file. Three depths (`CheckDepth`):
- "start": sizes and the sampled blocks (at most 64 MiB a file read, so a 1.8 GB snapshot
  opens at the cost of its load alone); a small file is covered whole by its blocks;
- "xxh3": sizes and xxh3 of every byte, what a server runs in the background once it is ready
  (`CollectionManager.check_snapshots`), rebuilding an index whose snapshot fails;
- "full": that and sha256, what `appliance verify` runs.
A snapshot written before the blocks (or before xxh3) was recorded is checked whole at start-up.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.checksums import block_offsets, blocks_xxh3, file_sha256, file_xxh3
from appliance.index.base import IndexConfig, VectorIndex
from appliance.index.registry import backend_for

log = logging.getLogger(__name__)
_MANIFEST = "manifest.json"
SAMPLE_BLOCK = 1 << 20
SAMPLE_BLOCKS = 64
CheckDepth = Literal["start", "xxh3", "full"]


@dataclass(frozen=True)
class SnapshotInfo:
    model_id: str
    max_id: int
    count: int
    # The collection's write generation the snapshot was taken at (None: an older snapshot).
    # With the same generation and highest vector id in the store, the snapshot is current and
    # start-up skips reading every stored id (seconds at a million vectors).
    generation: int | None = None


def save_snapshot(
    index: VectorIndex,
    directory: Path,
    *,
    model_id: str,
    max_id: int,
    generation: int | None = None,
) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".staging-{directory.name}-{uuid.uuid4().hex[:8]}"
    index.save(staging)
    files = sorted(p for p in staging.iterdir() if p.is_file())
    manifest = {
        "backend": index.config.backend,
        "spec": index.config.spec,
        "dimension": index.dimension,
        "model_id": model_id,
        "max_id": max_id,
        "count": len(index),
        "generation": generation,
        "files": {p.name: file_sha256(p) for p in files},
        "sizes": {p.name: p.stat().st_size for p in files},
        "xxh3": {p.name: file_xxh3(p) for p in files},
        "sample_block": SAMPLE_BLOCK,
        "samples": {p.name: sample_digests(p, SAMPLE_BLOCK) for p in files},
    }
    (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2))
    retired = directory.parent / f".retired-{directory.name}-{uuid.uuid4().hex[:8]}"
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    shutil.rmtree(retired, ignore_errors=True)


def sample_digests(path: Path, block: int) -> list[list[Any]]:
    offsets = block_offsets(path.stat().st_size, block, SAMPLE_BLOCKS)
    return [list(pair) for pair in zip(offsets, blocks_xxh3(path, offsets, block), strict=True)]


def snapshot_file_problem(
    directory: Path, manifest: dict[str, Any], *, depth: CheckDepth = "start"
) -> str | None:
    """Why the snapshot's files do not match its manifest, or None when they do (see the
    module's docstring for the depths)."""
    sha256s: dict[str, str] = manifest["files"]
    sizes: dict[str, int] = manifest.get("sizes", {})
    fast: dict[str, str] = manifest.get("xxh3", {})
    samples: dict[str, list[list[Any]]] = manifest.get("samples", {})
    block = int(manifest.get("sample_block", SAMPLE_BLOCK))
    for name in sha256s:
        path = directory / name
        if not path.is_file():
            return f"file {name} is missing"
        if name in sizes and path.stat().st_size != int(sizes[name]):
            return f"file {name} fails its checksum: {path.stat().st_size} bytes, not {sizes[name]}"
    for name, digest in sha256s.items():
        path = directory / name
        if depth == "start" and name in samples and name in sizes:
            offsets = [int(offset) for offset, _ in samples[name]]
            if blocks_xxh3(path, offsets, block) != [d for _, d in samples[name]]:
                return f"file {name} fails its xxh3 checksum (sampled blocks)"
            continue
        if name in fast and file_xxh3(path) != fast[name]:
            return f"file {name} fails its xxh3 checksum"
        if (depth == "full" or name not in fast) and file_sha256(path) != digest:
            return f"file {name} fails its sha256 checksum"
    return None


def check_snapshot(directory: Path, depth: CheckDepth) -> str | None:
    """Why the snapshot at `directory` fails a check of `depth`, or None when it passes (or
    when there is none: nothing was loaded from it)."""
    manifest_file = directory / _MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"manifest unreadable ({exc})"
    try:
        return snapshot_file_problem(directory, manifest, depth=depth)
    except (OSError, KeyError, ValueError) as exc:
        return f"unreadable ({exc})"


def load_snapshot(
    directory: Path,
    config: IndexConfig,
    dimension: int,
    model_id: str,
    *,
    full_check: bool = False,
) -> tuple[VectorIndex, SnapshotInfo] | None:
    manifest_file = directory / _MANIFEST
    if not manifest_file.is_file():
        log.info("no index snapshot at %s: rebuilding from the store", directory)
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
        wanted = (config.backend, config.spec, dimension, model_id)
        found = (manifest["backend"], manifest["spec"], manifest["dimension"], manifest["model_id"])
        if wanted != found:
            log.warning(
                "index snapshot at %s is for %s, not %s: rebuilding", directory, found, wanted
            )
            return None
        problem = snapshot_file_problem(
            directory, manifest, depth="full" if full_check else "start"
        )
        if problem is not None:
            log.warning("index snapshot at %s: %s: rebuilding", directory, problem)
            return None
        index = backend_for(config).load(config, dimension, directory)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("index snapshot at %s is unreadable (%s): rebuilding", directory, exc)
        return None
    generation = manifest.get("generation")
    return index, SnapshotInfo(
        model_id,
        int(manifest["max_id"]),
        int(manifest["count"]),
        None if generation is None else int(generation),
    )


def discard_snapshot(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
