"""Backup and restore: a round trip through a real data dir, and backups that are refused."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.backup import BackupError, create_backup, restore_backup
from appliance.cli import main
from appliance.config import Settings
from appliance.datadir_lock import LOCK_FILE
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.verify import verify as verify_store
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


def _state_after(ops: list[tuple[str, str]], count: int) -> set[str]:
    present: set[str] = set()
    for kind, doc_id in ops[:count]:
        if kind == "upsert":
            present.add(doc_id)
        else:
            present.discard(doc_id)
    return present


def _stored_ids(data_dir: Path, collection: str) -> set[str]:
    with closing(sqlite3.connect(data_dir / "appliance.sqlite3")) as db:
        rows = db.execute(
            "SELECT d.external_id FROM documents d JOIN collections c ON c.id = d.collection_id"
            " WHERE c.name = ?",
            (collection,),
        )
        return {row[0] for row in rows}


def test_backups_taken_under_a_write_loop_are_consistent(
    appliance: Appliance, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    """Each backup restores into a data dir that verifies, holding the state after some
    prefix of the writes that includes every write acknowledged before it started."""
    appliance.create_collection("log")
    planned: list[tuple[str, str]] = []
    for i in range(10_000):
        planned.append(("upsert", f"d{i}"))
        if i % 4 == 3:
            planned.append(("delete", f"d{i - 2}"))
    acknowledged: list[tuple[str, str]] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def write_loop() -> None:
        try:
            for kind, doc_id in planned:
                if stop.is_set():
                    return
                if kind == "upsert":
                    text = f"entry {doc_id}: the {doc_id[-1]} fox writes log lines"
                    appliance.ingest.upsert("log", [DocumentInput(id=doc_id, text=text)])
                else:
                    appliance.ingest.delete("log", [doc_id])
                acknowledged.append((kind, doc_id))
        except BaseException as exc:
            failures.append(exc)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(acknowledged) < count and not failures:
            assert time.monotonic() < deadline, "the write loop stalled"
            time.sleep(0.01)

    writer = threading.Thread(target=write_loop)
    writer.start()
    taken: list[tuple[Path, int]] = []
    try:
        for round_ in range(4):
            wait_for(len(acknowledged) + 5)
            started_after = len(acknowledged)
            dest = tmp_path / f"backup-{round_}"
            # With the appliance its snapshots are saved first; without, as `appliance backup`
            # beside a server copies whatever snapshots are on disk.
            create_backup(
                appliance.settings.data_path,
                dest,
                appliance=appliance if round_ % 2 == 0 else None,
            )
            taken.append((dest, started_after))
        written_during = len(acknowledged) - taken[0][1]
    finally:
        stop.set()
        writer.join(60)
    assert not failures, failures
    assert written_during > 10  # the backups really ran under writes
    total = len(acknowledged) + 1  # one write may have committed without its acknowledgement
    for dest, started_after in taken:
        restored = tmp_path / f"restored-{dest.name}"
        restore_backup(dest, restored)
        report = verify_store(settings_for(data_dir=str(restored)))
        assert report.ok, report.lines()
        ids = _stored_ids(restored, "log")
        assert any(
            ids == _state_after(planned, count) for count in range(started_after, total + 1)
        ), f"{dest.name}: {len(ids)} documents, not a prefix of the writes"
