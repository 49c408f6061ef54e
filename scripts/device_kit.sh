#!/usr/bin/env bash
# Fill .devkit/ (git-ignored) with what benchmarks/gpu_ingest.sh needs on a lent GPU machine
# (Python 3.12, torch and sentence-transformers installed, no network, 64 MiB per call with
# the repo): the py3.12 wheels of the runtime dependencies its image lacks that the ingest and
# query path import, the embedding model (float16-packed, benchmarks/gpu_kit.py) and SciFact.
# Needs the network (pip download) and a python3.12 to build hnswlib, which has no cp312 wheel.
#   scripts/device_kit.sh            # = make device-kit
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${KIT:-.devkit}
PYTHON=${PYTHON:-.venv/bin/python}
LOCK=requirements/runtime.lock
# Imported on the ingest/query path (appliance.service, torch backend, hnswlib index) and
# absent from the device image (docs: .library/device/KINDS.md's package list). faiss-cpu
# (19 MB) is left out: its import waits for a faiss index (appliance/index/faiss_index.py).
# litestar, uvicorn, openvino, psycopg are not imported on this path. typing-extensions is
# in the image at a version not listed there; alembic needs >= 4.12, so the lock's travels.
PACKAGES=(sqlalchemy alembic mako msgspec cachetools pystemmer typing-extensions)
MAX_BYTES=$((64 * 1024 * 1024))
CACHE=build/devkit-cache

python312() { # a working CPython 3.12 (a pyenv shim of one that is not selected does not run)
    local candidate
    for candidate in "${PYTHON312:-}" python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
        if [ -n "$candidate" ] &&
            "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "no python3.12 to build hnswlib with (set PYTHON312)" >&2
    exit 1
}

pin() { # the version requirements/runtime.lock pins for a package
    local line
    line=$(grep -i -m1 "^$1==" "$LOCK") || { echo "$1 is not pinned in $LOCK" >&2; exit 1; }
    echo "${line#*==}"
}

rm -rf "$KIT/whl" && mkdir -p "$KIT/whl" "$CACHE"
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 \
    manylinux_2_5 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
for name in "${PACKAGES[@]}"; do
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" -d "$KIT/whl" "$name==$(pin "$name")"
done

# hnswlib: built here for CPython 3.12, once (cached in build/). -march=x86-64-v3 (AVX2, FMA)
# instead of hnswlib's default -march=native, so that it runs on the device's CPU too; -g0
# keeps the wheel at ~0.3 MB instead of 2.7. Setuptools compiles C++ with CXXFLAGS, which
# replace Python's own flags, so -O3 and -DNDEBUG are named again.
hnswlib_version=$(pin hnswlib)
built=$(ls "$CACHE"/hnswlib-"$hnswlib_version"-cp312-*.whl 2>/dev/null | head -1 || true)
if [ -z "$built" ]; then
    py312=$(python312)
    venv=$(mktemp -d)
    trap 'rm -rf "$venv"' EXIT
    "$py312" -m venv "$venv"
    "$venv/bin/pip" install -q pybind11 numpy setuptools wheel
    HNSWLIB_NO_NATIVE=1 CXXFLAGS="-march=x86-64-v3 -O3 -DNDEBUG -g0" "$venv/bin/pip" wheel -q \
        --no-deps --no-cache-dir --no-build-isolation --no-binary=:all: -w "$CACHE" \
        "hnswlib==$hnswlib_version"
    built=$(ls "$CACHE"/hnswlib-"$hnswlib_version"-cp312-*.whl | head -1)
fi
cp "$built" "$KIT/whl/"

# The model and the corpus, with the cast model's vectors checked against the original's.
"$PYTHON" -m benchmarks.gpu_kit --out "$KIT"

kit_bytes=$(du -sb "$KIT" | cut -f1)
repo_bytes=$( (git ls-files; git ls-files --others --exclude-standard) | while read -r f; do
    [ -f "$f" ] && printf '%s\0' "$f"; done | du -cb --files0-from=- | tail -1 | cut -f1)
total=$((kit_bytes + repo_bytes))
ls -l "$KIT/whl"
awk -v kit="$KIT" -v k="$kit_bytes" -v r="$repo_bytes" 'BEGIN { m = 1048576;
    printf "kit %s: %.1f MiB; with the working tree (%.1f MiB): %.1f MiB of the 64 MiB a call\n",
        kit, k / m, r / m, (k + r) / m }'
if [ "$total" -gt "$MAX_BYTES" ]; then
    echo "too big for one device call" >&2
    exit 1
fi
