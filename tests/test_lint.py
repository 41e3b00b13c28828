"""The library stays ruff-clean and passes mypy --strict (HOUSE_STYLE.md section 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_is_clean() -> None:
    done = _run(str(BIN / "ruff"), "check", "deid", "flows", "tests", "benchmarks", "sample_data")
    assert done.returncode == 0, done.stdout[-4000:]


def test_mypy_strict_is_clean_on_the_library() -> None:
    done = _run(str(BIN / "mypy"))
    assert done.returncode == 0, done.stdout[-4000:]
