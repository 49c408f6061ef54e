#!/bin/sh
# Install the local search appliance from this offline bundle: ./install.sh DEST
#
# Needs Python 3.11 with its venv module (Debian/Ubuntu: python3.11-venv) and nothing else:
# no network, no package index. Every file's sha256 is checked against SHA256SUMS first;
# then DEST/.venv is created (or upgraded in place) and pip installs from wheelhouse/ only,
# with the exact versions of runtime.lock. Start it with DEST/.venv/bin/appliance serve.
# PYTHON=/path/to/python3.11 ./install.sh DEST picks the interpreter.
set -eu

die() {
    echo "install.sh: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: $0 DEST  (installs into DEST/.venv)"
dest=$1
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# 1. Integrity, before anything runs from the bundle.
[ -f SHA256SUMS ] || die "SHA256SUMS is missing: not an intact bundle"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is needed"
if ! sha256sum --check --strict --quiet SHA256SUMS; then
    die "checksum mismatch (above): the bundle is damaged or altered; copy it again"
fi
# pip reads every wheel in wheelhouse/: refuse one that SHA256SUMS does not list.
listed=$(sed -n 's/^[0-9a-f]\{64\}  //p' SHA256SUMS | grep '^wheelhouse/' | LC_ALL=C sort)
present=$(find wheelhouse -type f | LC_ALL=C sort)
[ "$listed" = "$present" ] || die "wheelhouse/ holds files SHA256SUMS does not list"
version=$(cat VERSION)
echo "install.sh: all $(wc -l < SHA256SUMS) files match SHA256SUMS (local-search-appliance $version)"

# 2. Python 3.11.
is_311() {
    "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null
}
python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && is_311 "$candidate"; then
            python=$candidate
            break
        fi
    done
fi
[ -n "$python" ] || die "no Python 3.11 found (python3.11 or python3); set PYTHON=/path/to/it"
is_311 "$python" || die "$python is not Python 3.11: the wheels are built for CPython 3.11"
"$python" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$python lacks venv/ensurepip (Debian/Ubuntu: apt install python3.11-venv)"

# 3. pip from the wheelhouse only: no configuration file, no index, no environment override.
for var in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$var"
done
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1

mkdir -p "$dest"
venv=$(cd "$dest" && pwd)/.venv
if [ -x "$venv/bin/python" ]; then
    echo "install.sh: upgrading the existing $venv"
else
    echo "install.sh: creating $venv with $python"
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --no-index --find-links "$here/wheelhouse" \
    --constraint "$here/runtime.lock" --upgrade "local-search-appliance==$version"
"$venv/bin/appliance" --help >/dev/null || die "the installed appliance does not start"

echo "install.sh: installed local-search-appliance $version into $venv"
echo "install.sh: start it with: $venv/bin/appliance serve --data-dir /path/to/data"
