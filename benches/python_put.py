"""put_file from Python beside the same through the Rust API, in one run: COUNT small
objects put one after the other (the per-call overhead of the binding), and one large file
put from a file object of a regular file (read by the library) and from a non-regular one
(streamed through Python a chunk at a time). Run by benches/python-put.sh.

Usage: python3 python_put.py RUST_BENCH WORK_DIR BIG_FILE [COUNT] [SIZE] [RUNS]
"""

import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ubuntu_ci import DataStore

# Objects put before the timing starts (the Rust side does the same).
WARM_UP = 50


def rust(bench: str, work: Path, count: int, size: int, big: Path) -> dict:
    out = subprocess.run(
        [bench, str(work), str(count), str(size), str(big)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


class Unbuffered(io.RawIOBase):
    """The big file as a file object without a descriptor: streamed through Python."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb", buffering=0)  # noqa: SIM115

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self.file.readinto(buffer)

    def close(self) -> None:
        self.file.close()
        super().close()


def python(work: Path, count: int, size: int, big: Path) -> dict:
    backend = work.resolve().as_uri() + "/"
    small_store = DataStore("bench.python", "small", True, backend=backend)
    content = b"x" * size
    for n in range(WARM_UP):  # as the Rust side
        small_store.put_file(f"warm-up-{n}", content)
    started = time.perf_counter()
    for n in range(count):
        small_store.put_file(f"object-{n}", content)
    small = time.perf_counter() - started

    large_store = DataStore("bench.python", "large", True, backend=backend)
    started = time.perf_counter()
    with open(big, "rb") as f:
        large_store.put_file("big", f)
    large = time.perf_counter() - started

    started = time.perf_counter()
    with Unbuffered(big) as f:
        large_store.put_file("big-streamed", f)
    streamed = time.perf_counter() - started
    return {"small": small, "large": large, "streamed": streamed}


def main() -> int:
    bench, work, big = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    runs = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    ours, theirs = [], []
    for run in range(runs):
        # Alternating which goes first, so that neither always meets a colder cache.
        if run % 2 == 0:
            theirs.append(rust(bench, work / f"rust-{run}", count, size, big))
            ours.append(python(work / f"python-{run}", count, size, big))
        else:
            ours.append(python(work / f"python-{run}", count, size, big))
            theirs.append(rust(bench, work / f"rust-{run}", count, size, big))

    def median(samples: list, key: str) -> float:
        return statistics.median(s[key] for s in samples)

    gib = big.stat().st_size / 2**30
    rust_small, py_small = median(theirs, "small"), median(ours, "small")
    rust_large, py_large = median(theirs, "large"), median(ours, "large")
    streamed = median(ours, "streamed")
    per_call = (py_small - rust_small) / count * 1e6
    print(f"put_file, median of {runs} runs (Rust and Python alternating, each warmed up)")
    print(f"{'':46} {'Rust (s)':>10} {'Python (s)':>11} {'ratio':>7}")
    print(
        f"{f'{count} objects of {size} B':46} {rust_small:10.3f} {py_small:11.3f} "
        f"{py_small / rust_small:6.2f}x"
    )
    print(
        f"{f'{gib:.2f} GiB, a regular file object':46} {rust_large:10.3f} {py_large:11.3f} "
        f"{py_large / rust_large:6.2f}x"
    )
    print(
        f"{f'{gib:.2f} GiB, a streamed file object':46} {rust_large:10.3f} {streamed:11.3f} "
        f"{streamed / rust_large:6.2f}x"
    )
    print(f"per-call overhead of the binding: {per_call:.1f} us (target < 50 us)")
    print(
        f"large file: {py_large / rust_large:.2f}x of Rust (target <= 1.2x); "
        f"streamed: {streamed / rust_large:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
