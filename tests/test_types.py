"""Box geometry and record invariants."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deid.types import Action, Box, Decision, Fingerprint, Region, RegionKind
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


@st.composite
def _stored_regions(draw: st.DrawFn) -> Region:
    """Regions as the JSON form stores them (scores on 4 places), with or without their provenance."""
    box = draw(boxes())
    calibrated = draw(st.booleans())
    return Region(
        draw(st.sampled_from(list(RegionKind))),
        box,
        draw(st.integers(0, 10_000)) / 10_000,
        draw(st.sampled_from(["faces.ensemble@1", "body.nudenet@2", "review:ana"])),
        draw(st.text(max_size=40)),
        draw(st.sampled_from(["agreed", "standalone", "legible"])) if calibrated else None,
        draw(st.floats(allow_nan=False, allow_infinity=False)) if calibrated else None,
    )


@given(_stored_regions())
def test_region_json_round_trips_with_and_without_provenance(region: Region) -> None:
    stored = json.loads(json.dumps(region.to_json()))
    assert Region.from_json(stored) == region
    assert ("calibration" in stored) is (region.calibration is not None), "written only when set"
    assert ("raw_score" in stored) is (region.raw_score is not None), "written only when set"


def test_region_json_from_before_provenance_still_loads() -> None:
    """A row written before regions carried ``calibration`` and ``raw_score`` (ledger decisions, review store)."""
    old = {"kind": "face", "box": [10, 20, 30, 60], "score": 0.3, "source": "faces.ensemble@1", "note": "why"}
    region = Region.from_json(old)
    assert region == Region(RegionKind.FACE, Box(10, 20, 40, 80), 0.3, "faces.ensemble@1", "why")
    assert region.calibration is None and region.raw_score is None
    decision = Decision.from_json({"action": "hold", "reasons": ["r"], "regions": [old], "crop": None})
    assert decision == Decision(Action.HOLD, (region,), ("r",))


@pytest.mark.parametrize(
    "provenance",
    [
        pytest.param({"calibration": 3}, id="calibration-not-a-string"),
        pytest.param({"calibration": ""}, id="calibration-empty"),
        pytest.param({"calibration": "x" * 65}, id="calibration-too-long"),
        pytest.param({"raw_score": "0.7"}, id="raw-a-string"),
        pytest.param({"raw_score": True}, id="raw-a-bool"),
        pytest.param({"raw_score": math.nan}, id="raw-nan"),
        pytest.param({"raw_score": math.inf}, id="raw-infinite"),
    ],
)
def test_region_json_refuses_bad_provenance(provenance: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"calibration|raw_score"):
        Region.from_json({"kind": "face", "box": [0, 0, 5, 5], "score": 0.5, **provenance})


def test_fingerprint_distance_counts_bits_and_refuses_other_methods() -> None:
    assert Fingerprint("phash", "ff00").distance(Fingerprint("phash", "0f00")) == 4
    with pytest.raises(ValueError, match="cannot compare"):
        Fingerprint("phash", "ff00").distance(Fingerprint("dhash", "ff00"))
