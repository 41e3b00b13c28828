"""Every calibrated region names the table that scored it and the raw value the table read.

Run through :func:`deid.detect.detect_regions`, so the provenance also survives the
detection copy's rescaling. Review feedback reads these fields (deid/review/feedback.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from deid.config import load_config
from deid.detect import Detector, detect_regions
from deid.detect.calibration import Calibration
from deid.io import load_image
from deid.types import Region, RGBImage


def _astronaut() -> RGBImage:
    return np.ascontiguousarray(skimage.data.astronaut())


def _page() -> RGBImage:
    return np.ascontiguousarray(np.stack([skimage.data.page()] * 3, axis=-1))


def _assert_provenance(detector: Detector, regions: list[Region]) -> list[Region]:
    """Calibrated regions name one of ``detector``'s tables and map through it to their score exactly."""
    tables: dict[str, Calibration] = detector.calibration  # type: ignore[attr-defined]  # not on the protocol
    calibrated = [region for region in regions if region.calibration is not None]
    for region in calibrated:
        assert region.calibration in tables, region
        assert region.raw_score is not None, region
        assert tables[region.calibration](region.raw_score) == region.score, region
    assert all(region.raw_score is None for region in regions if region.calibration is None)
    return calibrated


@pytest.mark.parametrize(
    ("name", "image", "tables"),
    [
        pytest.param("faces.ensemble", _astronaut, {"agreed"}, id="faces-astronaut-both-members"),
        pytest.param("text.rapidocr", _page, {"legible"}, id="text-printed-page"),
    ],
)
def test_calibrated_regions_name_their_table_and_raw_score(
    name: str,
    image: Callable[[], RGBImage],
    tables: set[str],
    detector_named: Callable[[str], Detector],
) -> None:
    detector = detector_named(name)
    calibrated = _assert_provenance(detector, detect_regions(image(), [detector], max_side_px=1280))
    assert {region.calibration for region in calibrated} == tables


@pytest.mark.devdata
def test_a_nudenet_region_without_a_body_names_the_standalone_table(
    devdata: Path, detector_named: Callable[[str], Detector]
) -> None:
    """NudeNet calls this heel genitalia at raw 0.41 with no body around it (tests/detect/test_skin_photos.py)."""
    detector = detector_named("body.nudenet")
    heel = load_image(devdata / "skin" / "fuseg_1412.png", load_config().input).pixels
    regions = detect_regions(heel, [detector], max_side_px=1280)
    calibrated = _assert_provenance(detector, regions)
    assert calibrated and {region.calibration for region in calibrated} == {"standalone"}
    assert all(region.raw_score is not None and region.raw_score >= 0.3 for region in calibrated), "the model's floor"
