#!/usr/bin/env bash
# The device side of issue 12 item 9, in one call on the lent GPU machine: install the kit's
# wheels (what the machine's image lacks; built by `make device-kit`), then run
# benchmarks/gpu_ingest.py, which writes gpu_ingest.json to $OUT. Arguments go to the script.
# docs/performance.md, "GPU (item 9): how to run", gives the call and its carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${KIT:-.devkit}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
OUT=${OUT:-var/gpu-ingest}
if [ ! -f "$KIT/manifest.json" ]; then
    echo "no kit in $KIT: build it with make device-kit and carry it" >&2
    exit 3
fi
# The exact install line the device notes give: no index, no dependencies resolved there.
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$KIT"/whl/*.whl
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_ingest.py --kit "$KIT" --out "$OUT" "$@"
