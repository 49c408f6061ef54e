#!/usr/bin/env bash
# `make bundle-test`: install the offline bundle with no network at all and use it.
#   scripts/bundle_test.sh dist/local-search-appliance-VERSION.tar.gz
# Unpacks into a fresh temp dir, runs install.sh in a network namespace with no interface
# (unshare -n; needs root), then serves in one with only loopback, waits for /ready, creates a
# collection, upserts and searches (scripts/smoke_http.py, run by the installed Python).
set -euo pipefail

bundle=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
port=${BUNDLE_TEST_PORT:-18765}
work=$(mktemp -d /tmp/bundle-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "bundle-test: $(basename "$bundle"): $(du -m "$bundle" | cut -f1) MB"
mkdir "$work/unpacked"
tar -xzf "$bundle" -C "$work/unpacked"
[ -x "$work/unpacked/install.sh" ] || { echo "bundle-test: no install.sh at the top level" >&2; exit 1; }

# A damaged bundle is refused before anything is installed.
cp -al "$work/unpacked" "$work/damaged"  # hard links: no second copy of the wheels
wheel=$(cd "$work/unpacked" && find wheelhouse -name 'local_search_appliance-*.whl')
rm "$work/damaged/$wheel"
{ cat "$work/unpacked/$wheel"; printf 'x'; } > "$work/damaged/$wheel"
if unshare -n "$work/damaged/install.sh" "$work/damaged-dest" > "$work/damaged.log" 2>&1; then
    echo "bundle-test: install.sh accepted a damaged wheel" >&2
    exit 1
fi
grep -q "checksum mismatch" "$work/damaged.log"
[ ! -e "$work/damaged-dest" ]
rm -rf "$work/damaged"
echo "bundle-test: a damaged bundle is refused (checksum mismatch)"

start=$(date +%s.%N)
unshare -n "$work/unpacked/install.sh" "$work/dest"
install_s=$(echo "$(date +%s.%N) - $start" | bc)
echo "bundle-test: install.sh with no network: $(printf %.0f "$install_s") s," \
    "DEST $(du -sm "$work/dest" | cut -f1) MB"

# Loopback only. The server starts, then the smoke test runs against it, in the same netns.
export APPLIANCE_LOAD_SAMPLE=false APPLIANCE_DATA_DIR="$work/data" PYTHONDONTWRITEBYTECODE=1
unshare -n sh -euc '
    ip link set lo up
    "$1/.venv/bin/appliance" serve --port "$2" > "$3/serve.log" 2>&1 &
    server=$!
    status=0
    "$1/.venv/bin/python" "$4/scripts/smoke_http.py" "http://127.0.0.1:$2" write || status=$?
    kill -TERM "$server"
    wait "$server" 2>/dev/null || true
    exit "$status"
' sh "$work/dest" "$port" "$work" "$repo" || {
    echo "bundle-test: FAILED; the server said:" >&2
    tail -40 "$work/serve.log" >&2
    exit 1
}
echo "bundle-test: passed"
