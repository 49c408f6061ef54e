"""Issue 10's reproduction on a real `appliance serve`: a restore into the data dir of a running
server is refused, so no write the server acknowledges afterwards is lost; a second server on
the same data dir is refused too; once the server is stopped the restore goes through."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner, Result

from appliance.cli import main
from tests.reliability.crash_server import REPO, Server, request


def _cli(data_dir: Path, *args: str) -> Result:
    env = {"APPLIANCE_CONFIG": str(data_dir.parent / "none.toml")}
    return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], env=env)


def _put(server: Server, doc_id: str, text: str) -> None:
    status, body = request(
        f"{server.base}/collections/default/documents",
        {"documents": [{"id": doc_id, "text": text}]},
        method="PUT",
    )
    assert status == 200 and body["upserted"] == 1, body


def _get_status(server: Server, doc_id: str) -> int:
    status, _ = request(f"{server.base}/collections/default/documents/{doc_id}")
    return status


def test_restore_is_refused_while_serving_and_no_acknowledged_write_is_lost(
    tmp_path: Path,
) -> None:
    data_dir, backup = tmp_path / "data", tmp_path / "backup"
    server = Server(data_dir, tmp_path / "server.log")
    server.start()
    try:
        server.wait_ready()
        _put(server, "before", "written before the backup")
        made = _cli(data_dir, "backup", str(backup))
        assert made.exit_code == 0, made.output

        refused = _cli(data_dir, "restore", str(backup))
        assert refused.exit_code == 2, refused.output
        assert "error (data_dir_busy)" in refused.output
        assert "stop the server first" in refused.output
        assert "`appliance serve` (pid " in refused.output

        second = subprocess.run(
            [sys.executable, "-m", "appliance.cli", "serve", "--port", "1"],
            cwd=REPO,
            env={**server.env, "APPLIANCE_DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert "error (data_dir_busy)" in second.stderr

        _put(server, "after", "acknowledged after the refused restore")
        assert server.terminate() in (0, -15)
        server.start()
        server.wait_ready()
        assert _get_status(server, "before") == 200
        assert _get_status(server, "after") == 200
    finally:
        server.terminate()
    verified = _cli(data_dir, "verify")
    assert verified.exit_code == 0, verified.output

    # Stopped, the restore goes through and brings back the backup's state.
    restored = _cli(data_dir, "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    with closing(sqlite3.connect(data_dir / "appliance.sqlite3")) as db:
        ids = {row[0] for row in db.execute("SELECT external_id FROM documents")}
    assert ids == {"before"}
    verified = _cli(data_dir, "verify")
    assert verified.exit_code == 0, verified.output
