#!/usr/bin/env bash
# Build the offline bundle: scripts/bundle.sh VERSION LOCK TORCH_DIR OUT.tar.gz (see `make bundle`).
#
# The archive holds, at its top level: install.sh, runtime.lock (the pins), VERSION, wheelhouse/
# (a wheel of every pinned runtime dependency for CPython 3.11 on manylinux x86_64, the CPU
# torch from TORCH_DIR, and the project's own wheel) and SHA256SUMS of every other file.
# Needs the network (PyPI) and a C++ compiler for the few dependencies PyPI has only as
# sdists; the machine that installs it needs neither.
set -euo pipefail

version=$1 lock=$2 torch_dir=$3 out=$4
python=${PYTHON:-python3.11}
# PyPI has no wheel of these pinned versions: built here, portable (no -march=native).
sdist_only=(hnswlib)

stage=build/bundle/stage
rm -rf "$stage" && mkdir -p "$stage/wheelhouse" "$(dirname "$out")"
start=$SECONDS

echo "bundle: the project's wheel"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$stage/wheelhouse" .

for name in "${sdist_only[@]}"; do
    pin=$(grep -i "^$name==" "$lock")
    echo "bundle: building $pin from its sdist (portable)"
    # No wheel cache: a cached wheel may have been compiled for this machine's CPU.
    HNSWLIB_NO_NATIVE=1 "$python" -m pip wheel --quiet --no-cache-dir --no-deps \
        --no-binary "$name" --wheel-dir "$stage/wheelhouse" "$pin"
done

cp "$torch_dir"/torch-*.whl "$stage/wheelhouse/"

echo "bundle: wheels of every other pin in $lock"
# Binary only: a new sdist-only dependency fails here instead of being built unportably.
# --find-links: torch and the wheels built above are already there.
grep -v '^#' "$lock" | grep -viE "^($(IFS='|'; echo "${sdist_only[*]}")|torch)==" \
    > build/bundle/binary.txt
"$python" -m pip download --quiet --no-deps --only-binary :all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform linux_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    --dest "$stage/wheelhouse" -r build/bundle/binary.txt

cp deploy/bundle/install.sh "$stage/install.sh"
chmod 0755 "$stage/install.sh"
cp "$lock" "$stage/runtime.lock"
echo "$version" > "$stage/VERSION"
(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
    | xargs -d '\n' sha256sum > SHA256SUMS)

echo "bundle: writing $out"
tar -C "$stage" -cf - install.sh runtime.lock VERSION SHA256SUMS wheelhouse | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")" > "$(basename "$out").sha256")
wheels=$(find "$stage/wheelhouse" -name '*.whl' | wc -l)
mb=$(du -m "$out" | cut -f1)
echo "bundle: $out: ${mb} MB, $wheels wheels, built in $((SECONDS - start)) s"
echo "bundle: its sha256 is in $out.sha256"
