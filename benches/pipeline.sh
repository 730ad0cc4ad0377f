#!/usr/bin/env bash
# The whole pipeline on the example package: `ubuntu-ci create-ticket --wait` (ticket,
# upload, PPA, sbuild, image, autopkgtest, publishing), beside the same steps run by hand
# with the same cached build chroot and base image, in the same run, alternating:
#
# - sbuild --chroot-mode=unshare on the .dsc with the chroot tarball;
# - a flat apt repository of the built .debs (dpkg-scanpackages);
# - mmdebstrap (unshare mode, custom variant) unpacking the base image, adding that
#   repository, `apt-get install hello-ci`, `apt-get clean`;
# - autopkgtest --no-built-binaries on the source tree in that image.
#
# A first `create-ticket --wait`, outside the timings, makes the chroot (unless
# CHROOT_TARBALL is given) and the series' base image.
#
# Usage: benches/pipeline.sh     (RUNS=3 by default; CHROOT_TARBALL=path reuses a chroot)
# Target: ubuntu-ci at most 1.10x the hand-run time.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
runs=${RUNS:-3}

cargo build -j2 --release -p ubuntu-ci-cli >/dev/null
ubuntu_ci=$PWD/target/release/ubuntu-ci
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-pipeline.XXXXXX")
chmod 755 "$work"   # sbuild and mmdebstrap by hand read from user namespaces
trap 'unshare --map-auto --map-root-user rm -rf -- "$work" 2>/dev/null || rm -rf -- "$work"' EXIT
data="$work/data"
uci() { "$ubuntu_ci" --data-dir "$data" "$@"; }
examples/packages/build-source.sh "$work/src" >/dev/null 2>&1
changes=$(ls "$work"/src/*_source.changes)
dsc=$(ls "$work"/src/*.dsc)
dpkg-source -x "$dsc" "$work/tree" >/dev/null 2>&1

# Set-up, outside the timings.
mkdir -p "$data/chroots"
if [ -n "${CHROOT_TARBALL:-}" ]; then
    cp "$CHROOT_TARBALL" "$data/chroots/bookworm-amd64.tar.zst"
fi
uci create-ticket -t warm-up -o bench@example.com -s "$changes" --wait >/dev/null 2>&1
tarball="$data/chroots/bookworm-amd64.tar.zst"
# The series' base image the warm-up made (found again by its recipe, not made again).
base=$(uci image bootstrap 2>/dev/null)
base_file=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).path)' "$base")
test -f "$tarball" && test -f "$base_file"

hand="$work/hand"
mkdir -p "$hand"
chmod 755 "$hand"
cat >"$hand/setup.sh" <<'HOOK'
#!/bin/sh
set -eu
tar --exclude='./dev/*' --directory "$1" --extract --file "$BASE"
HOOK
cat >"$hand/customize.sh" <<'HOOK'
#!/bin/sh
set -eu
root="$1"
mkdir -p "$root/srv/repo"
echo "deb [trusted=yes] file:/srv/repo ./" >"$root/etc/apt/sources.list.d/bench.list"
mount -o bind,ro "$REPO" "$root/srv/repo"
chroot "$root" apt-get update
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends hello-ci
chroot "$root" apt-get clean
umount "$root/srv/repo"
rm -f "$root/etc/apt/sources.list.d/bench.list"
HOOK
chmod 755 "$hand"/*.sh

seconds() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
since() { echo "$(seconds) - $1" | bc; }

ours=() theirs=()
for i in $(seq 1 "$runs"); do
    start=$(seconds)
    uci create-ticket -t "bench $i" -o bench@example.com -s "$changes" --wait >/dev/null 2>&1
    ours+=("$(since "$start")")

    run="$hand/run-$i"
    mkdir -p "$run/build" "$run/repo"
    chmod -R 755 "$run"
    start=$(seconds)
    (cd "$run/build" && sbuild --chroot-mode=unshare --chroot="$tarball" --dist=bookworm \
        --arch=amd64 --no-run-lintian --no-run-piuparts --no-run-autopkgtest \
        --build-dir="$run/build" "$dsc" >/dev/null 2>&1)
    cp "$run"/build/*.deb "$run/repo/"
    (cd "$run/repo" && dpkg-scanpackages . /dev/null >Packages 2>/dev/null)
    chmod -R a+rX "$run/repo"
    REPO="$run/repo" BASE="$base_file" TMPDIR="$hand" mmdebstrap --mode=unshare \
        --variant=custom --architectures=amd64 --skip=update --skip=cleanup/apt/lists \
        --setup-hook="$hand/setup.sh" --customize-hook="$hand/customize.sh" \
        '' "$run/image.tar.zst" >/dev/null 2>&1
    rc=0
    TMPDIR="$hand" autopkgtest --no-built-binaries "$work/tree/" -- unshare --arch=amd64 \
        --tarball="$run/image.tar.zst" >/dev/null 2>&1 || rc=$?
    theirs+=("$(since "$start")")
    [ "$rc" -eq 0 ] || { echo "autopkgtest by hand failed ($rc)" >&2; exit 1; }
    rm -rf "$run"
done

our=$(printf '%s\n' "${ours[@]}" | median)
their=$(printf '%s\n' "${theirs[@]}" | median)
printf 'samples (s): by hand %s | ubuntu-ci %s\n\n' "${theirs[*]}" "${ours[*]}"
printf '%-40s %10s\n' "" "median (s)"
printf '%-40s %10.1f\n' "by hand (sbuild, repo, mmdebstrap, autopkgtest)" "$their"
printf '%-40s %10.1f\n' "ubuntu-ci create-ticket --wait" "$our"
printf '%-40s %10.2fx\n' "ratio (ubuntu-ci / by hand)" "$(echo "$our / $their" | bc -l)"
