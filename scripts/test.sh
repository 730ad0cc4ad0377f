#!/usr/bin/env bash
# Sets up a fresh machine of this project's kind and runs every test of ubuntu-ci:
# formatting, clippy, and `cargo test` of the whole workspace with every feature, against
# the PostgreSQL on loopback. Idempotent: run it as often as you like.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

install_debian_packages
ensure_subordinate_ids
start_postgres
export UBUNTU_CI_TEST_POSTGRES=${UBUNTU_CI_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy -j2 --workspace --all-targets --all-features -- -D warnings
step "cargo test"
# The end-to-end tests run the `ubuntu-ci` binary, which `cargo test` does not build.
cargo build -j2 --workspace --all-features --bins
cargo test -j2 --workspace --all-features 2>&1 | tee target/test.log
# A `cargo test` that ran nothing is a broken test setup, not a success.
if ! grep -Eq '^test result: ok\. [1-9]' target/test.log; then
    echo "no test ran" >&2
    exit 1
fi

python_tests
