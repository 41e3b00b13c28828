"""Scoring against labelled folders: faces (boxes), text (yes/no) and tattoos (yes/no plus boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.cli import main
from deid.detect.manual import ManualRegions
from deid.errors import ConfigError
from deid.evaluate import ImageLabel, evaluate_folder, read_labels, score_image
from deid.types import Box, Region, RegionKind


def _region(kind: RegionKind, box: Box, score: float = 0.9) -> Region:
    return Region(kind, box, score, "review:test")


def _folder(tmp_path: Path, labels_name: str, labels: dict[str, object]) -> Path:
    for name in labels:
        Image.fromarray(np.full((200, 300, 3), 120, np.uint8)).save(tmp_path / name)
    (tmp_path / labels_name).write_text(json.dumps(labels))
    return tmp_path


@pytest.mark.parametrize(
    ("region_box", "found"),
    [
        pytest.param(Box(10, 10, 50, 50), True, id="exact"),
        pytest.param(Box(0, 0, 100, 100), True, id="larger"),
        pytest.param(Box(10, 10, 38, 50), True, id="70-percent"),
        pytest.param(Box(10, 10, 37, 50), False, id="below-70-percent"),
        pytest.param(Box(100, 100, 140, 140), False, id="elsewhere"),
    ],
)
def test_a_box_is_found_when_70_percent_is_covered(region_box: Box, found: bool) -> None:
    label = ImageLabel(True, (Box(10, 10, 50, 50),))
    result = score_image("a.jpg", label, [_region(RegionKind.FACE, region_box)])
    assert (not result.missed) is found


def test_false_regions_match_no_label() -> None:
    """A region inside a labelled face is not false, even when it covers too little to find it."""
    label = ImageLabel(True, (Box(10, 10, 50, 50),))
    regions = [_region(RegionKind.FACE, Box(15, 15, 45, 45)), _region(RegionKind.FACE, Box(150, 150, 190, 190))]
    result = score_image("a.jpg", label, regions)
    assert result.false_regions == 1 and result.missed == (Box(10, 10, 50, 50),)


def test_face_folder_recall_precision_and_false_alarms(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "labels_faces.json",
        {"two.png": [[10, 10, 40, 40], [200, 100, 50, 60]], "none.png": [], "none2.png": []},
    )
    # The reviewer's boxes: one face of two, plus a false alarm; the detector sees every image the same way.
    detector = ManualRegions(
        regions=[_region(RegionKind.FACE, Box(8, 8, 52, 52)), _region(RegionKind.TEXT, Box(0, 0, 9, 9))]
    )
    report = evaluate_folder(folder, [detector], kind=RegionKind.FACE, max_side_px=1280)
    assert report.box_recall == 0.5 and report.recall == 0.5
    assert report.false_alarm_images == ("none.png", "none2.png") and report.false_alarm_rate == 1.0
    assert report.precision == pytest.approx(1 / 3)
    payload = report.to_json()
    assert payload["misses"] == [{"file": "two.png", "box": [200, 100, 50, 60]}]
    assert payload["labelled_boxes"] == 2 and payload["images"] == 3
    assert report.seconds_per_image >= 0.0


def test_text_folder_is_scored_per_image(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "labels_text.json",
        {"sign.png": {"has_text": "yes", "lines": 2}, "lake.png": {"has_text": "no", "lines": 0}},
    )
    report = evaluate_folder(
        folder,
        [ManualRegions(regions=[_region(RegionKind.TEXT, Box(5, 5, 60, 20))])],
        kind=RegionKind.TEXT,
        max_side_px=1280,
    )
    assert report.box_recall is None and report.image_recall == 1.0 and report.recall == 1.0
    assert report.false_alarm_images == ("lake.png",) and report.precision == 0.5


def test_tattoo_folder_has_image_and_box_figures(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "labels_tattoos.json",
        {
            "ink.png": {"has_tattoo": "yes", "boxes": [[20, 20, 40, 40]]},
            "mole.png": {"has_tattoo": "no", "boxes": []},
        },
    )
    detector = ManualRegions(regions=[_region(RegionKind.TATTOO, Box(18, 18, 62, 62), 0.2)])
    report = evaluate_folder(folder, [detector], kind=RegionKind.TATTOO, max_side_px=1280)
    assert report.box_recall == 1.0 and report.image_recall == 1.0 and report.false_alarm_rate == 1.0
    below = evaluate_folder(folder, [detector], kind=RegionKind.TATTOO, max_side_px=1280, min_score=0.3)
    assert below.recall == 0.0 and below.missed_images == ("ink.png",) and below.false_alarm_rate == 0.0


def test_unreadable_image_counts_as_missed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "labels_faces.json", {"face.png": [[10, 10, 40, 40]]})
    (folder / "face.png").write_bytes(b"not an image")
    report = evaluate_folder(folder, [ManualRegions()], kind=RegionKind.FACE, max_side_px=1280)
    assert report.recall == 0.0 and report.images[0].error


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        pytest.param("labels_faces.json", "{not json", RegionKind.FACE, id="not-json"),
        pytest.param("labels_text.json", '{"a.jpg": {"has_text": "maybe"}}', RegionKind.TEXT, id="bad-flag"),
        pytest.param("labels_tattoos.json", '{"a.jpg": {"boxes": []}}', RegionKind.TATTOO, id="missing-flag"),
        pytest.param("labels_faces.json", '{"a.jpg": [[1, 2]]}', RegionKind.FACE, id="short-box"),
    ],
)
def test_malformed_labels_are_a_config_error(tmp_path: Path, name: str, content: str, kind: RegionKind) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError, match="malformed labels"):
        read_labels(tmp_path, kind)


def test_missing_labels_and_unlabelled_kinds_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read labels"):
        read_labels(tmp_path, RegionKind.FACE)
    with pytest.raises(ConfigError, match="no label format"):
        read_labels(tmp_path, RegionKind.PERSON)


def test_cli_eval_and_detect_print_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, "labels_faces.json", {"blank.png": []})
    assert main(["eval", str(folder), "--json", "--detector", "faces.mediapipe"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "face" and report["false_alarm_images"] == [] and report["recall"] is None
    assert main(["detect", str(folder / "blank.png"), str(folder / "gone.png"), "--json", "--kinds", "face"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"file": str(folder / "blank.png"), "width": 300, "height": 200, "regions": []}
    assert lines[1]["file"] == str(folder / "gone.png") and "error" in lines[1]


def test_cli_rejects_unknown_kind_and_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "x.png"), "--kinds", "faces"]) == 2
    assert main(["eval", str(tmp_path), "--detector", "faces.nope"]) == 2
    assert main(["eval", str(tmp_path)]) == 2  # no labels there
    assert "config_error" in capsys.readouterr().err
