"""Fixtures: an embedded ubuntu-ci in a fresh data dir, and an `ubuntu-ci serve` on it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of its own and no configuration file: the embedded defaults."""
    data = tmp_path / "data"
    monkeypatch.setenv("UBUNTU_CI_DATA_DIR", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in (
        "UBUNTU_CI_SERVER",
        "UBUNTU_CI_TOKEN",
        "UBUNTU_CI_TICKETS_URL",
        "UBUNTU_CI_STORE_URL",
        "UBUNTU_CI_OWNER",
        "DEBEMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    return data


def example_package(directory: Path) -> Path:
    """The example source package (examples/packages/hello-ci) built into `directory`: its
    `_source.changes`, the files it lists beside it."""
    subprocess.run(
        [str(REPO / "examples" / "packages" / "build-source.sh"), str(directory)],
        check=True,
        capture_output=True,
    )
    [changes] = directory.glob("*_source.changes")
    return changes


def ubuntu_ci_binary() -> str:
    """The `ubuntu-ci` binary: UBUNTU_CI_BIN, else the workspace's debug build, else PATH."""
    given = os.environ.get("UBUNTU_CI_BIN")
    if given:
        return given
    built = REPO / "target" / "debug" / "ubuntu-ci"
    if built.exists():
        return str(built)
    found = shutil.which("ubuntu-ci")
    if found is None:
        pytest.fail(
            "no ubuntu-ci binary: build it (cargo build -p ubuntu-ci-cli) or set UBUNTU_CI_BIN"
        )
    return found


class Server(NamedTuple):
    url: str
    token: str


def serve(tmp_path: Path, *options: str) -> Iterator[Server]:
    """`ubuntu-ci serve OPTIONS` on a data dir of its own, on a free port."""
    data = tmp_path / "served"
    data.mkdir()
    token = "python-tests-token"
    env = dict(os.environ, UBUNTU_CI_TOKEN=token, XDG_CONFIG_HOME=str(tmp_path / "config"))
    for name in ("UBUNTU_CI_DATA_DIR", "UBUNTU_CI_SERVER"):
        env.pop(name, None)
    with open(data / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [
                ubuntu_ci_binary(),
                "--data-dir",
                str(data),
                "serve",
                "--listen",
                "127.0.0.1:0",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        url = line.strip().rsplit(" ", 1)[-1]
        if not url.startswith("http://127.0.0.1:"):
            process.kill()
            log_text = (data / "serve.log").read_text()
            pytest.fail(f"serve did not start: {line!r}\n{log_text}", pytrace=False)
        yield Server(url, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    """`ubuntu-ci serve` without its lander."""
    yield from serve(tmp_path, "--no-lander")


@pytest.fixture()
def server_with_lander(tmp_path: Path) -> Iterator[Server]:
    """`ubuntu-ci serve` with its lander, which runs the tickets handed to it."""
    yield from serve(tmp_path)


def rss_kib() -> int:
    """This process's resident memory now, in KiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


__all__ = ["REPO", "Server", "example_package", "rss_kib", "sys"]
