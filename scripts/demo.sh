#!/usr/bin/env bash
# The main job on embedded defaults: builds ubuntu-ci, builds the example source package
# (examples/packages/hello-ci), submits it with `ubuntu-ci create-ticket` and shows the
# ticket. State goes where ubuntu-ci keeps it by default ($XDG_DATA_HOME/ubuntu-ci), unless
# UBUNTU_CI_DATA_DIR says otherwise.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

install_debian_packages
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
