"""A ``kill -9`` in the middle of ``deid run``, then a rerun, gives the staged output of an uninterrupted run.

Results are recorded in the ledger per image as each finishes, candidates are
written atomically, and ingest skips only images whose result is recorded and
whose candidate is on disk. So a run killed at any moment leaves either a
finished image (kept) or an unfinished one (redone), never a half-state.
Staged names and case ids are random per workspace, so the two workspaces
are compared by content: the staged and held image bytes, and the case rows
without their random ids.
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.sample_batches import sample_subset

K1 = Path(__file__).with_name("k1.toml")
KEEP = ("c01", "c02", "c04", "c05", "c06", "c13")
RANDOM_COLUMNS = ("case_id", "image_1_path", "image_2_path", "image_3_path")


def _batch(tmp_path: Path) -> Path:
    return sample_subset(tmp_path / "batch", KEEP)


def _command(batch: Path, workspace: Path) -> list[str]:
    deid = Path(sys.executable).with_name("deid")
    return [str(deid), "run", str(batch), "--workspace", str(workspace), "--config", str(K1), "--json"]


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / f"prefect-{name}")
    return env


def _recorded(workspace: Path) -> int:
    """Images whose result is in the ledger (read-only; the run may be writing)."""
    database = workspace / "ledger.db"
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM images WHERE reasons NOT LIKE '%not processed yet%'"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(count)


def _content(workspace: Path) -> tuple[Counter[str], Counter[str], list[tuple[tuple[str, str], ...]]]:
    def digests(folder: Path) -> Counter[str]:
        return Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.png"))

    with (workspace / "staged" / "cases.csv").open(newline="", encoding="utf-8") as handle:
        rows = [
            tuple(sorted((k, v) for k, v in row.items() if k not in RANDOM_COLUMNS)) for row in csv.DictReader(handle)
        ]
    return digests(workspace / "staged" / "images"), digests(workspace / "held"), sorted(rows)


def _on_disk(workspace: Path) -> int:
    """Candidates written to staged/images or held (complete files only)."""
    return sum(1 for folder in (workspace / "staged" / "images", workspace / "held") for _ in folder.glob("*.png"))


def _mid_batch(workspace: Path, images: int) -> bool:
    return _recorded(workspace) >= 3  # some images recorded, others being detected or encoded


def _written_not_recorded(workspace: Path, images: int) -> bool:
    # A worker has written a candidate the ledger does not know yet: the run dies between the two.
    recorded = _recorded(workspace)
    return 0 < recorded < images and _on_disk(workspace) > recorded


def _finishing(workspace: Path, images: int) -> bool:
    # Every image recorded, no case table yet: the run is in finish_batch (duplicates, k-anonymity, cases.csv).
    return _recorded(workspace) >= images and not (workspace / "staged" / "cases.csv").exists()


MOMENTS = {"mid_batch": _mid_batch, "written_not_recorded": _written_not_recorded, "finishing": _finishing}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """The batch and one uninterrupted run of it, shared by every kill moment."""
    tmp_path = tmp_path_factory.mktemp("clean")
    batch = _batch(tmp_path)
    clean = tmp_path / "clean"
    done = subprocess.run(
        _command(batch, clean), env=_env(tmp_path, "clean"), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return batch, clean, _recorded(clean)


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_9_then_rerun_gives_the_uninterrupted_output(
    moment: str, clean_run: tuple[Path, Path, int], tmp_path: Path
) -> None:
    batch, clean, images = clean_run
    crashed = tmp_path / "crashed"
    process = subprocess.Popen(
        _command(batch, crashed),
        env=_env(tmp_path, "crashed"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    reached = MOMENTS[moment]
    deadline = time.monotonic() + 300
    while not reached(crashed, images) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, f"the run ended before the moment {moment!r} was seen"
    os.killpg(process.pid, signal.SIGKILL)  # the run and its temporary Prefect server, without warning
    process.wait(timeout=30)

    rerun = subprocess.run(
        _command(batch, crashed), env=_env(tmp_path, "rerun"), capture_output=True, text=True, timeout=600, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _content(crashed) == _content(clean)
    leftovers = [p.name for p in (crashed / "staged").rglob("*.partial")] + [
        p.name for p in (crashed / "held").glob(".*")
    ]
    assert not leftovers, f"no partial file survives a rerun: {leftovers}"
