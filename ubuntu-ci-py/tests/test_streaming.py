"""put_file streams a file object: bounded memory, the content intact, a failing read
stores nothing."""

import gzip
import hashlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import ubuntu_ci
from conftest import rss_kib
from ubuntu_ci import DataStore


class Generated(io.RawIOBase):
    """`size` bytes of a repeating pattern, made as they are read: never in memory whole
    (and not a regular file: no descriptor)."""

    def __init__(self, size: int, fail_at: int = -1) -> None:
        self.left = size
        self.done = 0
        self.fail_at = fail_at
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if 0 <= self.fail_at <= self.done:
            raise OSError("the disk went away")
        n = min(len(buffer), self.left)
        chunk = bytes((self.done + i) % 251 for i in range(min(n, 4096))) * (n // 4096 + 1)
        buffer[:n] = chunk[:n]
        self.digest.update(chunk[:n])
        self.left -= n
        self.done += n
        return n


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_a_large_file_object_is_streamed_in_bounded_memory(embedded: Path, tmp_path: Path) -> None:
    store = DataStore("ticket.1", "sources")
    size = 512 * 1024 * 1024
    source = io.BufferedReader(Generated(size), buffer_size=1 << 20)
    before = rss_kib()
    url = store.put_file("big.tar.xz", source)
    grown_mib = (rss_kib() - before) / 1024
    assert url.endswith("/ticket.1.sources/big.tar.xz")
    # A few chunks in flight, not the file: far below its 512 MiB.
    assert grown_mib < 64, f"memory grew by {grown_mib:.0f} MiB"
    [info] = store.list_files()
    assert info["size"] == size
    stored = embedded / "store" / "ticket.1.sources" / "big.tar.xz"
    assert sha256_of(stored) == source.raw.digest.hexdigest()  # type: ignore[attr-defined]
    # Too large to read whole; downloaded, streamed.
    with pytest.raises(ubuntu_ci.TooLargeError, match="download"):
        store.get_file("big.tar.xz")
    store.download("big.tar.xz", tmp_path / "big.tar.xz")
    assert sha256_of(tmp_path / "big.tar.xz") == sha256_of(stored)


def test_a_regular_file_is_read_from_its_position_to_its_end(
    embedded: Path, tmp_path: Path
) -> None:
    path = tmp_path / "hello_2.10.orig.tar.gz"
    path.write_bytes(b"header" + bytes(range(256)) * 1000)
    store = DataStore("ticket.1", "sources")
    with open(path, "rb") as f:
        assert f.read(6) == b"header"
        store.put_file("rest", f)
        assert f.read() == b""  # read to its end
    assert store.get_file("rest") == bytes(range(256)) * 1000


def test_a_compressed_file_object_gives_its_content_not_its_file(
    embedded: Path, tmp_path: Path
) -> None:
    # GzipFile has its file's descriptor, but reads other bytes: it is streamed.
    path = tmp_path / "data.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"uncompressed content " * 1000)
    store = DataStore("ticket.1", "sources")
    with gzip.open(path, "rb") as f:
        store.put_file("data", f)
    assert store.get_file("data") == b"uncompressed content " * 1000


def test_a_failing_read_fails_the_put_and_stores_nothing(embedded: Path) -> None:
    store = DataStore("ticket.1", "sources")
    source = io.BufferedReader(Generated(64 * 1024 * 1024, fail_at=8 * 1024 * 1024))
    with pytest.raises(OSError, match="the disk went away"):
        store.put_file("broken.tar.xz", source)
    assert store.list_files() == []
    with pytest.raises(ubuntu_ci.NotFoundError):
        store.get_file("broken.tar.xz")


def test_bytes_are_stored_without_a_copy(embedded: Path) -> None:
    # In a process of its own, for a clean peak: a copy would add 64 MiB to it.
    script = textwrap.dedent(
        """
        import resource, ubuntu_ci
        store = ubuntu_ci.DataStore("ticket.1", "sources")
        content = bytes(range(256)) * (256 * 1024)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        store.put_file("in-memory.bin", content)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) < 32, f"the peak grew by {run.stdout.strip()} MiB: a copy"
    assert DataStore("ticket.1", "sources").list_files()[0]["size"] == 64 * 1024 * 1024
