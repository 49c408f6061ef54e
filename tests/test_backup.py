"""Backup and restore: a round trip through a real data dir, and backups that are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.backup import BackupError, create_backup, restore_backup
from appliance.cli import main
from appliance.datadir_lock import LOCK_FILE
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]


def _tree(directory: Path) -> dict[str, bytes]:
    """The data dir's files; the lock file (taken by every restore) is not data."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != LOCK_FILE
    }


def _ids(appliance: Appliance, query: str) -> list[str]:
    return [hit.id for hit in appliance.search.search("pets", query, limit=3).results]


@pytest.fixture
def backed_up(appliance: Appliance, tmp_path: Path) -> Path:
    appliance.create_collection("pets")
    appliance.ingest.upsert("pets", DOCS)
    dest = tmp_path / "backups" / "one"
    report = create_backup(appliance.settings.data_path, dest, appliance=appliance)
    assert set(report.files) >= {"appliance.sqlite3"}
    assert any(name.startswith("indexes/collection-") for name in report.files)
    return dest


def test_round_trip_brings_deleted_documents_back(
    appliance: Appliance, backed_up: Path, open_appliance: Callable[..., Appliance]
) -> None:
    appliance.ingest.delete("pets", [doc.id for doc in DOCS])
    assert _ids(appliance, "which animal barks") == []
    appliance.close()

    restore_backup(backed_up, appliance.settings.data_path)

    reopened = open_appliance()
    assert len(reopened.collections.get("pets").index) == len(DOCS)
    assert _ids(reopened, "which animal barks")[0] == "dog"
    assert reopened.ingest.upsert("pets", DOCS).unchanged == len(DOCS)


def test_corrupted_backup_is_refused_and_the_data_dir_is_untouched(
    appliance: Appliance, backed_up: Path
) -> None:
    appliance.ingest.delete("pets", ["dog"])
    appliance.close()
    data = appliance.settings.data_path
    before = _tree(data)
    snapshot = next(p for p in (backed_up / "indexes").rglob("*") if p.name != "manifest.json")
    if snapshot.is_dir():
        snapshot = next(p for p in snapshot.iterdir() if p.name != "manifest.json")
    content = bytearray(snapshot.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped byte
    snapshot.write_bytes(bytes(content))

    with pytest.raises(BackupError, match="fails its sha256 check"):
        restore_backup(backed_up, data)
    assert _tree(data) == before


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "indexes/../../x", "other/file"])
def test_manifest_paths_outside_the_backup_are_refused(
    appliance: Appliance, backed_up: Path, name: str
) -> None:
    manifest = json.loads((backed_up / "manifest.json").read_text())
    manifest["files"][name] = "0" * 64
    (backed_up / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="unsafe path"):
        restore_backup(backed_up, appliance.settings.data_path)


def test_bad_destinations_and_sources_are_refused(appliance: Appliance, tmp_path: Path) -> None:
    data = appliance.settings.data_path
    appliance.close()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(BackupError, match="new or empty directory"):
        create_backup(data, a_file)
    with pytest.raises(BackupError, match="overlaps the data dir"):
        create_backup(data, data / "backup")
    with pytest.raises(BackupError, match="not a directory"):
        restore_backup(a_file, data)
    with pytest.raises(BackupError, match="not a backup"):
        restore_backup(tmp_path, data)
    create_backup(data, tmp_path / "b")
    with pytest.raises(BackupError, match="new or empty directory"):
        create_backup(data, tmp_path / "b")


def test_cli_backup_and_restore(appliance: Appliance, tmp_path: Path) -> None:
    appliance.create_collection("pets")
    appliance.ingest.upsert("pets", DOCS)
    appliance.close()
    data, dest = str(appliance.settings.data_path), str(tmp_path / "cli-backup")

    runner = CliRunner()
    made = runner.invoke(main, ["backup", dest, "--data-dir", data])
    assert made.exit_code == 0, made.output
    assert "backup written to" in made.output
    restored = runner.invoke(main, ["restore", dest, "--data-dir", data])
    assert restored.exit_code == 0, restored.output
    refused = runner.invoke(main, ["restore", data, "--data-dir", data])
    assert refused.exit_code == 2 and "backup_error" in refused.output
