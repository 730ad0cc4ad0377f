"""The scripts under examples/python run as their docs say."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO, example_package


def test_the_seed_flow_example_stores_an_upload(embedded: Path, tmp_path: Path) -> None:
    changes = example_package(tmp_path / "packages")
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "seed_flow.py"), str(changes)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "ticket /api/v1/ticket/1/" in run.stdout
    assert run.stdout.count("stored file://") == 4, run.stdout
    assert "4 artifacts" in run.stdout
    stored = sorted(p.name for p in (embedded / "store" / "ticket.1.sources").iterdir())
    assert "hello-ci_1.0-1.dsc" in stored
