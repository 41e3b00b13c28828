"""ManualRegions: a reviewer's boxes, scaled to whatever image the detector is given."""

from __future__ import annotations

import numpy as np
import pytest

from deid.config import DetectorSettings, load_config
from deid.detect import DETECTORS, Detector, build_detectors, detect_regions
from deid.detect.manual import ManualRegions
from deid.errors import ConfigError
from deid.types import Box, Region, RegionKind

FULL = (3000, 4000)  # height, width of the image the reviewer drew on
FACE = Region(RegionKind.FACE, Box(100, 200, 700, 1000), 1.0, "review:ana", "face in mirror")
TEXT = Region(RegionKind.TEXT, Box(3900, 2900, 4100, 3100), 1.0, "review:ana")  # crosses the corner


def test_is_a_detector_registered_as_manual_but_not_enabled_by_default() -> None:
    detector = DETECTORS["manual"](DetectorSettings())
    assert isinstance(detector, Detector)
    assert detector.name == "manual" and detector.kinds == frozenset(RegionKind)
    assert detector.detect(np.zeros((10, 10, 3), np.uint8)) == []
    assert "manual" not in load_config().detection.detectors
    assert not any(d.name == "manual" for d in build_detectors(load_config()))


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        pytest.param((3000, 4000, 3), Box(100, 200, 700, 1000), id="full-size"),
        pytest.param((960, 1280, 3), Box(32, 64, 224, 320), id="detection-copy"),
        pytest.param((301, 401, 3), Box(10, 20, 71, 101), id="odd-size-rounds-outwards"),
    ],
)
def test_scales_to_the_image_it_is_given(shape: tuple[int, int, int], expected: Box) -> None:
    detector = ManualRegions(regions=[FACE], image_shape=FULL)
    (region,) = detector.detect(np.zeros(shape, np.uint8))
    assert region.box == expected
    assert (region.kind, region.score, region.source, region.note) == (FACE.kind, 1.0, "review:ana", "face in mirror")


def test_boxes_are_clipped_and_never_shrink_through_a_round_trip() -> None:
    image = np.zeros((*FULL, 3), np.uint8)
    detector = ManualRegions(regions=[FACE, TEXT], image_shape=FULL)
    found = detect_regions(image, [detector], max_side_px=1280)
    assert found[0].box.coverage_of(FACE.box) == 1.0
    assert found[1].box == TEXT.box.clip(image.shape)


def test_without_an_image_shape_boxes_are_in_the_given_image_pixels() -> None:
    (region,) = ManualRegions(regions=[FACE]).detect(np.zeros((500, 500, 3), np.uint8))
    assert region.box == Box(100, 200, 500, 500)


def test_does_not_mutate_its_input() -> None:
    image = np.full((30, 40, 3), 7, np.uint8)
    ManualRegions(regions=[FACE], image_shape=FULL).detect(image)
    assert (image == 7).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"settings": DetectorSettings(options={"min_score": 0.5})}, id="options"),
        pytest.param({"image_shape": (0, 100)}, id="empty-shape"),
    ],
)
def test_refuses_bad_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ManualRegions(**kwargs)  # type: ignore[arg-type]
