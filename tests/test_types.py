"""Box geometry and record invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deid.types import Box, Fingerprint, Region, RegionKind
from tests.strategies import boxes


@given(boxes())
def test_clip_stays_inside_the_image(box: Box) -> None:
    clipped = box.clip((150, 200, 3))
    assert 0 <= clipped.left <= clipped.right <= 200
    assert 0 <= clipped.top <= clipped.bottom <= 150
    assert clipped.area <= box.area


@given(boxes(), st.floats(0.0, 1.0))
def test_expand_contains_the_original(box: Box, margin: float) -> None:
    grown = box.expand(margin)
    assert grown.intersection(box) == box
    assert grown.width >= box.width and grown.height >= box.height


@given(boxes(), boxes())
def test_iou_is_symmetric_and_bounded(a: Box, b: Box) -> None:
    assert a.iou(b) == pytest.approx(b.iou(a))
    assert 0.0 <= a.iou(b) <= 1.0
    assert a.iou(a) == 1.0


@given(boxes(allow_outside=False), st.floats(1.0, 8.0))
def test_scale_covers_the_mapped_pixels(box: Box, factor: float) -> None:
    scaled = box.scale(factor)
    assert scaled.left <= box.left * factor and scaled.right >= box.right * factor
    assert scaled.top <= box.top * factor and scaled.bottom >= box.bottom * factor


@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 500), st.integers(1, 500))
def test_xywh_round_trip(x: int, y: int, w: int, h: int) -> None:
    assert Box.from_xywh(x, y, w, h).to_xywh() == [x, y, w, h]


def test_region_json_writes_boxes_as_xywh() -> None:
    region = Region(RegionKind.FACE, Box(10, 20, 40, 80), 0.91234, "faces.x@1", "why")
    assert region.to_json() == {
        "kind": "face",
        "box": [10, 20, 30, 60],
        "score": 0.9123,
        "source": "faces.x@1",
        "note": "why",
    }


def test_fingerprint_distance_counts_bits_and_refuses_other_methods() -> None:
    assert Fingerprint("phash", "ff00").distance(Fingerprint("phash", "0f00")) == 4
    with pytest.raises(ValueError, match="cannot compare"):
        Fingerprint("phash", "ff00").distance(Fingerprint("dhash", "ff00"))
