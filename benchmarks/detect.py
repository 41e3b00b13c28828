"""Detection benchmark: accuracy on ../shared/devdata and speed on a 12-megapixel photo.

Prints per-detector time on a devdata photo upscaled to 4000 x 3000, images
per second and peak memory; then, for the face ensemble and for each of its
members on its own: face recall (a labelled face is found when a region
covers 70% of its box), precision, and the no-face images that raised a
face; the same on the face set turned 90 degrees (sideways photos); text
image recall and false alarms; tattoo figures for whatever tattoo detector
is enabled; and which devdata images the person and sensitive-body detectors
flag (those kinds have no labels yet).

Run on one core, as the speed budget is stated::

    taskset -c 0 .venv/bin/python benchmarks/detect.py

Times on a shared machine are noisy; the accuracy figures are exact.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from deid.config import DetectorSettings, load_config
from deid.detect import DETECTORS, Detector, build_detectors, detect_regions, make_detection_copy
from deid.detect.geometry import unrotate_box
from deid.evaluate import EvaluationReport, evaluate_folder
from deid.io import load_image
from deid.types import Box, RegionKind

REPO = Path(__file__).resolve().parents[1]
DEVDATA = Path(os.environ.get("DEID_DEVDATA", REPO.parent / "shared" / "devdata"))
REPEATS = 5

# (label, registry name, options): the ensemble, each member alone, and mediapipe at its plain defaults.
FACE_RUNS: list[tuple[str, str, dict[str, bool | int | float | str]]] = [
    ("ensemble (faces.ensemble)", "faces.ensemble", {}),
    ("mediapipe, plain (short+full, upright, no tiles)", "faces.mediapipe", {"rotations": False, "tile_grid": 0}),
    ("mediapipe member (tiles + rotations)", "faces.mediapipe", {}),
    ("centerface member", "faces.centerface", {}),
    ("pose-landmark heads member (low score)", "faces.landmarks", {}),
    ("ensemble without centerface", "faces.ensemble", {"centerface": False}),
    ("ensemble without mediapipe", "faces.ensemble", {"mediapipe": False}),
]


def percent(value: float | None) -> str:
    """``12.3%``, or ``n/a``."""
    return "n/a" if value is None else f"{value:6.1%}"


def line(label: str, report: EvaluationReport) -> str:
    """One summary line of a report."""
    negatives = sum(not image.label.positive for image in report.images)
    return (
        f"  {label:<52} recall {percent(report.recall)}  precision {percent(report.precision)}  "
        f"false-alarm images {len(report.false_alarm_images)}/{negatives} {list(report.false_alarm_images)}  "
        f"{report.seconds_per_image:.3f} s/img"
    )


def rotated_face_folder(source: Path, target: Path) -> None:
    """Write the face set turned 90 degrees clockwise (a sideways phone photo) with its labels turned too."""
    labels = json.loads((source / "labels_faces.json").read_text())
    turned_labels: dict[str, list[list[int]]] = {}
    settings = load_config().input
    for name, boxes in labels.items():
        pixels = load_image(source / name, settings).pixels
        turned = np.ascontiguousarray(np.rot90(pixels, 3))
        stem = Path(name).stem + ".png"
        Image.fromarray(turned).save(target / stem)
        # The original is the turned image turned once more (counter-clockwise): map boxes that way.
        turned_labels[stem] = [unrotate_box(Box.from_xywh(*box), 1, turned.shape).to_xywh() for box in boxes]
    (target / "labels_faces.json").write_text(json.dumps(turned_labels))


def accuracy() -> None:
    """Print face, text and tattoo figures on devdata."""
    config = load_config()
    side = config.detection.max_side_px
    faces = DEVDATA / "faces"
    print(f"faces: {faces} (detection copy {side} px; a face is found at 70% coverage)")
    with tempfile.TemporaryDirectory() as scratch:
        turned = Path(scratch)
        rotated_face_folder(faces, turned)
        for label, name, options in FACE_RUNS:
            detector = DETECTORS[name](DetectorSettings(options=options))
            print(line(label, evaluate_folder(faces, [detector], kind=RegionKind.FACE, max_side_px=side)))
            if name != "faces.landmarks":
                rotated = evaluate_folder(turned, [detector], kind=RegionKind.FACE, max_side_px=side)
                print(line("    same, photos turned 90°", rotated))
    ensemble = DETECTORS["faces.ensemble"](DetectorSettings())
    report = evaluate_folder(faces, [ensemble], kind=RegionKind.FACE, max_side_px=side)
    review = config.policy.rule_for(RegionKind.FACE)
    sure = evaluate_folder(faces, [ensemble], kind=RegionKind.FACE, max_side_px=side, min_score=review.min_score)
    print(line(f"ensemble, regions >= min_score {review.min_score} only", sure))
    print(f"  ensemble misses: {report.to_json()['misses']}")

    text = DEVDATA / "text"
    reader = DETECTORS["text.rapidocr"](config.detection.detectors.get("text.rapidocr", DetectorSettings()))
    text_rule = config.policy.rule_for(RegionKind.TEXT)
    print(f"text: {text} (image level; regions >= review_score {text_rule.review_score})")
    report = evaluate_folder(text, [reader], kind=RegionKind.TEXT, max_side_px=side, min_score=text_rule.review_score)
    print(line("text.rapidocr", report))
    print(f"  missed images: {list(report.missed_images)}")
    redact = evaluate_folder(text, [reader], kind=RegionKind.TEXT, max_side_px=side, min_score=text_rule.min_score)
    print(line(f"text.rapidocr, regions >= min_score {text_rule.min_score} (redacted)", redact))

    tattoo_detectors = [d for d in build_detectors(config) if RegionKind.TATTOO in d.kinds]
    if tattoo_detectors and (DEVDATA / "tattoos" / "labels_tattoos.json").is_file():
        report = evaluate_folder(DEVDATA / "tattoos", tattoo_detectors, kind=RegionKind.TATTOO, max_side_px=side)
        names = "+".join(d.name for d in tattoo_detectors)
        print(f"tattoos: {DEVDATA / 'tattoos'}")
        print(line(f"{names} (box recall; image recall {percent(report.image_recall)})", report))


def unlabelled_flags() -> None:
    """Print which devdata images the person and sensitive-body detectors flag (no labels exist for these kinds)."""
    config = load_config()
    settings = config.input
    for name in ("people.mediapipe", "body.nudenet"):
        detector = DETECTORS[name](config.detection.detectors.get(name, DetectorSettings()))
        for folder in ("faces", "tattoos"):
            files = sorted(p for p in (DEVDATA / folder).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            flagged = []
            for file in files:
                pixels = load_image(file, settings).pixels
                regions = detect_regions(pixels, [detector], max_side_px=config.detection.max_side_px)
                if regions:
                    best = max(regions, key=lambda region: region.score)
                    flagged.append(f"{file.name} ({best.score:.2f} {best.note})")
            print(f"  {name} on devdata/{folder}: {len(flagged)}/{len(files)} flagged")
            for entry in flagged:
                print(f"      {entry}")


def speed() -> None:
    """Print per-detector time on a 12-megapixel photo, images per second and peak memory."""
    config = load_config()
    side = config.detection.max_side_px
    photo = load_image(DEVDATA / "faces" / "deepface_couple.jpg", config.input).pixels
    photo = np.ascontiguousarray(cv2.resize(photo, (4000, 3000), interpolation=cv2.INTER_CUBIC))
    detectors: list[Detector] = build_detectors(config)
    print(f"speed: 4000 x 3000 photo, detection copy {side} px, median of {REPEATS} after a warm-up")
    copy_times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        copy, _ = make_detection_copy(photo, max_side_px=side)
        copy_times.append(time.perf_counter() - start)
    print(f"  {'make_detection_copy (resize)':<40} {statistics.median(copy_times):.3f} s")
    total = 0.0
    for detector in detectors:
        detector.detect(copy)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            detector.detect(copy)
            times.append(time.perf_counter() - start)
        total += statistics.median(times)
        print(f"  {detector.name:<40} {statistics.median(times):.3f} s")
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        detect_regions(photo, detectors, max_side_px=side)
        runs.append(time.perf_counter() - start)
    whole = statistics.median(runs)
    print(f"  {'sum of detectors':<40} {total:.3f} s")
    print(f"  {'detect_regions, all detectors':<40} {whole:.3f} s  ({1 / whole:.2f} images/s)")
    print(f"  peak memory with every enabled detector loaded: {peak_rss_mb():.0f} MB (process max RSS)")
    print(f"  CPUs allowed: {len(os.sched_getaffinity(0))}")


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    """Run both parts; returns 1 when devdata is missing."""
    if not DEVDATA.is_dir():
        print(f"devdata not found at {DEVDATA} (set DEID_DEVDATA)", file=sys.stderr)
        return 1
    speed()  # first, so its peak memory is the pipeline's, not the many detectors built below
    accuracy()
    print("unlabelled kinds (check the flagged files by eye):")
    unlabelled_flags()
    print(f"peak memory after the accuracy runs (about 20 detectors built): {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
