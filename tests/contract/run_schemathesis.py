"""The OpenAPI contract check: schemathesis with every check on (stateful phase included, 60
examples per operation) against a real `appliance serve` on loopback. Exits non-zero on any
failure. `make test-contract` runs it; so does `make test-reliability`.

    .venv/bin/python tests/contract/run_schemathesis.py [--examples 60] [--seed 1]

Where a request can be refused only by the server (a cursor it never issued, the filter
grammar, a model that is not installed), the schema documents the 400, and
tests/contract/schemathesis.toml lists those operations' 400 as an expected answer to
schema-valid data: the check still fails on anything else (5xx, undocumented codes, bodies
that do not match the schema, accepted invalid data).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.live_server import LIVE_KEY, running_server  # noqa: E402

CONFIG = Path(__file__).with_name("schemathesis.toml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    st = Path(sys.executable).with_name("st")
    with (
        tempfile.TemporaryDirectory() as work,
        running_server(
            Path(work),
            admin_key=LIVE_KEY,
            warm_top_queries="0",
            rate_limit_read="0",
            rate_limit_write="0",
            rate_limit_anonymous="0",
            rate_limit_admin="0",
        ) as url,
    ):
        command = [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{url}/schema/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(args.examples),
            "--seed",
            str(args.seed),
            "--header",
            f"Authorization: Bearer {LIVE_KEY}",
            "--continue-on-failure",
        ]
        print(" ".join(command[:9]), "...", flush=True)
        return subprocess.run(command, cwd=work).returncode


if __name__ == "__main__":
    raise SystemExit(main())
