"""`appliance verify`: the indexes agree with the store, and every kind of drift is reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from appliance.cli import main
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.verify import verify

ANIMALS = [
    ("cat", "The cat purrs and sleeps on the warm windowsill.", {"kind": "mammal"}),
    ("dog", "A loyal dog fetches the ball and barks at the mailman.", {"kind": "mammal"}),
    ("eagle", "The eagle soars high above the mountains hunting prey.", {"kind": "bird"}),
    ("salmon", "Salmon swim upstream in rivers to spawn.", {"kind": "fish"}),
    ("spider", "A spider spins a web to catch flies.", {"kind": "arachnid"}),
    ("penguin", "Penguins waddle on the Antarctic ice and dive for fish.", {"kind": "bird"}),
]


def _fill(appliance: Appliance) -> None:
    appliance.ensure_collection("default")
    appliance.ingest.upsert("default", [DocumentInput(i, t, m) for i, t, m in ANIMALS])


def _verify_cli(data_dir: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", "--data-dir", data_dir])
    return result.exit_code, result.output


def test_consistent_store_and_snapshot_verify_ok(appliance: Appliance) -> None:
    _fill(appliance)
    appliance.collections.save_snapshots()
    appliance.ingest.upsert("default", [DocumentInput("owl", "An owl hoots at night.")])
    code, output = _verify_cli(appliance.settings.data_dir)
    assert code == 0, output
    assert "default: ok: 7 documents, 7 vectors, 7 indexed" in output
    # The snapshot predates the owl: start-up replays it from SQLite.
    assert "6 vectors" in output and "replays +1 -0" in output
    assert output.strip().endswith("verify: ok")


def test_verify_writes_nothing(appliance: Appliance) -> None:
    _fill(appliance)
    index_dir = Path(appliance.settings.index_dir)
    before = sorted(index_dir.rglob("*")) if index_dir.exists() else []
    assert verify(appliance.settings).ok
    after = sorted(index_dir.rglob("*")) if index_dir.exists() else []
    assert before == after


def test_half_written_document_is_reported(appliance: Appliance) -> None:
    _fill(appliance)
    raw = sqlite3.connect(appliance.settings.database_path)
    with raw:
        raw.execute(
            "DELETE FROM vectors WHERE document_id = "
            "(SELECT id FROM documents WHERE external_id = 'dog')"
        )
    raw.close()
    code, output = _verify_cli(appliance.settings.data_dir)
    assert code == 1
    assert "have no vector" in output and "half-written" in output
    assert output.strip().endswith("verify: FAILED")


def test_keyword_table_drift_is_reported_when_the_table_exists(appliance: Appliance) -> None:
    _fill(appliance)
    raw = sqlite3.connect(appliance.settings.database_path)
    has_fts = raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'documents_fts'").fetchone()
    if has_fts:
        with raw:
            raw.execute("DELETE FROM documents_fts WHERE rowid = (SELECT min(id) FROM documents)")
    raw.close()
    report = verify(appliance.settings)
    if has_fts:
        assert not report.ok
        assert any("no documents_fts row" in problem for problem in report.problems)
    else:
        assert report.ok and report.fts.startswith("absent")


def test_missing_store_fails(tmp_path: Path) -> None:
    code, output = _verify_cli(str(tmp_path / "nothing"))
    assert code == 1 and "no store" in output
