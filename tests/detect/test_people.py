"""People (pose) and sensitive body (NudeNet) detectors on real photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deid.config import DetectorSettings, load_config
from deid.detect import Detector, detect_regions
from deid.detect.people import MediapipePersonDetector, person_outline
from deid.io import load_image
from deid.types import Box, RegionKind, RGBImage


def test_portrait_with_a_visible_face_is_not_a_person_region(
    detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    """The face detectors handle a portrait; flagging it as a person would hold every redacted face."""
    assert detector_named("people.mediapipe").detect(astronaut) == []


def test_clothed_portrait_has_no_sensitive_body(detector_named: Callable[[str], Detector], astronaut: RGBImage) -> None:
    assert detector_named("body.nudenet").detect(astronaut) == []


def test_person_outline_uses_the_mask_near_the_landmarks() -> None:
    mask = np.zeros((100, 100), np.float32)
    mask[20:90, 30:60] = 0.9
    assert person_outline(mask, Box(35, 25, 55, 50)) == Box(30, 20, 60, 90)
    assert person_outline(mask, Box(70, 0, 90, 10)) is None
    assert person_outline(np.zeros((10, 10), np.float32), Box(0, 0, 5, 5)) is None


def test_segmentation_can_be_switched_off(astronaut: RGBImage) -> None:
    detector = MediapipePersonDetector(DetectorSettings(options={"segmentation": False}))
    assert detector.detect(astronaut) == []


@pytest.mark.devdata
@pytest.mark.parametrize(
    ("file", "person"),
    [
        pytest.param("fr_kit_with_rose.jpg", Box(40, 90, 230, 650), id="whole-body"),
        pytest.param("linz_21.jpg", Box(100, 330, 300, 740), id="full-length-in-a-group"),
    ],
)
def test_whole_body_photo_gives_a_person_region(
    devdata: Path, file: str, person: Box, detector_named: Callable[[str], Detector]
) -> None:
    image = load_image(devdata / "faces" / file, load_config().input).pixels
    regions = detect_regions(image, [detector_named("people.mediapipe")], max_side_px=1280)
    assert len(regions) == 1 and regions[0].kind is RegionKind.PERSON
    assert regions[0].score >= 0.5 and "whole body" in regions[0].note
    assert regions[0].box.coverage_of(person) >= 0.8


@pytest.mark.devdata
def test_bare_chest_is_flagged_as_sensitive(devdata: Path, detector_named: Callable[[str], Detector]) -> None:
    image = load_image(devdata / "tattoos" / "bivtatt_58_1.jpg", load_config().input).pixels
    regions = detect_regions(image, [detector_named("body.nudenet")], max_side_px=1280)
    assert regions and all(region.kind is RegionKind.SENSITIVE_BODY for region in regions)
    assert all("exposed" in region.note for region in regions)


def test_one_pose_run_serves_heads_and_people(astronaut: RGBImage) -> None:
    """faces.landmarks and people.mediapipe read one pose estimate per image, not one each."""
    from deid.detect.faces import MediapipeHeadDetector
    from deid.detect.pose import shared_estimator

    estimator = shared_estimator(min_score=0.5)
    runs: list[int] = []
    process = estimator._model.process

    def counted(image: np.ndarray) -> object:
        runs.append(1)
        return process(image)

    estimator._model.process = counted
    try:
        heads, people = MediapipeHeadDetector(), MediapipePersonDetector()
        image = astronaut.copy()  # a new image: nothing cached for it
        heads.detect(image)
        people.detect(image)
        heads.detect(image)
        assert len(runs) == 1
        other = image.copy()  # an equal image that is another object is estimated again
        people.detect(other)
        assert len(runs) == 2
    finally:
        estimator._model.process = process
