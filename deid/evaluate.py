"""Scoring detectors against a labelled folder (the ``../shared/devdata`` format).

One function, :func:`evaluate_folder`, serves every region kind: faces,
text and tattoos, and any kind labelled the same way later. A folder holds
images and one ``labels_<kind>.json``:

* ``labels_faces.json``: ``{"file": [[x, y, w, h], ...]}`` (``[]``: no face);
* ``labels_text.json``: ``{"file": {"has_text": "yes"|"no", ...}}`` (image level only);
* ``labels_tattoos.json``: ``{"file": {"has_tattoo": "yes"|"no", "boxes": [[x, y, w, h], ...]}}``.

Labels refer to the stored file; images are loaded with
:func:`deid.io.load_image`, which turns them upright. (No devdata file
carries an EXIF rotation today; one that did would need labels on the
upright image.) A labelled box counts as found when one region of the kind
covers at least ``min_coverage`` of it (0.7 by default, the issue's rule).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deid.config import InputSettings, load_config
from deid.detect import Detector, detect_regions
from deid.errors import ConfigError, InputError
from deid.io import load_image
from deid.types import Box, Region, RegionKind

LABEL_FILES: Mapping[RegionKind, tuple[str, str | None]] = {
    RegionKind.FACE: ("labels_faces.json", None),
    RegionKind.TEXT: ("labels_text.json", "has_text"),
    RegionKind.TATTOO: ("labels_tattoos.json", "has_tattoo"),
}
"""Kind to (label file, image-level yes/no key; ``None`` when a list of boxes is the label)."""


SPLITS = ("tune", "check")
"""The two halves of a labelled folder: tune thresholds on one, report the other untouched."""


def devdata_split(file_name: str) -> str:
    """Which half a labelled file belongs to: ``"tune"`` or ``"check"``, fixed by its name alone.

    The split is the parity of the SHA-256 of the bare file name, so it is
    stable across machines, folders and label edits, and every benchmark and
    test draws the same line. Thresholds are chosen on ``tune``; ``check`` is
    only ever reported.

    Examples
    --------
    >>> devdata_split("linz_5.jpg") in SPLITS
    True
    """
    return SPLITS[hashlib.sha256(Path(file_name).name.encode("utf-8")).digest()[0] & 1]


@dataclass(frozen=True, slots=True)
class ImageLabel:
    """What a person marked on one image: does it show the kind, and where."""

    positive: bool
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageResult:
    """How the detectors did on one labelled image."""

    file: str
    label: ImageLabel
    regions: tuple[Region, ...]
    missed: tuple[Box, ...]
    false_regions: int
    seconds: float
    error: str = ""

    @property
    def flagged(self) -> bool:
        """True when at least one region of the kind was found."""
        return bool(self.regions)

    def to_json(self) -> dict[str, Any]:
        """JSON form (boxes as ``[x, y, w, h]``)."""
        return {
            "file": self.file,
            "positive": self.label.positive,
            "labelled_boxes": len(self.label.boxes),
            "regions": len(self.regions),
            "missed": [box.to_xywh() for box in self.missed],
            "false_regions": self.false_regions,
            "seconds": round(self.seconds, 4),
            **({"error": self.error} if self.error else {}),
        }


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Every figure for one kind on one folder.

    ``box_recall`` and ``precision`` are over labelled boxes and returned
    regions when the label has boxes; ``image_recall`` and
    ``false_alarm_rate`` are over images (flagged or not), for every kind.
    """

    kind: RegionKind
    folder: str
    images: tuple[ImageResult, ...]
    min_coverage: float

    @property
    def box_recall(self) -> float | None:
        """Labelled boxes found / labelled boxes (``None`` when no box is labelled)."""
        total = sum(len(image.label.boxes) for image in self.images)
        return _ratio(total - sum(len(image.missed) for image in self.images), total)

    @property
    def image_recall(self) -> float | None:
        """Positive images with a region / positive images."""
        positives = [image for image in self.images if image.label.positive]
        return _ratio(sum(image.flagged for image in positives), len(positives))

    @property
    def recall(self) -> float | None:
        """Box recall where boxes are labelled, image recall otherwise."""
        return self.box_recall if self.box_recall is not None else self.image_recall

    @property
    def precision(self) -> float | None:
        """Regions matching a label / regions (boxes), or flagged positives / flagged images (image level)."""
        if any(image.label.boxes for image in self.images):
            regions = sum(len(image.regions) for image in self.images)
            return _ratio(regions - sum(image.false_regions for image in self.images), regions)
        flagged = [image for image in self.images if image.flagged]
        return _ratio(sum(image.label.positive for image in flagged), len(flagged))

    @property
    def false_alarm_images(self) -> tuple[str, ...]:
        """Negative images on which a region was found anyway."""
        return tuple(image.file for image in self.images if not image.label.positive and image.flagged)

    @property
    def false_alarm_rate(self) -> float | None:
        """False-alarm images / negative images."""
        negatives = sum(not image.label.positive for image in self.images)
        return _ratio(len(self.false_alarm_images), negatives)

    @property
    def missed_images(self) -> tuple[str, ...]:
        """Positive images with no region of the kind at all."""
        return tuple(image.file for image in self.images if image.label.positive and not image.flagged)

    @property
    def seconds_per_image(self) -> float:
        """Mean detection time (detection copy, every detector), excluding decoding."""
        return sum(image.seconds for image in self.images) / max(1, len(self.images))

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``deid eval --json``."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "kind": str(self.kind),
            "folder": self.folder,
            "images": len(self.images),
            "positive_images": sum(image.label.positive for image in self.images),
            "labelled_boxes": sum(len(image.label.boxes) for image in self.images),
            "min_coverage": self.min_coverage,
            "recall": rounded(self.recall),
            "box_recall": rounded(self.box_recall),
            "image_recall": rounded(self.image_recall),
            "precision": rounded(self.precision),
            "false_alarm_rate": rounded(self.false_alarm_rate),
            "false_alarm_images": list(self.false_alarm_images),
            "missed_images": list(self.missed_images),
            "misses": [{"file": image.file, "box": box.to_xywh()} for image in self.images for box in image.missed],
            "seconds_per_image": round(self.seconds_per_image, 4),
            "per_image": [image.to_json() for image in self.images],
        }


