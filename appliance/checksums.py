"""File checksums: sha256 for model registration, index snapshots and backups, xxh3 (about 10x
faster) for the full integrity check of index snapshots, and xxh3 of sampled blocks for the
check at start-up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import xxhash


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_xxh3(path: Path) -> str:
    """xxh3-128 of a file: a non-cryptographic hash at ~13 GB/s here (sha256: ~1.3 GB/s), so a
    start-up can check every byte of a multi-GB snapshot for little more than reading it."""
    digest = xxhash.xxh3_128()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def block_offsets(size: int, block: int, count: int) -> list[int]:
    """Offsets of at most `count` blocks of `block` bytes spread evenly over a file of `size`
    bytes, the first and the last block always among them; every block when there are few."""
    blocks = max(1, -(-size // block))
    if blocks <= count:
        return [i * block for i in range(blocks)]
    step = (blocks - 1) / (count - 1)
    return sorted({round(i * step) * block for i in range(count)})


def blocks_xxh3(path: Path, offsets: list[int], block: int) -> list[str]:
    """xxh3-128 of the `block` bytes at each offset (fewer at the end of the file)."""
    digests = []
    with path.open("rb") as handle:
        for offset in offsets:
            handle.seek(offset)
            digests.append(xxhash.xxh3_128_hexdigest(handle.read(block)))
    return digests
