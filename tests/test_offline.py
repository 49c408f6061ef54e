"""Nothing calls out: ingest and search in a fresh process where every non-loopback connect
and DNS lookup is blocked and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.network_guard import NETWORK_GUARD

GUARD = (
    NETWORK_GUARD
    + r"""
from appliance.config import load_settings
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance

appliance = Appliance(load_settings(data_dir=sys.argv[1], load_sample=False))
appliance.ensure_collection("default")
appliance.ingest.upsert("default", [
    DocumentInput(id="tea", text="How to brew green tea at the right temperature."),
    DocumentInput(id="bike", text="Fixing a flat bicycle tyre with a patch kit."),
])
hits = appliance.search.search("default", "repair a punctured tire").results
appliance.close()
print(json.dumps({"attempts": attempts, "top": hits[0].id}))
"""
)


def test_ingest_and_search_make_no_network_attempt(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["APPLIANCE_CONFIG"] = str(tmp_path / "none.toml")
    completed = subprocess.run(
        [sys.executable, "-c", GUARD, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["top"] == "bike"
    assert report["attempts"] == []
