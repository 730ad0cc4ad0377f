#!/usr/bin/env bash
# put_file from Python (the ubuntu_ci wheel, a release build) beside the same through the
# Rust API, in the same run: 1,000 small objects one after the other, and one large file
# (1 GiB by default) from a file object, read by the library and streamed through Python.
#
# Usage: benches/python-put.sh [SIZE_MIB]   (RUNS=3 by default; COUNT=1000 small objects)
# Targets: the large file within 1.2x of Rust; a per-call overhead under 50 us.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

size_mib=${1:-1024}
runs=${RUNS:-3}
count=${COUNT:-1000}
venv=target/bench-venv
work=$(mktemp -d "${BENCH_DIR:-$PWD/target}/python-put.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

step "the wheel (release) in $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.7,<2"
(cd ubuntu-ci-py && "../$venv/bin/maturin" build --release -j2 --out "$work/wheels")
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall "$work"/wheels/ubuntu_ci-*.whl
step "the Rust baseline (release)"
bench=$(cargo bench -j2 -p ubuntu-ci-tests --bench put_file --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "put_file" and m.get("executable"):
        print(m["executable"])')
step "making a ${size_mib} MiB file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"
step "measuring"
"$venv/bin/python" benches/python_put.py "$bench" "$work" "$work/big.bin" "$count" 1024 "$runs"
