"""One run per workspace: a second ``deid run`` on a workspace in use stops at once, naming the running process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deid.errors import WorkspaceBusy
from deid.workspace import LOCK_FILE, Workspace, check_workspace_free, lock_workspace

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
HOLDER = """
import sys, time
from pathlib import Path
from deid.workspace import Workspace, lock_workspace
with lock_workspace(Workspace(Path(sys.argv[1])), purpose="deid run"):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def held(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real second process holding the workspace, as a running batch does."""
    workspace = Workspace(tmp_path / "ws")
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(workspace.root)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    yield workspace, process
    process.kill()
    process.wait(timeout=30)


def test_a_busy_workspace_is_refused_naming_the_holder(held) -> None:  # type: ignore[no-untyped-def]
    workspace, process = held
    with pytest.raises(WorkspaceBusy) as raised:
        check_workspace_free(workspace)
    assert f"process {process.pid}" in str(raised.value) and str(workspace.root) in str(raised.value)


def test_a_second_deid_run_exits_2_at_once(held, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    workspace, process = held
    deid = Path(sys.executable).with_name("deid")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    started = time.monotonic()
    done = subprocess.run(
        [str(deid), "run", str(SAMPLE), "--workspace", str(workspace.root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    error = json.loads(done.stderr.strip().splitlines()[-1])
    assert error["error"] == "workspace_busy" and f"process {process.pid}" in error["message"]
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60, "refused before any server or model starts"
    assert not (workspace.root / "ledger.db").exists(), "the refused run changed nothing"


def test_the_lock_is_released_when_the_holder_dies(held) -> None:  # type: ignore[no-untyped-def]
    workspace, process = held
    process.kill()  # kill -9: no clean-up runs, the kernel drops the lock
    process.wait(timeout=30)
    with lock_workspace(workspace):
        assert (workspace.root / LOCK_FILE).exists()
    check_workspace_free(workspace)
