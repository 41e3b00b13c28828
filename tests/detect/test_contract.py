"""The same invariants for every registered detector (imagededup's TestCommon idea).

Each detector is built once per session with its default options and run on
a real photo, a blank image and an odd-sized noise image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deid.config import DetectorSettings
from deid.detect import DETECTORS, Detector
from deid.errors import ConfigError
from deid.types import Region, RGBImage

NAMES = sorted(DETECTORS)


def _read_only(image: RGBImage) -> RGBImage:
    image = np.ascontiguousarray(image)
    image.setflags(write=False)  # a detector that writes into its input raises
    return image


def _check(detector: Detector, image: RGBImage) -> list[Region]:
    before = image.copy()
    regions = detector.detect(image)
    assert isinstance(regions, list)
    assert np.array_equal(image, before), "detect() changed its input"
    height, width = image.shape[:2]
    for region in regions:
        assert isinstance(region, Region)
        assert region.kind in detector.kinds
        assert not region.box.is_empty
        assert 0 <= region.box.left < region.box.right <= width
        assert 0 <= region.box.top < region.box.bottom <= height
        assert 0.0 <= region.score <= 1.0
        assert region.source.startswith(detector.name)
    return regions


@pytest.mark.parametrize("name", NAMES)
def test_is_a_detector_with_name_version_and_kinds(name: str, detector_named: Callable[[str], Detector]) -> None:
    detector = detector_named(name)
    assert isinstance(detector, Detector)
    assert detector.name == name
    assert detector.version
    assert detector.kinds


@pytest.mark.parametrize("name", NAMES)
def test_real_photo_gives_valid_regions_and_input_is_untouched(
    name: str, detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    _check(detector_named(name), astronaut)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "fill",
    [pytest.param(0, id="black"), pytest.param(255, id="white"), pytest.param(128, id="grey")],
)
def test_blank_image_gives_nothing(name: str, fill: int, detector_named: Callable[[str], Detector]) -> None:
    assert _check(detector_named(name), _read_only(np.full((480, 640, 3), fill, np.uint8))) == []


@pytest.mark.parametrize("name", NAMES)
def test_odd_sized_noise_keeps_boxes_inside(name: str, detector_named: Callable[[str], Detector]) -> None:
    noise = np.random.default_rng(4).integers(0, 256, (301, 517, 3), dtype=np.uint8)
    _check(detector_named(name), _read_only(noise))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_refused_at_construction(name: str) -> None:
    with pytest.raises(ConfigError):
        DETECTORS[name](DetectorSettings(options={"no_such_option": 1}))
