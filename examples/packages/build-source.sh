#!/usr/bin/env bash
# Builds the source package of examples/packages/hello-ci: the orig tarball, the Debian
# tarball, the .dsc and the _source.changes, written to OUTDIR.
#
# Usage: build-source.sh [OUTDIR]        (default: examples/packages/out/)
#
# Only dpkg-dev is needed (dpkg-source, dpkg-genchanges); nothing is compiled and no
# build dependency is installed on the host: building binaries is sbuild's job. The orig
# tarball is reproducible (sorted, fixed owner and mtime from debian/changelog). The
# .changes is not signed.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# HELLO_CI_SOURCE_DIR builds a modified copy of the package (the tests use it).
package_dir=${HELLO_CI_SOURCE_DIR:-"$here/hello-ci"}
outdir=${1:-"$here/out"}

die() {
    echo "build-source.sh: $*" >&2
    exit 1
}

for tool in dpkg-source dpkg-genchanges dpkg-parsechangelog tar gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (install dpkg-dev)"
done
[ -f "$package_dir/debian/changelog" ] || die "no package at $package_dir"

changelog_field() {
    dpkg-parsechangelog --file "$package_dir/debian/changelog" --show-field "$1"
}
source_name=$(changelog_field Source)
version=$(changelog_field Version)
version_without_epoch=${version#*:}
upstream_version=${version_without_epoch%-*}
# Every timestamp written (tarball members, .changes Date) comes from the changelog.
SOURCE_DATE_EPOCH=$(changelog_field Timestamp)
export SOURCE_DATE_EPOCH

mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/build-source.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

tree="$source_name-$upstream_version"
mkdir -- "$work/$tree"

# Upstream files: everything but debian/ and what an in-tree `make` may have left behind.
tar -C "$package_dir" --exclude-vcs --exclude-backups --exclude=./debian \
    --exclude="./$source_name" --exclude='*.o' -cf - . | tar -C "$work/$tree" -xf -
find "$work/$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

orig="${source_name}_${upstream_version}.orig.tar.gz"
tar -C "$work" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
    --mode='u+rw,go=rX' --mtime="@$SOURCE_DATE_EPOCH" -cf - "$tree" | gzip -9 -n >"$work/$orig"

# The packaging, without leftovers of an in-tree package build.
tar -C "$package_dir" --exclude-backups --exclude="debian/$source_name" \
    --exclude=debian/.debhelper --exclude=debian/tmp --exclude=debian/files \
    --exclude='debian/*.substvars' --exclude='debian/*.debhelper.log' \
    --exclude=debian/debhelper-build-stamp -cf - debian | tar -C "$work/$tree" -xf -
# Executable bits are easily lost on the way (checkouts, copies); dpkg-source keeps them.
chmod 0755 "$work/$tree/debian/rules"
if [ -d "$work/$tree/debian/tests" ]; then
    find "$work/$tree/debian/tests" -type f ! -name control -exec chmod 0755 {} +
fi
find "$work/$tree/debian" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

(cd "$work" && dpkg-source --build "$tree")

changes="${source_name}_${version_without_epoch}_source.changes"
(cd "$work/$tree" && dpkg-genchanges --build=source -sa -O"../$changes")

dsc="${source_name}_${version_without_epoch}.dsc"
debian_tarball=$(cd "$work" && ls -- "${source_name}_${version_without_epoch}".debian.tar.*)
for file in "$orig" "$debian_tarball" "$dsc" "$changes"; do
    cp -f -- "$work/$file" "$outdir/$file"
    echo "$outdir/$file"
done
