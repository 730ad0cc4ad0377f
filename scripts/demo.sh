#!/usr/bin/env bash
# The main job on embedded defaults: builds ubuntu-ci, builds the example source package
# (examples/packages/hello-ci), submits it with `ubuntu-ci create-ticket`, shows the
# ticket, takes a PPA from the pool for it, publishes the source into that signed archive,
# builds it there with sbuild (`ubuntu-ci build`, the build log live), makes a bookworm
# base image and an image with the PPA's hello-ci installed (`ubuntu-ci image`), runs
# hello-ci's DEP-8 tests in that image (`ubuntu-ci test`, autopkgtest), proves
# apt reads the archive (apt-get update, apt-get source and apt-get download with a private
# apt configuration, signature checking on), and gives the PPA back. Then the whole
# request in one command: `ubuntu-ci create-ticket --wait` runs it through the lander
# (PPA, build, image, tests, publishing into ppa:ci-team/ppa_archive). State goes where
# ubuntu-ci keeps it by default ($XDG_DATA_HOME/ubuntu-ci), unless UBUNTU_CI_DATA_DIR says
# otherwise.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

install_debian_packages
ensure_subordinate_ids
step "cargo build"
cargo build -j2 -p ubuntu-ci-cli
ubuntu_ci=target/debug/ubuntu-ci

step "building the example source package"
out=$(mktemp -d "${TMPDIR:-/tmp}/hello-ci.XXXXXX")
trap 'rm -rf -- "$out"' EXIT
examples/packages/build-source.sh "$out"
changes=$(ls "$out"/*_source.changes)

step "ubuntu-ci create-ticket"
# The owner comes from DEBEMAIL when it is set (as dch does), else a placeholder.
owner=()
[ -n "${DEBEMAIL:-}" ] || owner=(-o dev@example.com)
uri=$("$ubuntu_ci" create-ticket -t "hello-ci 1.0-1" -d "CI of the example package" -b 123 \
    "${owner[@]}" -s "$changes")
echo "$uri"

step "ubuntu-ci ticket show"
"$ubuntu_ci" ticket show "$uri"

ticket=$(basename "$uri")

step "ubuntu-ci ppa get --ticket $ticket"
"$ubuntu_ci" ppa get --ticket "$ticket"
got=$("$ubuntu_ci" --json ppa get --ticket "$ticket")
ppa=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])' <<<"$got")
archive=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["archive_url"])' <<<"$got")
# Whatever happens next, the PPA goes back to the pool.
trap 'rm -rf -- "$out"; "$ubuntu_ci" ppa release --ticket "$ticket" >/dev/null || true' EXIT

step "ubuntu-ci ppa publish $ppa"
"$ubuntu_ci" ppa publish "$ppa" "$changes"
"$ubuntu_ci" ppa packages "$ppa"

step "ubuntu-ci build $(basename "$changes") --ppa $ppa"
"$ubuntu_ci" build "$changes" --ppa "$ppa"
"$ubuntu_ci" ppa packages "$ppa"

step "ubuntu-ci image bootstrap (a bookworm base image, made once and reused)"
base=$("$ubuntu_ci" image bootstrap)
echo "$base"

step "ubuntu-ci image build: the base with $ppa's hello-ci installed"
image=$("$ubuntu_ci" image build --base "$base" --ppa "$ppa" --package hello-ci --ticket "$ticket")
echo "$image"

step "ubuntu-ci test: hello-ci's DEP-8 tests in that image (autopkgtest, unshare test bed)"
"$ubuntu_ci" test "$image" hello-ci --ticket "$ticket"
"$ubuntu_ci" ticket show "$ticket"

step "apt-get update, apt-get source and apt-get download from $ppa (private apt configuration, signed-by its key)"
apt_root="$out/apt"
mkdir -p "$apt_root"/etc/apt/apt.conf.d "$apt_root"/etc/apt/preferences.d \
    "$apt_root"/etc/apt/sources.list.d "$apt_root"/var/lib/apt/lists/partial \
    "$apt_root"/var/cache/apt/archives/partial "$apt_root"/var/lib/dpkg \
    "$apt_root"/var/log/apt "$apt_root"/work
touch "$apt_root/var/lib/dpkg/status"
"$ubuntu_ci" ppa key "$ppa" >"$apt_root/ppa.asc"
printf 'deb [signed-by=%s] %s bookworm main\ndeb-src [signed-by=%s] %s bookworm main\n' \
    "$apt_root/ppa.asc" "$archive" "$apt_root/ppa.asc" "$archive" >"$apt_root/etc/apt/sources.list"
printf '%s\n' \
    "Dir \"$apt_root/\";" \
    "Dir::State::status \"$apt_root/var/lib/dpkg/status\";" \
    "Dir::Etc::Parts \"$apt_root/etc/apt/apt.conf.d\";" \
    "Dir::Etc::Main \"$apt_root/etc/apt/apt.conf\";" \
    "APT::Sandbox::User \"root\";" \
    "Debug::NoLocking \"true\";" >"$apt_root/apt.conf"
cat "$apt_root/etc/apt/sources.list"
APT_CONFIG="$apt_root/apt.conf" apt-get update
(cd "$apt_root/work" && APT_CONFIG="$apt_root/apt.conf" apt-get source --download-only hello-ci &&
    APT_CONFIG="$apt_root/apt.conf" apt-get download hello-ci && ls -l)

step "ubuntu-ci ppa release --ticket $ticket"
"$ubuntu_ci" ppa release --ticket "$ticket"
"$ubuntu_ci" ppa list

step "ubuntu-ci create-ticket --wait: the whole request in one command (the lander)"
"$ubuntu_ci" create-ticket -t "hello-ci through the lander" "${owner[@]}" -s "$changes" --wait
"$ubuntu_ci" ppa list
