"""Redaction: a solid fill written into the pixels, covering every box plus its margin."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deid.config import Config
from deid.redact import fill_boxes, redaction_boxes, render_decision
from deid.types import Action, Box, Decision, Region, RegionKind, RGBImage
from tests.assertions import assert_no_pixel_survives


@st.composite
def region_sets(draw: st.DrawFn, height: int, width: int) -> list[Region]:
    """Regions of any kind, including boxes that touch, cross or lie beyond the image edge."""
    regions = []
    for _ in range(draw(st.integers(0, 6))):
        left = draw(st.integers(-width, 2 * width))
        top = draw(st.integers(-height, 2 * height))
        box = Box(left, top, left + draw(st.integers(1, width + 2)), top + draw(st.integers(1, height + 2)))
        regions.append(Region(draw(st.sampled_from(list(RegionKind))), box, 1.0, "manual@1"))
    return regions


@st.composite
def images_with_regions(draw: st.DrawFn) -> tuple[RGBImage, list[Region]]:
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    image = draw(arrays(np.uint8, (height, width, 3)))
    return image, draw(region_sets(height, width))


@given(images_with_regions(), st.sampled_from([(0, 0, 0), (255, 255, 255), (12, 200, 7)]))
def test_every_pixel_inside_every_redacted_box_plus_margin_is_the_fill(
    config: Config, scene: tuple[RGBImage, list[Region]], fill_rgb: tuple[int, int, int]
) -> None:
    image, regions = scene
    policy = replace(config.policy, fill_rgb=fill_rgb)
    before = image.copy()
    after = render_decision(image, Decision(Action.REDACT, tuple(regions)), policy)
    assert after.shape == image.shape and after.dtype == np.uint8
    for region in regions:
        assert_no_pixel_survives(region.box.expand(policy.rule_for(region.kind).margin_frac), after, fill_rgb)
    outside = np.ones(image.shape[:2], dtype=bool)
    for box in redaction_boxes(regions, policy, image.shape):
        outside[box.top : box.bottom, box.left : box.right] = False
    assert (after[outside] == before[outside]).all(), "pixels outside every box are untouched"
    assert (image == before).all(), "the input is never modified"


@given(images_with_regions())
def test_a_crop_never_brings_back_a_redacted_pixel(config: Config, scene: tuple[RGBImage, list[Region]]) -> None:
    image, regions = scene
    height, width = image.shape[:2]
    crop = Box(
        width // 4, height // 4, max(width // 4 + 1, width - width // 4), max(height // 4 + 1, height - height // 4)
    )
    after = render_decision(image, Decision(Action.CROP, tuple(regions), crop=crop), config.policy)
    assert after.shape[:2] == (crop.height, crop.width)
    for region in regions:
        grown = region.box.expand(config.policy.rule_for(region.kind).margin_frac)
        shifted = Box(grown.left - crop.left, grown.top - crop.top, grown.right - crop.left, grown.bottom - crop.top)
        assert_no_pixel_survives(shifted, after, config.policy.fill_rgb)


@pytest.mark.parametrize(
    "box",
    [
        pytest.param(Box(-10, -10, 5, 5), id="crosses-top-left"),
        pytest.param(Box(15, 15, 40, 40), id="crosses-bottom-right"),
        pytest.param(Box(0, 0, 20, 20), id="whole-image"),
        pytest.param(Box(20, 0, 30, 5), id="touches-right-edge-from-outside"),
    ],
)
def test_fill_boxes_at_the_edge(box: Box) -> None:
    image = np.full((20, 20, 3), 150, dtype=np.uint8)
    after = fill_boxes(image, [box], fill_rgb=(0, 0, 0))
    assert_no_pixel_survives(box, after, (0, 0, 0))
    clipped = box.clip(image.shape)
    assert int((after[..., 0] == 0).sum()) == clipped.area


def test_margin_grows_the_box(config: Config) -> None:
    region = Region(RegionKind.FACE, Box(40, 40, 60, 60), 0.9, "manual@1")
    margin = config.policy.rule_for(RegionKind.FACE).margin_frac
    (box,) = redaction_boxes([region], config.policy, (100, 100, 3))
    assert box == region.box.expand(margin)
    assert box.width > region.box.width


def test_an_empty_crop_is_refused(config: Config) -> None:
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="leaves nothing"):
        render_decision(image, Decision(Action.CROP, (), crop=Box(20, 20, 30, 30)), config.policy)


def test_fill_boxes_on_a_non_contiguous_view_fills_the_box_and_leaves_the_source() -> None:
    """Upright pixels can arrive as a flipped or transposed view; the flat-row fill must not see the wrong layout."""
    source = np.arange(30 * 20 * 3, dtype=np.uint32).astype(np.uint8).reshape(30, 20, 3)
    view = source.transpose(1, 0, 2)[::-1]  # 20 x 30, neither C- nor F-contiguous
    before = source.copy()
    box = Box(3, 2, 17, 9)
    after = fill_boxes(view, [box], fill_rgb=(12, 200, 7))
    assert_no_pixel_survives(box, after, (12, 200, 7))
    outside = np.ones(view.shape[:2], dtype=bool)
    outside[box.top : box.bottom, box.left : box.right] = False
    assert (after[outside] == view[outside]).all()
    assert (source == before).all()


def test_fill_boxes_refuses_a_colour_with_the_wrong_number_of_channels() -> None:
    with pytest.raises(ValueError, match="channels"):
        fill_boxes(np.zeros((4, 4, 3), dtype=np.uint8), [Box(0, 0, 2, 2)], fill_rgb=(0, 0))
