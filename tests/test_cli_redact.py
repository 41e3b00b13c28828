"""``deid redact``: loose files through the real face detector, the policy and a clean encode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deid.cli import EXIT_FAILURES, EXIT_OK, main
from deid.types import Box
from tests.assertions import assert_no_metadata_segments, assert_no_pixel_survives
from tests.test_policy import HEIGHT, POLICIES, WIDTH, rash_close_up, with_face


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A corner-face close-up (JPEG), a centred-face one (PNG) and a file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    corner, _ = with_face(rash_close_up(), 20, 20)
    centre, _ = with_face(rash_close_up(), HEIGHT // 2 - 150, WIDTH // 2 - 130)
    Image.fromarray(corner).save(folder / "corner.jpg", quality=95)
    Image.fromarray(centre).save(folder / "centre.png")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return {"corner": folder / "corner.jpg", "centre": folder / "centre.png", "broken": folder / "broken.jpg"}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, Any]]]:
    code = main(argv)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, {Path(str(line["file"])).stem: line for line in lines}


def test_redact_crops_a_corner_face_redacts_a_centred_one_and_goes_on_after_a_bad_file(
    photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, previews = tmp_path / "out", tmp_path / "previews"
    files = [str(photos[name]) for name in ("corner", "broken", "centre")]
    argv = ["redact", *files, "--out", str(out), "--config", str(POLICIES / "face_crop.toml"), "--json"]
    code, lines = run([*argv, "--preview-dir", str(previews)], capsys)
    assert code == EXIT_FAILURES, "one file failed"
    assert lines["broken"]["error"] == "unsupported_format"

    corner = lines["corner"]
    assert (corner["decision"], corner["action"]) == ("released", "crop")
    (face,) = corner["regions"]
    assert isinstance(face, dict) and face["kind"] == "face" and face["source"].startswith("faces.")
    face_box, crop = Box.from_xywh(*face["box"]), Box.from_xywh(*corner["crop"])
    assert face_box.intersection(Box(20, 20, 280, 320)).area > 0, "mediapipe found the pasted face"
    assert crop.intersection(face_box).is_empty
    written = Path(str(corner["output"]))
    assert written == out / "corner.png"
    data = written.read_bytes()
    assert_no_metadata_segments(data)
    with Image.open(written) as opened:
        assert opened.size == (crop.width, crop.height)

    centre = lines["centre"]
    assert (centre["decision"], centre["action"], centre["crop"]) == ("released", "redact", None)
    assert any("policy.crop.fallback = redact" in reason for reason in centre["reasons"])
    with Image.open(out / "centre.png") as opened:
        staged = np.asarray(opened.convert("RGB"))
    (face,) = centre["regions"]
    assert_no_pixel_survives(Box.from_xywh(*face["box"]), staged, (0, 0, 0))

    assert sorted(p.name for p in previews.iterdir()) == ["centre.preview.png", "corner.preview.png"]
    assert corner["preview"] == str(previews / "corner.preview.png")


def test_redact_holds_and_writes_nothing_under_a_hold_policy(
    photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["redact", str(photos["corner"]), "--out", str(out), "--config", str(POLICIES / "face_hold.toml"), "--json"]
    code, lines = run(argv, capsys)
    assert code == EXIT_FAILURES
    line = lines["corner"]
    assert (line["decision"], line["action"], line["output"]) == ("held", "hold", None)
    assert line["reasons"] == [f"face score {line['regions'][0]['score']:.2f} >= 0.50: policy.rules.face.action = hold"]
    assert not out.exists() or not any(out.iterdir())


def test_redact_prints_a_line_per_file_without_json(
    photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["redact", str(photos["centre"]), "--out", str(tmp_path), "--config", str(POLICIES / "faces_only.toml")]
    )
    assert code == EXIT_OK
    assert capsys.readouterr().out.strip() == f"{photos['centre']}: released (redact) -> {tmp_path / 'centre.png'}"
