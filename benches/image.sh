#!/usr/bin/env bash
# `ubuntu-ci image build` and `ubuntu-ci test` on the example package, each beside the same
# work run by hand in the same run, alternating:
#
# - image: mmdebstrap (unshare mode, custom variant) unpacking the base image, adding the
#   PPA as a signed apt source, `apt-get install hello-ci`, `apt-get clean`;
# - test: `autopkgtest --no-built-binaries <source>/ -- unshare --tarball <image> --bind <PPA> …`.
#
# Also the first image build on a base image not yet in the local cache (fetched from the
# data store, hashed and unpacked) beside the following ones, which build on an overlay of
# the cached tree. The hand run unpacks the base every time, as mmdebstrap does.
#
# Usage: benches/image.sh     (RUNS=3 by default; CHROOT_TARBALL=path reuses a build chroot)
# Target: at most 1.10x the hand-run time; a second image build on a cached base at least
# 2x faster than the first.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
runs=${RUNS:-3}

cargo build -j2 --release -p ubuntu-ci-cli >/dev/null
ubuntu_ci=$PWD/target/release/ubuntu-ci
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-image.XXXXXX")
chmod 755 "$work"
trap 'rm -rf -- "$work"' EXIT
data="$work/data"
uci() { "$ubuntu_ci" --data-dir "$data" "$@"; }
examples/packages/build-source.sh "$work/src" >/dev/null 2>&1
changes=$(ls "$work"/src/*_source.changes)
dsc=$(ls "$work"/src/*.dsc)
ppa=ppa:ci-team/ppa_bench

# Set-up, outside the timings: the example built into the PPA, a base image.
mkdir -p "$data/chroots"
if [ -n "${CHROOT_TARBALL:-}" ]; then
    cp "$CHROOT_TARBALL" "$data/chroots/bookworm-amd64.tar.zst"
fi
uci build "$changes" --ppa "$ppa" >/dev/null 2>&1
base=$(uci image bootstrap 2>/dev/null)
base_file=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).path)' "$base")
archive="$data/ppa/ci-team/ppa_bench"
dpkg-source -x "$dsc" "$work/tree" >/dev/null 2>&1

# The same work by hand: a snapshot of the PPA where the build's user namespace reaches it.
hand="$work/hand"
mkdir -p "$hand"
chmod 755 "$hand"
cp -a "$archive" "$hand/ppa"
chmod -R a+rX "$hand/ppa"
cat >"$hand/setup.sh" <<'HOOK'
#!/bin/sh
set -eu
tar --exclude='./dev/*' --directory "$1" --extract --file "$BASE"
HOOK
cat >"$hand/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
root="$1"
mkdir -p "$root/etc/apt/keyrings" "$root/srv/ubuntu-ci-ppa/ci-team/ppa_bench"
cp "$HAND/ppa/key.asc" "$root/etc/apt/keyrings/bench.asc"
echo "deb [signed-by=/etc/apt/keyrings/bench.asc] file:/srv/ubuntu-ci-ppa/ci-team/ppa_bench bookworm main" \
    >"$root/etc/apt/sources.list.d/bench.list"
mount -o bind,ro "$HAND/ppa" "$root/srv/ubuntu-ci-ppa/ci-team/ppa_bench"
chroot "$root" apt-get update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends hello-ci
chroot "$root" apt-get clean
umount "$root/srv/ubuntu-ci-ppa/ci-team/ppa_bench"
HOOK
chmod 755 "$hand"/*.sh

seconds() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
since() { echo "$(seconds) - $1" | bc; }

our_images=() hand_images=() our_tests=() hand_tests=()
first=""
for i in $(seq 1 "$runs"); do
    if [ "$i" -eq 1 ]; then
        # The first build fetches the base and unpacks it into the cache (its files are
        # owned by the subordinate ids: removed from a namespace that maps them).
        unshare --map-auto --map-root-user rm -rf "$data/images/base"
    fi
    start=$(seconds)
    image_url=$(uci image build --base "$base" --ppa "$ppa" --package hello-ci 2>/dev/null)
    took=$(since "$start")
    if [ "$i" -eq 1 ]; then first=$took; else our_images+=("$took"); fi

    start=$(seconds)
    HAND="$hand" BASE="$base_file" TMPDIR="$hand" mmdebstrap --mode=unshare --variant=custom \
        --architectures=amd64 --skip=update --skip=cleanup/apt/lists \
        --setup-hook="$hand/setup.sh" --customize-hook="$hand/customize.sh" \
        '' "$hand/image-$i.tar.zst" >/dev/null 2>&1
    hand_images+=("$(since "$start")")

    start=$(seconds)
    uci test "$image_url" hello-ci >/dev/null 2>&1
    our_tests+=("$(since "$start")")

    start=$(seconds)
    rc=0
    TMPDIR="$hand" autopkgtest --no-built-binaries "$work/tree/" -- unshare --arch=amd64 \
        --tarball="$hand/image-$i.tar.zst" \
        --bind "$hand/ppa" /srv/ubuntu-ci-ppa/ci-team/ppa_bench >/dev/null 2>&1 || rc=$?
    hand_tests+=("$(since "$start")")
    [ "$rc" -eq 0 ] || { echo "autopkgtest by hand failed ($rc)" >&2; exit 1; }
    rm -f "$hand/image-$i.tar.zst"
done
if [ "${#our_images[@]}" -eq 0 ]; then our_images=("$first"); fi

our_image=$(printf '%s\n' "${our_images[@]}" | median)
hand_image=$(printf '%s\n' "${hand_images[@]}" | median)
our_test=$(printf '%s\n' "${our_tests[@]}" | median)
hand_test=$(printf '%s\n' "${hand_tests[@]}" | median)
printf 'samples (s): image by hand %s | ours %s (first %s) | test by hand %s | ours %s\n\n' \
    "${hand_images[*]}" "${our_images[*]}" "$first" "${hand_tests[*]}" "${our_tests[*]}"
printf '%-36s %10s %10s %8s\n' "" "by hand" "ubuntu-ci" "ratio"
printf '%-36s %10.1f %10.1f %7.2fx\n' "image build, median (s)" "$hand_image" "$our_image" \
    "$(echo "$our_image / $hand_image" | bc -l)"
printf '%-36s %10.1f %10.1f %7.2fx\n' "DEP-8 run, median (s)" "$hand_test" "$our_test" \
    "$(echo "$our_test / $hand_test" | bc -l)"
printf '\n%-36s %10.1f\n' "first image build, base fetched (s)" "$first"
printf '%-36s %10.1f\n' "later image builds, base cached (s)" "$our_image"
printf '%-36s %9.2fx\n' "first / cached" "$(echo "$first / $our_image" | bc -l)"
