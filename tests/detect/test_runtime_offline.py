"""Loading the detector networks phones nobody: OpenVINO's import-time telemetry is declined."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A fresh interpreter: the telemetry decision is taken once, when OpenVINO is first imported.
_PROBE = textwrap.dedent(
    """
    import os, time
    import psutil
    from deid.detect.runtime import openvino
    import openvino_telemetry
    started = {child.pid for child in psutil.Process().children(recursive=True)}
    time.sleep(1.0)  # the telemetry sender starts its process from a thread, soon after the import
    started |= {child.pid for child in psutil.Process().children(recursive=True)}
    print(len(started), openvino_telemetry.Telemetry().consent, os.environ.get("CI"))
    """
)


def test_openvino_import_sends_no_telemetry_and_writes_nothing_home(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    home = tmp_path / "home"
    home.mkdir()
    environment = {**os.environ, "HOME": str(home), "PYTHONPATH": str(root)}
    environment.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=environment, capture_output=True, text=True, timeout=120, check=True
    )
    children, consent, ci = done.stdout.split()
    assert consent == "False", "OpenVINO's telemetry would report this run"
    assert children == "0", "a telemetry sender process was started"
    assert ci == "None", "the switch used to decline leaked into the environment"
    assert list(home.iterdir()) == [], f"OpenVINO wrote into HOME: {sorted(p.name for p in home.rglob('*'))}"
