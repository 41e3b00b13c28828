"""The deidentify flow end to end through Prefect: green with counts, logs surfaced, rerun a no-op."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from tests.assertions import assert_no_metadata_segments

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
K1 = Path(__file__).with_name("k1.toml")


@pytest.fixture
def small_batch(tmp_path: Path) -> Path:
    """Four contributions from the sample batch: a face, GPS EXIF, a corrupt file, a plain rash."""
    batch = tmp_path / "batch"
    (batch / "images").mkdir(parents=True)
    lines = (SAMPLE / "cases.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in {"c01", "c02", "c06", "c14"}]
    (batch / "cases.csv").write_text("\n".join(keep) + "\n")
    for line in keep[1:]:
        for cell in line.split(","):
            if cell.endswith((".jpg", ".png")):
                shutil.copy(SAMPLE / "images" / cell, batch / "images" / cell)
    return batch


def _logs_of(flow_run_id: object, *, expect: str) -> list[str]:
    """The run's log messages, polled until one contains ``expect`` (logs are shipped in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0
            )
            return [log.message for log in logs]

    deadline = time.monotonic() + 15
    messages = asyncio.run(read())
    while not any(expect in m for m in messages) and time.monotonic() < deadline:
        time.sleep(0.5)
        messages = asyncio.run(read())
    return messages


def test_flow_runs_green_holds_bad_input_and_surfaces_deid_logs(
    prefect_harness: None, small_batch: Path, tmp_path: Path
) -> None:
    from flows.deidentify import RunParameters, deidentify

    workspace = tmp_path / "workspace"
    params = RunParameters(input_dir=str(small_batch), workspace=str(workspace), config_path=str(K1))
    state = deidentify(params, return_state=True)
    assert state.is_completed(), "held is not failed: bad input never fails the run"
    summary = state.result()
    assert summary.images_in == 7
    assert summary.held >= 1 and summary.released >= 4
    held = [item for item in summary.items if item.original_name == "c06_truncated.jpg"]
    assert held[0].status == "held" and held[0].reasons[0].startswith("unreadable_image")
    for path in (workspace / "staged" / "images").iterdir():
        assert_no_metadata_segments(path.read_bytes())
    messages = _logs_of(state.state_details.flow_run_id, expect="ingested batch")
    assert any("ingested batch" in message for message in messages), (
        "INFO lines from the deid logger reach the run logs"
    )

    rerun = deidentify(params, return_state=True)
    assert rerun.result().to_json()["counts"] == summary.to_json()["counts"]
    rerun_logs = _logs_of(rerun.state_details.flow_run_id, expect="0 image(s) to process")
    assert any("0 image(s) to process" in message for message in rerun_logs), "a rerun processes nothing"
    assert not any(message.startswith("processed ") for message in rerun_logs)
