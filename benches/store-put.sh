#!/usr/bin/env bash
# `ubuntu-ci store put` of a large file into the filesystem store, against `cp` of the same
# file on the same disk in the same run; peak memory of both from /usr/bin/time -v. Then
# `ubuntu-ci create-ticket` with an .orig.tar of the same size (checksummed while streaming).
#
# Usage: benches/store-put.sh [SIZE_MIB]     (default 1024; RUNS=3 repetitions, median taken)
# Target: store put within 1.3x of cp's wall time; every peak RSS under 64 MiB.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

size_mib=${1:-1024}
runs=${RUNS:-3}
[ -x /usr/bin/time ] || install_debian_packages
step "cargo build --release"
cargo build -j2 --release -p ubuntu-ci-cli
bin=$PWD/target/release/ubuntu-ci

work=$(mktemp -d "${BENCH_DIR:-$PWD/target}/store-put.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
step "making a ${size_mib} MiB file in $work"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/big.bin"

# measure NAME COMMAND…: appends "NAME wall_seconds max_rss_kib" to $work/results
measure() {
    local name=$1
    shift
    sync
    /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$work/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    echo "$name $wall $rss" >>"$work/results"
}

for run in $(seq 1 "$runs"); do
    rm -rf "$work/cp" "$work/data"
    mkdir -p "$work/cp"
    measure cp cp "$work/big.bin" "$work/cp/big.bin"
    measure "store-put" "$bin" --data-dir "$work/data" store put bench.run"$run" "$work/big.bin"
    cmp -s "$work/big.bin" "$work/data/store/bench.run$run/big.bin" || { echo "stored copy differs" >&2; exit 1; }
done

step "making a source package with a ${size_mib} MiB .orig.tar"
pkg=$work/pkg
mkdir -p "$pkg"
mv "$work/big.bin" "$pkg/bigpkg_1.0.orig.tar.gz"
printf 'debian/\n' | gzip -n >"$pkg/bigpkg_1.0-1.debian.tar.gz"
sums() { # FIELD-KIND TOOL FILES…
    local tool=$1
    shift
    for f in "$@"; do
        printf ' %s %s %s\n' "$($tool "$pkg/$f" | cut -d' ' -f1)" "$(stat -c %s "$pkg/$f")" "$f"
    done
}
dsc_files=(bigpkg_1.0.orig.tar.gz bigpkg_1.0-1.debian.tar.gz)
{
    printf 'Format: 3.0 (quilt)\nSource: bigpkg\nBinary: bigpkg\nArchitecture: any\nVersion: 1.0-1\n'
    printf 'Maintainer: Bench <bench@example.com>\nChecksums-Sha256:\n'
    sums sha256sum "${dsc_files[@]}"
    printf 'Files:\n'
    sums md5sum "${dsc_files[@]}"
} >"$pkg/bigpkg_1.0-1.dsc"
files=(bigpkg_1.0-1.dsc "${dsc_files[@]}")
{
    printf 'Format: 1.8\nDate: Sat, 28 Nov 2026 00:00:00 +0000\nSource: bigpkg\nArchitecture: source\n'
    printf 'Version: 1.0-1\nDistribution: unstable\nMaintainer: Bench <bench@example.com>\n'
    printf 'Changes:\n bigpkg (1.0-1) unstable; urgency=medium\n .\n   * Benchmark.\nChecksums-Sha256:\n'
    sums sha256sum "${files[@]}"
    printf 'Files:\n'
    for f in "${files[@]}"; do
        printf ' %s %s devel optional %s\n' "$(md5sum "$pkg/$f" | cut -d' ' -f1)" "$(stat -c %s "$pkg/$f")" "$f"
    done
} >"$pkg/bigpkg_1.0-1_source.changes"
rm -rf "$work/data"
measure create-ticket "$bin" --data-dir "$work/data" create-ticket -t bench -o bench@example.com \
    -s "$pkg/bigpkg_1.0-1_source.changes"

step "results (${size_mib} MiB, median of $runs runs)"
awk -v runs="$runs" '
    { wall[$1] = wall[$1] " " $2; if ($3 > rss[$1]) rss[$1] = $3 }
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return a[int((n + 1) / 2)]
    }
    END {
        cp = median(wall["cp"])
        printf "| %-14s | %9s | %9s | %13s |\n", "what", "wall s", "vs cp", "peak RSS MiB"
        printf "|%s|%s|%s|%s|\n", "----------------", "-----------", "-----------", "---------------"
        for (name in wall) {
            m = median(wall[name])
            printf "| %-14s | %9.2f | %8.2fx | %13.1f |\n", name, m, m / cp, rss[name] / 1024
        }
        printf "\ntargets: store put <= 1.30x cp (%s); peak RSS < 64 MiB (store put %s, create-ticket %s)\n",
            (median(wall["store-put"]) / cp <= 1.3) ? "met" : "NOT met",
            (rss["store-put"] / 1024 < 64) ? "met" : "NOT met",
            (rss["create-ticket"] / 1024 < 64) ? "met" : "NOT met"
    }' "$work/results"
