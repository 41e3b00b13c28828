"""Before/after previews: original with boxes beside the staged result, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.config import Config
from deid.errors import DeidError
from deid.policy import apply_policy
from deid.preview import CROP_COLOUR, KIND_COLOURS, is_preview_needed, render_preview, write_preview
from deid.redact import render_decision
from deid.types import Action, Box, Decision, Region, RegionKind, RGBImage


def scene(config: Config) -> tuple[RGBImage, list[Region], Decision, RGBImage]:
    image = np.full((600, 800, 3), (214, 160, 130), dtype=np.uint8)
    regions = [
        Region(RegionKind.FACE, Box(20, 20, 180, 200), 0.93, "review:test"),
        Region(RegionKind.TEXT, Box(500, 450, 700, 500), 0.2, "review:test"),  # ignored: below review
    ]
    decision = Decision(Action.CROP, (regions[0],), ("policy.rules.face.action = crop",), crop=Box(220, 0, 800, 600))
    return image, regions, decision, render_decision(image, decision, config.policy)


def has_colour(image: RGBImage, colour: tuple[int, int, int]) -> bool:
    return bool(np.all(image == np.asarray(colour, np.uint8), axis=-1).any())


def test_preview_shows_boxes_crop_and_staged_result_side_by_side(config: Config, tmp_path: Path) -> None:
    image, regions, decision, staged = scene(config)
    path = write_preview(image, regions, decision, staged, tmp_path / "previews" / "x.png")
    with Image.open(path) as opened:
        assert opened.format == "PNG"
        preview = np.asarray(opened.convert("RGB"))
    assert has_colour(preview, KIND_COLOURS[RegionKind.FACE])
    assert has_colour(preview, KIND_COLOURS[RegionKind.TEXT])
    assert has_colour(preview, CROP_COLOUR)
    rendered = render_preview(image, regions, decision, staged)
    assert (rendered == preview).all()
    left_width = round(800 * 640 / 600)
    assert preview.shape[1] > left_width + round(580 * 640 / 600), "staged panel sits beside the original"


def test_preview_of_a_held_image_without_staged_pixels(config: Config, tmp_path: Path) -> None:
    image, regions, _, _ = scene(config)
    decision = apply_policy(regions[:1], config.policy, body_parts=("face",))
    assert decision.action is Action.HOLD and is_preview_needed(decision)
    path = write_preview(image, regions, decision, None, tmp_path / "held.png")
    assert path.stat().st_size > 0


def test_kept_images_need_no_preview() -> None:
    assert not is_preview_needed(Decision(Action.KEEP))
    assert all(is_preview_needed(Decision(a)) for a in (Action.REDACT, Action.CROP, Action.HOLD, Action.EXCLUDE))


def test_unwritable_path_is_a_deid_error(config: Config, tmp_path: Path) -> None:
    image, regions, decision, staged = scene(config)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeidError, match="cannot write preview"):
        write_preview(image, regions, decision, staged, blocker / "x.png")
