"""Staging: every candidate is verified byte by byte before it is written, and lives in one folder only.

The verifier refusal is injected at the encoder's seam (an encoder that
leaks EXIF, as a future Pillow or a misconfigured writer could): the
property is that no path through deid writes bytes the verifier refuses,
whether the batch, ``deid redact`` or the review queue asks.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deid.staging
from deid.cli import EXIT_FAILURES, main
from deid.config import Config, OutputSettings
from deid.errors import VerificationFailed
from deid.staging import exclude_candidate, hold_candidate, stage_candidate, sweep_partial_writes
from deid.types import Action, Box, Decision, Region, RegionKind, RGBImage, Status
from deid.verify_bytes import verify_clean
from deid.workspace import Workspace
from tests.assertions import assert_no_metadata_segments, assert_no_pixel_survives
from tests.test_policy import POLICIES


def _leaky_encoder(pixels: RGBImage, settings: OutputSettings) -> bytes:
    """A JPEG that still carries an EXIF segment (what the verifier exists to catch)."""
    del settings
    exif = Image.Exif()
    exif[0x010F] = "LeakyCam"  # Make
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture
def leaky(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deid.staging, "encode_clean", _leaky_encoder)


def _image() -> RGBImage:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


def _face_decision() -> Decision:
    face = Region(RegionKind.FACE, Box(20, 30, 60, 80), 0.9, "test@1")
    return Decision(Action.REDACT, (face,), ("face score 0.90 >= 0.50: policy.rules.face.action = redact",))


def test_the_leaky_encoder_is_refused_by_the_verifier() -> None:
    assert not verify_clean(_leaky_encoder(_image(), OutputSettings("jpeg", 92, 3)), decode=False).ok


def test_a_staged_candidate_is_verified_redacted_and_in_one_folder(tmp_path: Path, config: Config) -> None:
    workspace = Workspace(tmp_path).create()
    pixels = _image()
    held = stage_candidate(workspace, "abc", pixels, _face_decision(), config, status=Status.HELD, path="x.jpg")
    assert (workspace.held / held.name).exists() and not (workspace.staged_images / held.name).exists()
    staged = stage_candidate(workspace, "abc", pixels, _face_decision(), config, status=Status.OK, path="x.jpg")
    assert staged.name == held.name
    assert not (workspace.held / staged.name).exists(), "a candidate is never in both folders"
    data = (workspace.staged_images / staged.name).read_bytes()
    assert_no_metadata_segments(data)
    with Image.open(io.BytesIO(data)) as opened:
        written = np.asarray(opened.convert("RGB"))
    padded = config.policy.padded_box(_face_decision().regions[0], pixels.shape)
    assert_no_pixel_survives(padded, written, tuple(config.policy.fill_rgb))
    hold_candidate(workspace, staged.name)
    assert (workspace.held / staged.name).exists() and not (workspace.staged_images / staged.name).exists()
    exclude_candidate(workspace, staged.name)
    assert not (workspace.held / staged.name).exists()


def test_stage_candidate_writes_nothing_the_verifier_refuses(tmp_path: Path, config: Config, leaky: None) -> None:
    workspace = Workspace(tmp_path).create()
    with pytest.raises(VerificationFailed) as raised:
        stage_candidate(workspace, "abc", _image(), _face_decision(), config, status=Status.OK, path="x.jpg")
    assert "x.jpg" in str(raised.value) and "EXIF" in str(raised.value).upper()
    assert not any(workspace.staged_images.iterdir()) and not any(workspace.held.iterdir())


@pytest.mark.parametrize("name", ["../escape.png", "a/b.png", "", ".hidden.png"])
def test_candidate_names_are_bare_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        exclude_candidate(Workspace(tmp_path).create(), name)


def test_partial_writes_of_a_killed_run_are_swept(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).create()
    (workspace.staged_images / ".abc.png.partial").write_bytes(b"half")
    (workspace.held / ".def.png.partial").write_bytes(b"half")
    (workspace.staged_images / "kept.png").write_bytes(b"whole")
    assert sweep_partial_writes(workspace) == 2
    assert [p.name for p in workspace.staged_images.iterdir()] == ["kept.png"]


def test_deid_redact_verifies_every_output_like_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leaky: None
) -> None:
    """``deid redact`` once wrote encoder output unverified; now a refused encode writes nothing and says why."""
    photo = tmp_path / "plain.png"
    Image.fromarray(_image()).save(photo)
    out = tmp_path / "out"
    code = main(["redact", str(photo), "--out", str(out), "--config", str(POLICIES / "faces_only.toml"), "--json"])
    assert code == EXIT_FAILURES
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["error"] == "verification_failed" and line["path"] == str(photo)
    assert not out.exists() or not any(out.iterdir()), "nothing unverified is written"
