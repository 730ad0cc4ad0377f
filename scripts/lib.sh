# Shared set-up steps of scripts/*.sh (sourced, not run).

step() {
    printf '\n==> %s\n' "$*" >&2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the tests and the main job need: dpkg-source, dpkg-genchanges,
# dpkg-scanpackages (dpkg-dev); apt-get with its gpgv for the archive proofs (apt, gpgv);
# gpg for the signed-upload tests (gnupg); apt-ftparchive for the archive benchmark
# (apt-utils); xz for the compression checks (xz-utils); sbuild in unshare mode with
# chroots made by mmdebstrap for the builds (sbuild, mmdebstrap, uidmap; zstd for the
# chroot tarballs and images); autopkgtest for the DEP-8 tests.
DEBIAN_PACKAGES=(dpkg-dev time apt gpgv gnupg apt-utils xz-utils sbuild mmdebstrap uidmap zstd autopkgtest)

install_debian_packages() {
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Unshare-mode builds map the building user's ids to a subordinate range: give the user one
# of 65536 ids in /etc/subuid and /etc/subgid unless it has one.
ensure_subordinate_ids() {
    local user file
    user=$(id -un)
    for file in /etc/subuid /etc/subgid; do
        if ! grep -q "^$user:" "$file" 2>/dev/null; then
            step "adding $user:100000:65536 to $file (for unshare-mode builds)"
            echo "$user:100000:65536" | as_root tee -a "$file" >/dev/null
        fi
    done
}

start_postgres() {
    if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
        step "starting PostgreSQL"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
}

# The Python bindings: builds the wheel with maturin, installs it into a fresh virtual
# environment (target/py-venv), lints the package and runs its pytest suite (which starts
# the `ubuntu-ci` binary of target/debug for its server tests).
PYTHON_TOOLS=("maturin>=1.7,<2" "pytest>=7,<10" "ruff==0.17.6")
python_tests() {
    local venv=target/py-venv
    rm -rf "$venv" target/wheels
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}"
    step "Python: the wheel (maturin)"
    (cd ubuntu-ci-py && "../$venv/bin/maturin" build -j2 --out ../target/wheels)
    "$venv/bin/pip" install --quiet --disable-pip-version-check target/wheels/ubuntu_ci-*.whl
    step "Python: ruff"
    "$venv/bin/ruff" check ubuntu-ci-py examples/python benches
    "$venv/bin/ruff" format --check ubuntu-ci-py examples/python benches
    step "Python: pytest"
    (cd ubuntu-ci-py && UBUNTU_CI_BIN="$PWD/../target/debug/ubuntu-ci" "../$venv/bin/pytest" -q tests)
    # The oldest Python the wheel is for, when the machine has it (pyenv's, or on PATH).
    local oldest
    oldest=$(ls "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9 2>/dev/null | head -n1 || true)
    if [ -z "$oldest" ] && python3.9 -c '' 2>/dev/null; then
        oldest=$(command -v python3.9)
    fi
    if [ -n "$oldest" ]; then
        step "Python 3.9: the same wheel, every test but the real pipeline's"
        rm -rf target/py39-venv
        "$oldest" -m venv target/py39-venv
        target/py39-venv/bin/pip install --quiet --disable-pip-version-check "pytest>=7,<10" target/wheels/ubuntu_ci-*.whl
        (cd ubuntu-ci-py && UBUNTU_CI_BIN="$PWD/../target/debug/ubuntu-ci" ../target/py39-venv/bin/pytest -q -p no:cacheprovider tests -k "not for_real")
    fi
}
