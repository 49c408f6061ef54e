"""The data dir's lock: another process holding it refuses restores (the data dir untouched)
and a second holder; within one process it is re-entrant; it dies with its holder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.backup import create_backup, restore_backup
from appliance.cli import main
from appliance.datadir_lock import data_dir_held, data_dir_holder, hold_data_dir
from appliance.errors import DataDirBusy, InvalidConfig
from appliance.service import Appliance

REPO = Path(__file__).resolve().parents[1]
_HOLDER = """
import sys
from pathlib import Path
from appliance.datadir_lock import hold_data_dir
hold_data_dir(Path(sys.argv[1]), "`test holder`")
print("held", flush=True)
sys.stdin.read()
"""


def _other_process_holds(data_dir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(data_dir)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _can_lock_elsewhere(data_dir: Path) -> bool:
    taken = subprocess.run(
        [sys.executable, "-c", _HOLDER, str(data_dir)],
        cwd=REPO,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    return taken.returncode == 0


@pytest.fixture
def held_elsewhere(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    holder = _other_process_holds(data_dir)
    yield data_dir
    holder.communicate("", timeout=30)


def test_another_process_holding_the_data_dir_refuses_a_second_holder(
    held_elsewhere: Path,
) -> None:
    assert data_dir_held(held_elsewhere)
    holder = data_dir_holder(held_elsewhere)
    assert holder is not None and holder.startswith("`test holder` (pid ")
    with pytest.raises(DataDirBusy, match="stop the server first") as refused:
        hold_data_dir(held_elsewhere, "`appliance migrate`")
    assert "`test holder` (pid" in refused.value.detail
    assert "run `appliance migrate` again" in refused.value.detail


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    holder = _other_process_holds(data_dir)
    holder.kill()
    holder.wait(timeout=30)
    assert not data_dir_held(data_dir)
    with hold_data_dir(data_dir, "`appliance restore`"):
        assert not _can_lock_elsewhere(data_dir)
    assert _can_lock_elsewhere(data_dir)


def test_reentrant_within_a_process_and_free_once_every_holder_released(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert not data_dir_held(data_dir)  # no lock file yet
    outer = hold_data_dir(data_dir, "`appliance serve`")
    inner = hold_data_dir(data_dir, "`appliance migrate`")
    assert not data_dir_held(data_dir)  # this process's own lock does not count
    inner.release()
    assert not _can_lock_elsewhere(data_dir)
    outer.release()
    outer.release()  # a second release is a no-op
    assert _can_lock_elsewhere(data_dir)


def test_restore_is_refused_while_another_process_holds_the_data_dir(
    appliance: Appliance, tmp_path: Path
) -> None:
    appliance.create_collection("pets")
    data_dir = appliance.settings.data_path
    backup = tmp_path / "backup"
    create_backup(data_dir, backup, appliance=appliance)
    appliance.close()
    holder = _other_process_holds(data_dir)
    before = {p: p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}
    try:
        with pytest.raises(DataDirBusy, match="stop the server first"):
            restore_backup(backup, data_dir)
        refused = CliRunner().invoke(main, ["restore", str(backup), "--data-dir", str(data_dir)])
        assert refused.exit_code == 2, refused.output
        assert "error (data_dir_busy)" in refused.output
        assert "stop the server first" in refused.output
        after = {p: p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}
        assert after == before
    finally:
        holder.communicate("", timeout=30)
    assert restore_backup(backup, data_dir).files


def test_a_data_dir_that_cannot_hold_a_lock_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(InvalidConfig, match="cannot open the data dir's lock file"):
        hold_data_dir(not_a_dir, "`appliance serve`")


def test_migrate_is_refused_while_another_process_holds_the_data_dir(
    held_elsewhere: Path,
) -> None:
    refused = CliRunner().invoke(main, ["migrate", "--data-dir", str(held_elsewhere)])
    assert refused.exit_code == 2, refused.output
    assert "error (data_dir_busy)" in refused.output and "stop the server first" in refused.output
    assert not (held_elsewhere / "appliance.sqlite3").exists()
    # --check only reads: it answers even beside a server (1: an upgrade is pending).
    checked = CliRunner().invoke(main, ["migrate", "--check", "--data-dir", str(held_elsewhere)])
    assert checked.exit_code == 1, checked.output
