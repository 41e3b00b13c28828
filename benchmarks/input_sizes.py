"""Detector input sizes against recall: the table the default sizes are chosen from.

Every network detector sees a shrunk copy of the detection copy; a smaller
input is faster and misses smaller things. For each candidate size this
prints, on devdata's tune and check halves (:func:`deid.evaluate.devdata_split`)
separately:

* ``faces.ensemble`` with CenterFace's upright input at each long side (and its
  turned passes at each size): face box recall, a labelled face counting as
  found when face regions at or above the face rule's ``review_score`` cover
  >= 70% of it, on the photos as they are and turned 90 degrees; recall at
  the redaction threshold (``min_score``); CPU seconds of the CenterFace
  member per image;
* ``text.rapidocr`` with the text detector's input at each long side: image
  recall on the text photos (a text region at or above the text rule's
  ``review_score``), false-alarm images among the plain skin photos, CPU
  seconds per image.

Images are the detection copies ``deid`` makes (``detection.max_side_px``).
The default configuration's sizes are marked. Usage::

    .venv/bin/python benchmarks/input_sizes.py [--devdata ../shared/devdata] [--skin 40]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from review_load import default_devdata

from deid.config import Config, DetectorSettings, load_config
from deid.detect import Detector, make_detection_copy
from deid.detect.faces import FaceEnsembleDetector
from deid.detect.geometry import rotate_image, unrotate_box
from deid.detect.text import RapidOcrTextDetector
from deid.errors import DeidError
from deid.evaluate import devdata_split
from deid.io import load_image
from deid.types import Box, Region, RegionKind, RGBImage

FACE_SIZES = ((640, 320), (800, 384), (960, 480), (1280, 640))
TEXT_SIZES = (640, 736, 800, 960, 1280)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class Photo:
    name: str
    split: str
    image: RGBImage
    scale: float = 1.0  # full-resolution pixels per detection-copy pixel
    faces: tuple[Box, ...] = ()
    has_text: bool = False


def _load(folder: Path, config: Config, limit: int | None = None) -> list[Photo]:
    photos = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)[:limit]:
        try:
            pixels = load_image(path, config.input).pixels
        except DeidError:
            continue
        copy, scale = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
        photos.append(Photo(path.name, devdata_split(path.name), copy, scale))
    return photos


def load_faces(devdata: Path, config: Config) -> list[Photo]:
    labels = json.loads((devdata / "faces" / "labels_faces.json").read_text())
    photos = []
    for photo in _load(devdata / "faces", config):
        boxes = tuple(Box.from_xywh(*(v / photo.scale for v in box)) for box in labels.get(photo.name, []))
        photos.append(Photo(photo.name, photo.split, photo.image, photo.scale, faces=boxes))
    return photos


def load_text(devdata: Path, config: Config, skin: int) -> list[Photo]:
    labels = json.loads((devdata / "text" / "labels_text.json").read_text())
    photos = [
        Photo(p.name, p.split, p.image, p.scale, has_text=labels.get(p.name, {}).get("has_text") == "yes")
        for p in _load(devdata / "text", config)
    ]
    return photos + _load(devdata / "skin", config, skin)


def _timed(detector: Detector, image: RGBImage) -> tuple[list[Region], float]:
    started = time.process_time()
    regions = detector.detect(image)
    return regions, time.process_time() - started


def face_recall(
    detector: FaceEnsembleDetector, photos: Sequence[Photo], threshold: float, turned: bool
) -> tuple[int, int, float]:
    """Faces found, faces labelled, CenterFace CPU seconds per image."""
    found = total = 0
    seconds = 0.0
    centerface = [m for m in detector.members if m.name == "faces.centerface"]
    for photo in photos:
        image = np.ascontiguousarray(rotate_image(photo.image, 1)) if turned else photo.image
        regions = detector.detect(image)
        if centerface:
            _, spent = _timed(centerface[0], image)
            seconds += spent
        boxes = [r.box for r in regions if r.kind is RegionKind.FACE and r.score >= threshold]
        if turned:  # labels are upright: map the boxes back
            boxes = [unrotate_box(box, 1, photo.image.shape) for box in boxes]
        total += len(photo.faces)
        found += sum(any(box.coverage_of(face) >= 0.7 for box in boxes) for face in photo.faces)
    return found, total, seconds / max(1, len(photos))


def text_recall(
    detector: RapidOcrTextDetector, photos: Sequence[Photo], threshold: float
) -> tuple[int, int, int, int, float]:
    """Text photos found, text photos, skin photos flagged, skin photos, CPU seconds per image."""
    found = total = false = plain = 0
    seconds = 0.0
    for photo in photos:
        regions, spent = _timed(detector, photo.image)
        seconds += spent
        hit = any(r.score >= threshold for r in regions)
        if photo.has_text:
            total += 1
            found += hit
        else:
            plain += 1
            false += hit
    return found, total, false, plain, seconds / max(1, len(photos))


def _by_split(photos: Sequence[Photo]) -> dict[str, list[Photo]]:
    return {split: [p for p in photos if p.split == split] for split in ("tune", "check")}


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f} ({a}/{b})" if b else "n/a"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=default_devdata())
    parser.add_argument("--skin", type=int, default=40, help="plain skin photos for text false alarms")
    args = parser.parse_args(argv)
    if not args.devdata.is_dir():
        raise SystemExit(f"devdata not found at {args.devdata}")
    config = load_config(None)
    face_rule, text_rule = config.policy.rules["face"], config.policy.rules["text"]
    face_options = config.detection.detectors["faces.ensemble"].options
    default_face = (
        face_options.get("centerface_max_side_px", 960),
        face_options.get("centerface_rotated_max_side_px", 480),
    )
    default_text = config.detection.detectors["text.rapidocr"].options.get("max_side_px", 960)

    faces = _by_split(load_faces(args.devdata, config))
    print(f"faces.ensemble, CenterFace input long side (upright / turned); found at >= {face_rule.review_score}")
    print("  upright/turned  split  recall          redacted (>= min)  turned 90 deg     CenterFace CPU s/img")
    for upright, turned in FACE_SIZES:
        settings = DetectorSettings(
            options={**face_options, "centerface_max_side_px": upright, "centerface_rotated_max_side_px": turned},
            calibration=config.detection.detectors["faces.ensemble"].calibration,
        )
        detector = FaceEnsembleDetector(settings)
        mark = "  <- default" if (upright, turned) == tuple(default_face) else ""
        for split, photos in faces.items():
            found, total, seconds = face_recall(detector, photos, face_rule.review_score, turned=False)
            redacted, _, _ = face_recall(detector, photos, face_rule.min_score, turned=False)
            sideways, _, _ = face_recall(detector, photos, face_rule.review_score, turned=True)
            print(
                f"  {upright:>4}/{turned:<4}       {split:<6} {_ratio(found, total):<15} {_ratio(redacted, total):<18} "
                f"{_ratio(sideways, total):<17} {seconds:.3f}{mark}"
            )

    texts = _by_split(load_text(args.devdata, config, args.skin))
    text_settings = config.detection.detectors["text.rapidocr"]
    print(f"\ntext.rapidocr, detector input long side; found at >= {text_rule.review_score}")
    print("  side  split  text image recall  skin false alarms  CPU s/img")
    for side in TEXT_SIZES:
        options = {**text_settings.options, "max_side_px": side}
        detector_text = RapidOcrTextDetector(DetectorSettings(options=options, calibration=text_settings.calibration))
        mark = "  <- default" if side == default_text else ""
        for split, photos in texts.items():
            found, total, false, plain, seconds = text_recall(detector_text, photos, text_rule.review_score)
            print(f"  {side:>4}  {split:<6} {_ratio(found, total):<18} {_ratio(false, plain):<18} {seconds:.3f}{mark}")


if __name__ == "__main__":
    main()