def read_labels(folder: str | Path, kind: RegionKind) -> dict[str, ImageLabel]:
    """Read ``labels_<kind>.json`` from ``folder``.

    Raises
    ------
    ConfigError
        If the kind has no label format, or the file is missing or malformed.
    """
    if kind not in LABEL_FILES:
        raise ConfigError(f"no label format for kind {kind}", hint=f"use one of {', '.join(map(str, LABEL_FILES))}")
    name, flag = LABEL_FILES[kind]
    path = Path(folder) / name
    try:
        raw = json.loads(path.read_text("utf-8"))
        labels: dict[str, ImageLabel] = {}
        for file, entry in raw.items():
            if flag is None:
                boxes = tuple(Box.from_xywh(*box) for box in entry)
                labels[file] = ImageLabel(bool(boxes), boxes)
            else:
                boxes = tuple(Box.from_xywh(*box) for box in entry.get("boxes", []))
                if entry[flag] not in ("yes", "no"):
                    raise ValueError(f"{file}: {flag} must be yes or no")
                labels[file] = ImageLabel(entry[flag] == "yes", boxes)
    except OSError as error:
        raise ConfigError(
            f"cannot read labels: {error.strerror}", path=path, hint=f"a labelled folder holds {name}"
        ) from error
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"malformed labels: {error!r}", path=path, hint="see ../shared/devdata/README.md") from error
    return labels


def score_image(
    file: str,
    label: ImageLabel,
    regions: Sequence[Region],
    *,
    min_coverage: float = 0.7,
    seconds: float = 0.0,
) -> ImageResult:
    """Match one image's regions (already of the right kind) against its label.

    A labelled box is found when a region covers ``min_coverage`` of it. A
    region is false when it matches no labelled box: it neither covers
    ``min_coverage`` of one, nor lies at least half inside one, nor has an
    IoU of 0.3 with one. On an image labelled only yes/no, every region of a
    negative image is false.
    """
    missed = tuple(box for box in label.boxes if not any(r.box.coverage_of(box) >= min_coverage for r in regions))
    if label.boxes:
        false_regions = sum(
            not any(
                r.box.coverage_of(box) >= min_coverage or box.coverage_of(r.box) >= 0.5 or r.box.iou(box) >= 0.3
                for box in label.boxes
            )
            for r in regions
        )
    else:
        false_regions = 0 if label.positive else len(regions)
    return ImageResult(file, label, tuple(regions), missed, false_regions, seconds)


def evaluate_folder(
    folder: str | Path,
    detectors: Sequence[Detector],
    *,
    kind: RegionKind,
    max_side_px: int,
    min_coverage: float = 0.7,
    min_score: float = 0.0,
    input_settings: InputSettings | None = None,
) -> EvaluationReport:
    """Run ``detectors`` over every labelled image in ``folder`` and score regions of ``kind``.

    Parameters
    ----------
    folder
        A folder with images and ``labels_<kind>.json``.
    detectors
        Detectors to run together, as the pipeline would (through
        :func:`deid.detect.detect_regions` on a detection copy).
    kind
        The region kind scored; other kinds are ignored.
    max_side_px
        Long side of the detection copy (``config.detection.max_side_px``).
    min_coverage
        Fraction of a labelled box a region must cover to find it.
    min_score
        Regions scoring below this are ignored (use the policy's
        ``review_score`` to score "found or held for review").
    input_settings
        Loader limits; the shipped defaults when ``None``.

    Returns
    -------
    EvaluationReport
        Recall, precision, false alarms, per-image misses and timing. An
        image that cannot be loaded counts as missed, with its error.

    Raises
    ------
    ConfigError
        If the labels are missing or malformed.
    DetectorError
        If a detector fails on an image.

    Examples
    --------
    >>> from deid.detect.faces import FaceEnsembleDetector  # doctest: +SKIP
    >>> report = evaluate_folder("../shared/devdata/faces", [FaceEnsembleDetector()],
    ...                          kind=RegionKind.FACE, max_side_px=1280)  # doctest: +SKIP
    >>> report.recall  # doctest: +SKIP
    1.0
    """
    settings = input_settings or load_config().input
    labels = read_labels(folder, kind)
    results: list[ImageResult] = []
    for file, label in sorted(labels.items()):
        try:
            image = load_image(Path(folder) / file, settings).pixels
        except InputError as error:
            results.append(ImageResult(file, label, (), label.boxes, 0, 0.0, error=error.reason))
            continue
        start = time.perf_counter()
        regions = detect_regions(image, detectors, max_side_px=max_side_px, kinds=frozenset({kind}))
        seconds = time.perf_counter() - start
        kept = [region for region in regions if region.score >= min_score]
        results.append(score_image(file, label, kept, min_coverage=min_coverage, seconds=seconds))
    return EvaluationReport(kind, str(folder), tuple(results), min_coverage)


__all__ = [
    "LABEL_FILES",
    "EvaluationReport",
    "ImageLabel",
    "ImageResult",
    "evaluate_folder",
    "read_labels",
    "score_image",
]
