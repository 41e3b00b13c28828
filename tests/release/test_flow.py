"""The ``release`` flow through a real (temporary) Prefect server: pause for a named approver, publish."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release.conftest import CONFIG, Built


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def resume_when_paused(approver: str, done: threading.Event) -> None:
    """Wait for the flow run to pause, then resume it with the approver's form."""
    from prefect import resume_flow_run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + 600
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and not done.is_set():
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
                sort=FlowRunSort.START_TIME_DESC,
                limit=5,
            )
            if paused:
                resume_flow_run(paused[0].id, run_input={"approver": approver, "approve": True})
                return
            time.sleep(1)


def test_release_flow_pauses_for_a_named_approver(prefect_server: None, built: Built) -> None:
    from flows.release import ReleaseParameters, release

    built.ledger.close()
    done = threading.Event()
    resumer = threading.Thread(target=resume_when_paused, args=("Dr. Curator", done), daemon=True)
    resumer.start()
    try:
        result = release(
            ReleaseParameters(
                workspace=str(built.workspace.root),
                out=str(built.out),
                version="1.0.0",
                leave_pending_out=True,
                require_approval=True,
                config_path=str(CONFIG),
                approval_timeout_s=300,
            )
        )
    finally:
        done.set()
    assert result["version"] == "1.0.0" and Path(str(result["out"])).is_dir()
    manifest = json.loads((built.out / "manifest.json").read_text("utf-8"))
    assert manifest["approver"] == "Dr. Curator"
