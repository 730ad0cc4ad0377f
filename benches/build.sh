#!/usr/bin/env bash
# The example package built through `ubuntu-ci build`, beside sbuild run by hand on the
# same source package with the same chroot tarball and options, in the same run.
#
# Also the `chroot` phase: making the chroot tarball cold (mmdebstrap) versus a cache hit.
#
# Usage: benches/build.sh            (RUNS=3 by default; CHROOT_TARBALL=path reuses a
#                                     chroot tarball and skips the cold measurement)
# Target: ubuntu-ci at most 1.10x sbuild by hand (it adds fetching from the store, storing
# the results, publishing into the PPA).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
runs=${RUNS:-3}

cargo build -j2 --release -p ubuntu-ci-cli >/dev/null
ubuntu_ci=$PWD/target/release/ubuntu-ci
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-build.XXXXXX")
chmod 755 "$work"   # sbuild by hand reads its build folder from a user namespace
trap 'rm -rf -- "$work"' EXIT
examples/packages/build-source.sh "$work/src" >/dev/null 2>&1
changes=$(ls "$work"/src/*_source.changes)
dsc=$(ls "$work"/src/*.dsc)
data="$work/data"

seconds() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Runs `ubuntu-ci build` into PPA $1; prints the seconds its `chroot` phase took (from the
# `==> chroot:` line to the `==> build:` line on stderr).
build_ours() {
    "$ubuntu_ci" --data-dir "$data" build "$changes" --ppa "$1" 2>&1 >/dev/null |
        while IFS= read -r line; do
            case $line in
                "==> chroot:"*) chroot_start=$(seconds) ;;
                "==> build:"*) echo "$(seconds) - $chroot_start" | bc ;;
            esac
        done
}

# The chroot is made once, outside the build timings: cold, measured, unless one is given.
mkdir -p "$data/chroots"
cold=""
if [ -n "${CHROOT_TARBALL:-}" ]; then
    cp "$CHROOT_TARBALL" "$data/chroots/bookworm-amd64.tar.zst"
else
    cold=$(build_ours ppa:ci-team/ppa_warmup)
fi
tarball="$data/chroots/bookworm-amd64.tar.zst"
test -f "$tarball"

ours=() theirs=() hits=()
for i in $(seq 1 "$runs"); do
    start=$(seconds)
    hits+=("$(build_ours "ppa:ci-team/ppa_bench_$i")")
    ours+=("$(echo "$(seconds) - $start" | bc)")

    out="$work/by-hand-$i"
    mkdir -p "$out"
    start=$(seconds)
    (cd "$out" && sbuild --chroot-mode=unshare --chroot="$tarball" --dist=bookworm --arch=amd64 \
        --no-run-lintian --no-run-piuparts --no-run-autopkgtest --build-dir="$out" "$dsc" \
        >/dev/null 2>&1)
    theirs+=("$(echo "$(seconds) - $start" | bc)")
done
our=$(printf '%s\n' "${ours[@]}" | median)
their=$(printf '%s\n' "${theirs[@]}" | median)
printf '%-28s %10s\n' "" "median (s)"
printf '%-28s %10.1f\n' "sbuild by hand" "$their"
printf '%-28s %10.1f\n' "ubuntu-ci build" "$our"
printf '%-28s %10.2fx\n' "ratio (ubuntu-ci / sbuild)" "$(echo "$our / $their" | bc -l)"
hit=$(printf '%s\n' "${hits[@]}" | median)
printf '\n%-28s %10s\n' "chroot phase" "(s)"
if [ -n "$cold" ]; then
    printf '%-28s %10.1f\n' "cold (mmdebstrap)" "$cold"
fi
printf '%-28s %10.2f\n' "cache hit (median)" "$hit"
