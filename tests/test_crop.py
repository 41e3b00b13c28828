"""The crop planner: exact largest empty rectangles, then limits and scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deid.config import CropSettings
from deid.crop import Crop, NoCrop, estimate_skin_mask, find_empty_rectangles, plan_crop
from deid.types import Box


def settings(
    *,
    min_area_frac: float = 1e-9,
    min_side_px: int = 1,
    max_aspect: float = 1000.0,
    keep_centre: bool = False,
    centre_weight: float = 0.0,
    skin_weight: float = 0.0,
) -> CropSettings:
    """Crop limits for tests; the defaults make the planner a pure largest-area search."""
    return CropSettings(
        min_area_frac=min_area_frac,
        min_side_px=min_side_px,
        max_aspect=max_aspect,
        keep_centre=keep_centre,
        centre_weight=centre_weight,
        skin_weight=skin_weight,
        fallback="hold",
    )


@st.composite
def boxes(draw: st.DrawFn, height: int, width: int) -> Box:
    """A box that may touch or cross the image edge, or lie wholly outside it."""
    left = draw(st.integers(-width // 2, width))
    top = draw(st.integers(-height // 2, height))
    return Box(left, top, left + draw(st.integers(1, width)), top + draw(st.integers(1, height)))


@st.composite
def scenes(draw: st.DrawFn, max_side: int, max_obstacles: int) -> tuple[int, int, list[Box]]:
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    return height, width, draw(st.lists(boxes(height, width), max_size=max_obstacles))


def blocked_mask(height: int, width: int, obstacles: list[Box]) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), dtype=bool)
    for box in obstacles:
        clipped = box.clip((height, width))
        mask[clipped.top : clipped.bottom, clipped.left : clipped.right] = True
    return mask


def brute_force_best_area(
    height: int, width: int, obstacles: list[Box], *, max_aspect: float, min_side_px: int, keep_centre: bool
) -> int:
    """Largest area of any empty rectangle within the limits, by trying every rectangle."""
    mask = blocked_mask(height, width, obstacles)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(0).cumsum(1)
    top, bottom = np.meshgrid(np.arange(height + 1), np.arange(height + 1), indexing="ij")
    left, right = np.meshgrid(np.arange(width + 1), np.arange(width + 1), indexing="ij")
    t, b = top[:, :, None, None], bottom[:, :, None, None]
    lft, rgt = left[None, None], right[None, None]
    h, w = b - t, rgt - lft
    valid = (h >= min_side_px) & (w >= min_side_px) & (w <= max_aspect * h) & (h <= max_aspect * w)
    if keep_centre:
        cy, cx = height // 2, width // 2
        valid &= (t <= cy) & (cy < b) & (lft <= cx) & (cx < rgt)
    hb, ht = np.clip(b, 0, height), np.clip(t, 0, height)
    rr, ll = np.clip(rgt, 0, width), np.clip(lft, 0, width)
    inside = table[hb, rr] - table[ht, rr] - table[hb, ll] + table[ht, ll]
    areas = np.where(valid & (inside == 0), h * w, 0)
    return int(areas.max())


@given(scenes(max_side=400, max_obstacles=8), st.floats(0.0, 0.5), st.sampled_from([1.0, 1.5, 3.0]), st.booleans())
def test_no_crop_pixel_lies_inside_an_obstacle_plus_margin(
    scene: tuple[int, int, list[Box]], margin_frac: float, max_aspect: float, keep_centre: bool
) -> None:
    height, width, raw = scene
    obstacles = [box.expand(margin_frac) for box in raw]
    limits = replace(
        settings(min_area_frac=0.05, min_side_px=8, max_aspect=max_aspect, keep_centre=keep_centre), centre_weight=0.2
    )
    plan = plan_crop((height, width), obstacles, limits)
    if isinstance(plan, NoCrop):
        assert plan.reason
        return
    box = plan.box
    assert box == box.clip((height, width)) and not box.is_empty
    assert not blocked_mask(height, width, obstacles)[box.top : box.bottom, box.left : box.right].any()
    assert all(box.intersection(obstacle).is_empty for obstacle in obstacles)


@given(
    scenes(max_side=400, max_obstacles=8), st.floats(0.01, 1.0), st.integers(1, 300), st.sampled_from([1.0, 2.0, 3.0])
)
def test_never_returns_an_empty_or_too_small_crop(
    scene: tuple[int, int, list[Box]], min_area_frac: float, min_side_px: int, max_aspect: float
) -> None:
    height, width, obstacles = scene
    limits = settings(min_area_frac=min_area_frac, min_side_px=min_side_px, max_aspect=max_aspect, keep_centre=True)
    plan = plan_crop((height, width), obstacles, limits)
    if isinstance(plan, Crop):
        box = plan.box
        assert min(box.width, box.height) >= min_side_px
        assert box.area >= min_area_frac * height * width
        assert max(box.width, box.height) <= max_aspect * min(box.width, box.height)
        assert box.left <= width // 2 < box.right and box.top <= height // 2 < box.bottom
    else:
        assert isinstance(plan, NoCrop) and plan.reason


@given(scenes(max_side=12, max_obstacles=3), st.sampled_from([1.0, 1.5, 2.0, 1000.0]), st.integers(1, 3), st.booleans())
def test_crop_is_as_large_as_brute_force_finds(
    scene: tuple[int, int, list[Box]], max_aspect: float, min_side_px: int, keep_centre: bool
) -> None:
    height, width, obstacles = scene
    limits = settings(max_aspect=max_aspect, min_side_px=min_side_px, keep_centre=keep_centre)
    best = brute_force_best_area(
        height, width, obstacles, max_aspect=max_aspect, min_side_px=min_side_px, keep_centre=keep_centre
    )
    plan = plan_crop((height, width), obstacles, limits)
    if best == 0:
        assert isinstance(plan, NoCrop)
    else:
        assert isinstance(plan, Crop)
        assert plan.box.area == best


@given(scenes(max_side=10, max_obstacles=3))
def test_empty_rectangles_are_empty_and_maximal(scene: tuple[int, int, list[Box]]) -> None:
    height, width, obstacles = scene
    mask = blocked_mask(height, width, obstacles)
    found = find_empty_rectangles((height, width), obstacles)
    assert len(found) == len(set(found))
    for box in found:
        assert not mask[box.top : box.bottom, box.left : box.right].any()
        for grown in (
            Box(box.left - 1, box.top, box.right, box.bottom),
            Box(box.left, box.top - 1, box.right, box.bottom),
            Box(box.left, box.top, box.right + 1, box.bottom),
            Box(box.left, box.top, box.right, box.bottom + 1),
        ):
            outside = grown != grown.clip((height, width))
            assert outside or mask[grown.top : grown.bottom, grown.left : grown.right].any()
    free_pixels = ~mask
    covered = blocked_mask(height, width, found)
    assert (covered == free_pixels).all(), "every free pixel lies in some maximal empty rectangle"


@pytest.mark.parametrize(
    ("obstacles", "expected"),
    [
        pytest.param([], Box(0, 0, 100, 80), id="nothing-flagged-keeps-everything"),
        pytest.param([Box(0, 0, 30, 30)], Box(30, 0, 100, 80), id="corner"),
        pytest.param([Box(90, -5, 120, 85)], Box(0, 0, 90, 80), id="strip-crossing-the-edge"),
        pytest.param([Box(0, 0, 100, 10), Box(0, 70, 100, 80)], Box(0, 10, 100, 70), id="bands-top-and-bottom"),
    ],
)
def test_simple_cases(obstacles: list[Box], expected: Box) -> None:
    plan = plan_crop((80, 100), obstacles, settings())
    assert isinstance(plan, Crop)
    assert plan.box == expected


@pytest.mark.parametrize(
    ("obstacles", "limits", "words"),
    [
        pytest.param([Box(-1, -1, 200, 200)], settings(), "cover the whole image", id="covered"),
        pytest.param([Box(45, 35, 55, 45)], settings(keep_centre=True), "image centre", id="centre-lost"),
        pytest.param([Box(0, 0, 100, 70)], settings(min_side_px=20), "min_side_px", id="too-thin"),
        pytest.param([Box(0, 0, 80, 80)], settings(min_area_frac=0.5), "min_area_frac", id="too-small"),
    ],
)
def test_no_crop_is_typed_and_says_why(obstacles: list[Box], limits: CropSettings, words: str) -> None:
    plan = plan_crop((80, 100), obstacles, limits)
    assert isinstance(plan, NoCrop)
    assert words in plan.reason


def test_aspect_limit_trims_towards_the_centre() -> None:
    # Free area is a 1000x100 band; at most 2:1 keeps a 200x100 window centred on x = 500.
    plan = plan_crop((300, 1000), [Box(0, 100, 1000, 300)], settings(max_aspect=2.0))
    assert isinstance(plan, Crop)
    assert plan.box == Box(400, 0, 600, 100)


def test_centre_weight_trades_area_for_centrality() -> None:
    # Two bars leave a top band (45%), a bottom band (45%) and a central column (20%).
    obstacles = [Box(0, 45, 40, 55), Box(60, 45, 100, 55)]
    by_area = plan_crop((100, 100), obstacles, settings())
    by_centre = plan_crop((100, 100), obstacles, settings(centre_weight=1.0))
    assert isinstance(by_area, Crop) and by_area.box == Box(0, 0, 100, 45)
    assert isinstance(by_centre, Crop) and by_centre.box == Box(40, 0, 60, 100)


def test_skin_weight_prefers_the_crop_that_keeps_the_skin() -> None:
    # An obstacle in the middle splits the image into equal left and right halves;
    # only the right one shows skin, so it wins once skin counts.
    obstacles = [Box(45, 0, 55, 100)]
    skin = np.zeros((50, 50), dtype=bool)  # a coarse mask at half resolution
    skin[:, 30:] = True
    left_first = plan_crop((100, 100), obstacles, settings())
    with_skin = plan_crop((100, 100), obstacles, settings(skin_weight=1.0), skin_mask=skin)
    assert isinstance(left_first, Crop) and left_first.box == Box(0, 0, 45, 100)
    assert isinstance(with_skin, Crop) and with_skin.box == Box(55, 0, 100, 100)


def test_skin_mask_finds_skin_and_not_a_grey_wall() -> None:
    image = np.zeros((600, 800, 3), dtype=np.uint8)
    image[:, :400] = (214, 160, 130)  # skin
    image[:, 400:] = (128, 128, 128)  # grey wall
    mask = estimate_skin_mask(image)
    assert max(mask.shape) <= 256
    half = mask.shape[1] // 2
    assert mask[:, : half - 2].all() and not mask[:, half + 2 :].any()


def test_skin_mask_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match="two-dimensional"):
        plan_crop((10, 10), [], settings(skin_weight=1.0), skin_mask=np.zeros((10, 10, 3), dtype=bool))
