"""Index snapshot integrity: start-up checks sizes and xxh3 of every byte; `verify` also sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.checksums import file_xxh3
from appliance.index.base import IndexConfig
from appliance.index.registry import backend_for
from appliance.index.snapshots import load_snapshot, save_snapshot

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
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert load_snapshot(snap, CONFIG, DIM, "m") is not None
    assert load_snapshot(snap, CONFIG, DIM, "m", full_check=True) is None
