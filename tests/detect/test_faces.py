"""Face detection: real photos, generated hard cases (sideways, cut by the edge), merging, devdata recall."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deid.config import DetectorSettings
from deid.detect import Detector, detect_regions, read_options
from deid.detect.faces import CenterFaceDetector, FaceEnsembleDetector
from deid.detect.geometry import merge_regions, rotate_image, tile_boxes, unrotate_box
from deid.detect.runtime import make_dims_dynamic
from deid.errors import ConfigError
from deid.evaluate import evaluate_folder
from deid.types import Box, Region, RegionKind, RGBImage
from tests.detect.conftest import ASTRONAUT_FACE

FACE_DETECTORS = ["faces.ensemble", "faces.mediapipe", "faces.centerface"]


def _confident(regions: list[Region]) -> list[Region]:
    return [region for region in regions if region.kind is RegionKind.FACE and region.score >= 0.5]


@pytest.mark.parametrize("name", FACE_DETECTORS)
def test_astronaut_face_is_covered_whole(
    name: str, detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    faces = _confident(detector_named(name).detect(astronaut))
    assert len(faces) == 1
    assert faces[0].box.coverage_of(ASTRONAUT_FACE) >= 0.9


@pytest.mark.parametrize("turns", [1, 2, 3], ids=["90", "180", "270"])
def test_sideways_face_is_found_where_it_is(
    turns: int, detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    turned = np.ascontiguousarray(rotate_image(astronaut, turns))
    # Where the face lies in the turned image: the turned image, turned back, is the original.
    expected = unrotate_box(ASTRONAUT_FACE, (4 - turns) % 4, turned.shape)
    faces = _confident(detector_named("faces.ensemble").detect(turned))
    assert any(face.box.coverage_of(expected) >= 0.9 for face in faces)


def test_face_cut_by_the_image_edge_is_found(detector_named: Callable[[str], Detector], astronaut: RGBImage) -> None:
    cut = np.ascontiguousarray(astronaut[:, 230:])  # keeps the right 45% of the face
    visible = Box(0, ASTRONAUT_FACE.top, ASTRONAUT_FACE.right - 230, ASTRONAUT_FACE.bottom)
    faces = [r for r in detector_named("faces.ensemble").detect(cut) if r.kind is RegionKind.FACE]
    assert any(face.box.coverage_of(visible) >= 0.7 and face.box.left == 0 for face in faces)


def test_small_face_in_a_large_photo_is_found_through_the_detection_copy(
    detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    """A 4000 x 3000 photo with the face 80 pixels wide: 26 pixels on the 1280-pixel detection copy."""
    small = astronaut[::5, ::5]  # 103 x 103: the face is ASTRONAUT_FACE / 5
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    canvas[1500 : 1500 + 412, 2000 : 2000 + 412] = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    face = Box(2000 + 4 * 35, 1500 + 4 * 10, 2000 + 4 * 55, 1500 + 4 * 36)
    regions = detect_regions(canvas, [detector_named("faces.ensemble")], max_side_px=1280)
    assert any(r.box.coverage_of(face) >= 0.7 for r in regions if r.score >= 0.5)


def test_pose_head_is_dropped_when_a_confident_face_explains_it(
    detector_named: Callable[[str], Detector], astronaut: RGBImage
) -> None:
    heads = detector_named("faces.landmarks").detect(astronaut)
    assert len(heads) == 1 and heads[0].score < 0.5  # low score: review, never a silent pass
    assert heads[0].box.coverage_of(ASTRONAUT_FACE) >= 0.9
    ensemble = detector_named("faces.ensemble").detect(astronaut)
    assert all(region.score >= 0.5 for region in ensemble)


def test_pose_head_alone_holds_for_review(astronaut: RGBImage) -> None:
    """With the face models off, a head still yields a face region, below the redaction threshold."""
    detector = FaceEnsembleDetector(DetectorSettings(options={"mediapipe": False, "centerface": False}))
    regions = detector.detect(astronaut)
    assert len(regions) == 1 and 0.2 <= regions[0].score < 0.5
    assert "pose" in regions[0].note


def test_ensemble_with_no_member_is_refused() -> None:
    with pytest.raises(ConfigError, match="every member"):
        FaceEnsembleDetector(DetectorSettings(options={"mediapipe": False, "centerface": False, "landmarks": False}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"rotations": 1}, "true or false", id="number-for-switch"),
        pytest.param({"min_score": True}, "must be a number", id="switch-for-number"),
        pytest.param({"min_score": "high"}, "must be a number", id="string"),
        pytest.param({"minscore": 0.3}, "unknown option", id="typo"),
    ],
)
def test_read_options_refuses_bad_values(options: dict[str, object], message: str) -> None:
    defaults = {"min_score": 0.5, "rotations": True}
    with pytest.raises(ConfigError, match=message):
        read_options(DetectorSettings(options=options), defaults, "faces.test")  # type: ignore[arg-type]


def test_read_options_merges_over_defaults() -> None:
    merged = read_options(DetectorSettings(options={"rotations": False}), {"min_score": 0.5, "rotations": True}, "x")
    assert merged == {"min_score": 0.5, "rotations": 0.0}


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_unrotate_box_maps_a_marked_pixel_back(turns: int) -> None:
    image = np.zeros((30, 50, 3), np.uint8)
    image[7, 11] = 255
    turned = rotate_image(image, turns)
    row, column = (int(v[0]) for v in np.nonzero(turned[:, :, 0]))
    assert unrotate_box(Box(column, row, column + 1, row + 1), turns, image.shape) == Box(11, 7, 12, 8)


def test_tiles_cover_the_image_and_overlap() -> None:
    tiles = list(tile_boxes((960, 1280), grid=2, overlap_frac=0.25))
    assert len(tiles) == 4
    assert min(t.left for t in tiles) == 0 and max(t.right for t in tiles) == 1280
    assert min(t.top for t in tiles) == 0 and max(t.bottom for t in tiles) == 960
    assert tiles[0].intersection(tiles[1]).width > 0


def test_merge_keeps_the_union_and_the_highest_score() -> None:
    regions = [
        Region(RegionKind.FACE, Box(10, 10, 50, 60), 0.9, "a", "model a"),
        Region(RegionKind.FACE, Box(5, 0, 48, 55), 0.3, "b", "model b"),
        Region(RegionKind.FACE, Box(200, 200, 240, 250), 0.6, "a", "model a"),
        Region(RegionKind.TEXT, Box(10, 10, 50, 60), 0.8, "c"),
    ]
    merged = merge_regions(regions, min_iou=0.3)
    faces = sorted((r for r in merged if r.kind is RegionKind.FACE), key=lambda r: r.box.left)
    assert [r.box for r in faces] == [Box(5, 0, 50, 60), Box(200, 200, 240, 250)]
    assert faces[0].score == 0.9 and faces[0].note == "model a; model b"
    assert sum(r.kind is RegionKind.TEXT for r in merged) == 1


def test_centerface_model_accepts_any_size_after_the_shape_edit() -> None:
    detector = CenterFaceDetector(DetectorSettings(options={"rotations": False}))
    for shape in [(97, 131, 3), (480, 640, 3), (1000, 333, 3)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_make_dims_dynamic_leaves_other_tensors_alone() -> None:
    # A hand-built ModelProto: graph { input { name: "x" type { tensor_type { shape { dim { dim_value: 3 } } } } } }
    dim = b"\x0a\x02\x08\x03"
    shape = b"\x12" + bytes([len(dim)]) + dim
    tensor = b"\x0a" + bytes([len(shape)]) + shape
    value = b"\x0a\x01x" + b"\x12" + bytes([len(tensor)]) + tensor
    model = b"\x3a" + bytes([len(value) + 2]) + b"\x5a" + bytes([len(value)]) + value
    assert make_dims_dynamic(model, {"y": ["n"]}) == model
    edited = make_dims_dynamic(model, {"x": ["n"]})
    assert b"\x12\x01n" in edited and b"\x08\x03" not in edited


@pytest.mark.devdata
@pytest.mark.slow
def test_devdata_face_recall_and_false_alarms(devdata: Path, detector_named: Callable[[str], Detector]) -> None:
    """Issue 4's bar: recall >= 0.98 (a face is found when a region covers 70% of its box), <= 2 of 8 no-face images.

    Measured 2026-11 on ../shared/devdata/faces (31 images, 80 faces): recall 1.0, 2 false-alarm images
    (a gorilla, a teddy bear), precision about 0.89.
    """
    report = evaluate_folder(
        devdata / "faces", [detector_named("faces.ensemble")], kind=RegionKind.FACE, max_side_px=1280
    )
    assert report.recall is not None and report.recall >= 0.98, report.to_json()["misses"]
    assert len(report.false_alarm_images) <= 2, report.false_alarm_images
