"""Plain skin photos (devdata ``skin/``): what each detector must not raise on them.

These pin the calibration of issue 17: a foot sole is not genitalia, skin
texture is not text, a close-up of skin is not a person, and a naevus is not
a face, while real faces, text and people are still found (tests/detect/
test_faces.py, test_text.py and test_people.py keep their assertions).
Scores are compared with the default policy's review thresholds, so "below
the review band" means the policy neither holds nor redacts the image for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deid.config import load_config
from deid.detect import Detector, detect_regions
from deid.evidence import skin_fraction
from deid.io import load_image
from deid.types import RegionKind, RGBImage

POLICY = load_config().policy


def _skin_photo(devdata: Path, file: str) -> RGBImage:
    return load_image(devdata / "skin" / file, load_config().input).pixels


def _review(kind: RegionKind) -> float:
    return POLICY.rule_for(kind).review_score


@pytest.mark.devdata
@pytest.mark.parametrize(
    "file",
    [
        pytest.param("fuseg_1412.png", id="heel-ulcer-raw-0.41"),
        pytest.param("fuseg_1313.png", id="medial-foot-raw-0.68"),
        pytest.param("fuseg_0252.png", id="big-toe-raw-0.76"),
        pytest.param("ajl9_3827d74369ad890f80bdf6b6080b700f.jpg", id="foot"),
    ],
)
def test_a_foot_sole_raises_no_sensitive_body_above_the_review_band(
    devdata: Path, file: str, detector_named: Callable[[str], Detector]
) -> None:
    """NudeNet calls these feet genitalia at raw 0.41-0.76 with no body around them."""
    regions = detect_regions(_skin_photo(devdata, file), [detector_named("body.nudenet")], max_side_px=1280)
    assert all(region.score < _review(RegionKind.SENSITIVE_BODY) for region in regions), regions


@pytest.mark.devdata
@pytest.mark.parametrize(
    "file",
    [
        pytest.param("ajl9_0ee7316d0dd4ad139cc108e871b7676d.jpg", id="rash"),
        pytest.param("scabcnx_salinan_dk_2_1.jpeg", id="scabies"),
        pytest.param("messale_isic_0025373.jpg", id="dermoscopy"),
        pytest.param("onycho_74878643-c308-4367-b0ef-d4a6d350b0d6.png", id="toenail"),
    ],
)
def test_skin_texture_yields_no_text_region_in_the_review_band(
    devdata: Path, file: str, detector_named: Callable[[str], Detector]
) -> None:
    regions = detect_regions(_skin_photo(devdata, file), [detector_named("text.rapidocr")], max_side_px=1280)
    rule = POLICY.rule_for(RegionKind.TEXT)
    assert not [r for r in regions if rule.review_score <= r.score < rule.min_score], regions


@pytest.mark.devdata
@pytest.mark.parametrize(
    "file",
    [
        pytest.param("scabcnx_salinan_selulitis_2_2.jpeg", id="cellulitis-leg"),
        pytest.param("ajl9_edce9bab731228e8240e613dd6e5e2ee.jpg", id="rash"),
        pytest.param("onycho_6b7f6539-c540-445c-9b3e-a4343d4e395a.png", id="toenail"),
    ],
)
def test_a_plain_skin_close_up_yields_no_person(
    devdata: Path, file: str, detector_named: Callable[[str], Detector]
) -> None:
    assert detect_regions(_skin_photo(devdata, file), [detector_named("people.mediapipe")], max_side_px=1280) == []


@pytest.mark.devdata
@pytest.mark.parametrize(
    ("folder", "file", "closeup"),
    [
        pytest.param("tattoos", "bivtatt_122_1.jpg", True, id="forearm-close-up-pose-calls-a-body"),
        pytest.param("tattoos", "bivtatt_120_1.jpg", True, id="elbow-close-up-pose-calls-a-body"),
        pytest.param("faces", "fr_kit_with_rose.jpg", False, id="whole-body-photo"),
    ],
)
def test_pose_close_ups_of_limbs_are_dropped_and_whole_bodies_kept(
    devdata: Path, folder: str, file: str, closeup: bool, detector_named: Callable[[str], Detector]
) -> None:
    """Pose calls these forearm close-ups a whole body; their boxes are 0.91 skin, a body in a setting is not."""
    image = load_image(devdata / folder / file, load_config().input).pixels
    regions = detect_regions(image, [detector_named("people.mediapipe")], max_side_px=1280)
    assert (regions == []) is closeup
    assert skin_fraction(image) > 0.0


@pytest.mark.devdata
@pytest.mark.parametrize(
    "file",
    [
        pytest.param("dhkderm_melanocytic_nevus_isic_0068028.jpg", id="naevus-blazeface-0.58"),
        pytest.param("onycho_74878643-c308-4367-b0ef-d4a6d350b0d6.png", id="toenail-pose-head"),
    ],
)
def test_a_lesion_is_not_a_face(devdata: Path, file: str, detector_named: Callable[[str], Detector]) -> None:
    """BlazeFace alone (no CenterFace agreement) and pose heads without shoulders score below the review band."""
    regions = detect_regions(_skin_photo(devdata, file), [detector_named("faces.ensemble")], max_side_px=1280)
    assert all(region.score < _review(RegionKind.FACE) for region in regions), regions


@pytest.mark.devdata
def test_a_confident_blazeface_only_face_is_held_not_released(
    devdata: Path, detector_named: Callable[[str], Detector]
) -> None:
    """BlazeFace alone at 0.76 on a dermoscopy photo: held for a person, never released unseen nor redacted blind.

    A face only BlazeFace sees is exactly what a profile or rotated face on an unseen photo looks like, so
    from raw 0.7 it stays in the review band (privacy first), and the devdata naevi below that are released.
    """
    file = "dhkderm_actinic_keratosis_isic_0066684.jpg"
    regions = detect_regions(_skin_photo(devdata, file), [detector_named("faces.ensemble")], max_side_px=1280)
    assert regions and all(region.score < POLICY.rule_for(RegionKind.FACE).min_score for region in regions)
    assert any(region.score >= _review(RegionKind.FACE) for region in regions), regions


def test_the_astronaut_face_is_still_redacted(detector_named: Callable[[str], Detector], astronaut: RGBImage) -> None:
    regions = detector_named("faces.ensemble").detect(astronaut)
    assert any(r.score >= POLICY.rule_for(RegionKind.FACE).min_score and "CenterFace" in r.note for r in regions)
