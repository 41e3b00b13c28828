"""The same flow fans out on a real (local, two-process) Dask cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

from deid.types import Status
from tests.assertions import assert_no_metadata_segments

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def test_flow_runs_on_a_local_dask_cluster(prefect_harness: None, tmp_path: Path) -> None:
    from flows.deidentify import run_batch

    batch = tmp_path / "batch"
    (batch / "images").mkdir(parents=True)
    lines = (SAMPLE / "cases.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in {"c01", "c02"}]
    (batch / "cases.csv").write_text("\n".join(keep) + "\n")
    for name in ("c01_rash_gps.jpg", "c01_rash_angle.jpg", "c02_astronaut.jpg"):
        shutil.copy(SAMPLE / "images" / name, batch / "images" / name)
    config = tmp_path / "deid.toml"
    config.write_text("[demographics]\nk = 1\n")
    summary = run_batch(input_dir=str(batch), workspace=str(tmp_path / "ws"), config_path=str(config), cluster="local")
    assert summary.images_in == 3
    assert all(item.status != Status.HELD or not item.reasons[0].startswith("internal_error") for item in summary.items)
    staged = list((tmp_path / "ws" / "staged" / "images").iterdir())
    assert staged, "workers wrote staged files into the shared workspace"
    for path in staged:
        assert_no_metadata_segments(path.read_bytes())
