"""`deid run` prints the batch summary (text or JSON); bad configuration exits 2 with a JSON error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deid.cli import EXIT_ERROR, EXIT_OK, main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
K1 = Path(__file__).with_name("k1.toml")


def _batch(tmp_path: Path) -> Path:
    batch = tmp_path / "batch"
    (batch / "images").mkdir(parents=True)
    lines = (SAMPLE / "cases.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in {"c04", "c13"}]
    (batch / "cases.csv").write_text("\n".join(keep) + "\n")
    for name in ("c04_mole_rotated.jpg", "c13_rash.png"):
        shutil.copy(SAMPLE / "images" / name, batch / "images" / name)
    return batch


def test_run_prints_a_json_summary(tmp_path: Path) -> None:
    """The installed console script, as a user runs it (it starts its own temporary Prefect server)."""
    workspace = tmp_path / "ws"
    deid = Path(sys.executable).with_name("deid")
    command = [str(deid), "run", str(_batch(tmp_path)), "--workspace", str(workspace), "--config", str(K1), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["counts"]["images_in"] == 2
    assert summary["staged"] == str(workspace.resolve() / "staged")
    assert {item["original_name"] for item in summary["items"]} == {"c04_mole_rotated.jpg", "c13_rash.png"}


def test_bad_config_exits_2_with_a_json_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "deid.toml"
    config.write_text("[output]\nformat = 'bmp'\n")
    code = main(["run", str(tmp_path), "--workspace", str(tmp_path / "ws"), "--config", str(config)])
    assert code == EXIT_ERROR
    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert error["error"] == "config_error" and str(config) in (error["path"] or "")
    assert "output.format" in error["message"]
