"""Index snapshot integrity: start-up checks sizes and xxh3 of sampled blocks, a ready server
xxh3 of every byte in the background, `verify` sha256 too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.checksums import file_xxh3
from appliance.index.base import IndexConfig
from appliance.index.registry import backend_for
from appliance.index.snapshots import load_snapshot, sample_digests, save_snapshot

DIM = 16
CONFIG = IndexConfig(backend="faiss", spec="Flat")


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((200, DIM)).astype(np.float32)
    index = backend_for(CONFIG).create(CONFIG, DIM)
    index.add(np.arange(1, 201, dtype=np.int64), vectors)
    save_snapshot(index, tmp_path / "snap", model_id="m", max_id=200)
    return tmp_path / "snap"


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _manifest(snap: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((snap / "manifest.json").read_text())
    return loaded


def test_manifest_records_size_xxh3_and_sha256(snap: Path) -> None:
    manifest = _manifest(snap)
    files = sorted(p for p in snap.iterdir() if p.name != "manifest.json")
    assert manifest["sizes"] == {p.name: p.stat().st_size for p in files}
    assert manifest["xxh3"] == {p.name: file_xxh3(p) for p in files}
    assert set(manifest["files"]) == {p.name for p in files}
    assert load_snapshot(snap, CONFIG, DIM, "m") is not None


def test_a_flipped_byte_of_the_same_size_is_caught_at_start_up(snap: Path) -> None:
    _flip_middle_byte(snap / "index.faiss")
    assert load_snapshot(snap, CONFIG, DIM, "m") is None


def test_a_truncated_file_is_caught_by_its_size(snap: Path) -> None:
    index_file = snap / "index.faiss"
    index_file.write_bytes(index_file.read_bytes()[:-8])
    assert load_snapshot(snap, CONFIG, DIM, "m") is None


def test_an_older_manifest_without_xxh3_is_checked_with_sha256(snap: Path) -> None:
    manifest = _manifest(snap)
    del manifest["xxh3"], manifest["sizes"]
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert load_snapshot(snap, CONFIG, DIM, "m") is not None
    _flip_middle_byte(snap / "index.faiss")
    assert load_snapshot(snap, CONFIG, DIM, "m") is None


def test_full_check_also_compares_sha256(snap: Path) -> None:
    # A manifest whose fast hash was rewritten to match a changed file passes the start-up
    # check; the full check (what `appliance verify` runs) still refuses it.
    _flip_middle_byte(snap / "index.faiss")
    manifest = _manifest(snap)
    manifest["xxh3"]["index.faiss"] = file_xxh3(snap / "index.faiss")
    block = manifest["sample_block"]
    manifest["samples"]["index.faiss"] = sample_digests(snap / "index.faiss", block)
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert load_snapshot(snap, CONFIG, DIM, "m") is not None
    assert load_snapshot(snap, CONFIG, DIM, "m", full_check=True) is None


def _large_snapshot(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A snapshot of more blocks than start-up samples (blocks of 256 bytes, 4 sampled)."""
    import appliance.index.snapshots as snapshots

    monkeypatch.setattr(snapshots, "SAMPLE_BLOCK", 256)
    monkeypatch.setattr(snapshots, "SAMPLE_BLOCKS", 4)
    rng = np.random.default_rng(1)
    index = backend_for(CONFIG).create(CONFIG, DIM)
    index.add(np.arange(1, 401, dtype=np.int64), rng.standard_normal((400, DIM)).astype(np.float32))
    save_snapshot(index, directory, model_id="m", max_id=400)
    return directory


def test_start_up_reads_only_the_sampled_blocks_and_the_background_check_reads_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.checksums import block_offsets
    from appliance.index.snapshots import check_snapshot

    snap = _large_snapshot(tmp_path / "snap", monkeypatch)
    manifest = _manifest(snap)
    size = (snap / "index.faiss").stat().st_size
    offsets = [offset for offset, _ in manifest["samples"]["index.faiss"]]
    assert offsets == block_offsets(size, 256, 4) and offsets[0] == 0 and len(offsets) == 4
    assert offsets[-1] == (size - 1) // 256 * 256  # the last block is always sampled
    # A flipped byte in a block start-up does not sample: start-up passes, the whole check not.
    unsampled = next(o for o in range(0, size, 256) if o not in offsets) + 10
    data = bytearray((snap / "index.faiss").read_bytes())
    data[unsampled] ^= 0xFF
    (snap / "index.faiss").write_bytes(bytes(data))
    assert check_snapshot(snap, "start") is None
    assert check_snapshot(snap, "xxh3") == "file index.faiss fails its xxh3 checksum"
    # A flip in a sampled block is caught at start-up.
    data[unsampled] ^= 0xFF
    data[offsets[1] + 3] ^= 0xFF
    (snap / "index.faiss").write_bytes(bytes(data))
    problem = check_snapshot(snap, "start")
    assert problem is not None and "sampled blocks" in problem
    assert load_snapshot(snap, CONFIG, DIM, "m") is None


def test_a_manifest_without_samples_is_checked_whole_at_start_up(snap: Path) -> None:
    manifest = _manifest(snap)
    del manifest["samples"]
    (snap / "manifest.json").write_text(json.dumps(manifest))
    _flip_middle_byte(snap / "index.faiss")
    from appliance.index.snapshots import check_snapshot

    assert check_snapshot(snap, "start") == "file index.faiss fails its xxh3 checksum"
