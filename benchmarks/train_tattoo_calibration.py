"""Fit the tattoo detector's calibration (evidence -> probability) on the devdata tune split.

``tattoos.ink`` scores each stroke group with a product of physical ramps
(*evidence*, see :mod:`deid.detect.tattoos`). This script turns evidence into
a probability that the group is a tattoo: a two-number logistic (Platt) map of
the evidence's logit, fitted by Newton's method (deterministic, no
dependency) on the **tune** half of ``devdata/tattoos`` and ``devdata/skin``.

One sample per photo: its best stroke group (highest evidence, when above 0),
the region the photo's hold decision rests on. Weaker groups are left out on
purpose: most of them are fragments of the same tattoo that the detector
merges into the best group's box, and counting each would weigh a photo by
how fragmented its tattoo is. The sample is a tattoo when at least half of
its box lies in a labelled tattoo box; not one otherwise (in a photo without a
tattoo, or off every labelled box).

It prints the fitted ``calibration_slope`` and ``calibration_offset`` (copy them
into ``[detection.detectors."tattoos.ink".options]`` of ``deid/data/default.toml``
and ``_OPTIONS`` in ``deid/detect/tattoos.py``) and a reliability table for
the tune and the check half. The check half is only reported, never fitted.

Usage::

    .venv/bin/python benchmarks/train_tattoo_calibration.py [--devdata ../shared/devdata]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deid.config import DetectorSettings, load_config
from deid.detect import make_detection_copy
from deid.detect.tattoos import InkTattooDetector
from deid.errors import InputError
from deid.evaluate import devdata_split
from deid.io import load_image
from deid.types import Box, RGBImage

NAME = "tattoos.ink"
DEVDATA = Path(os.environ.get("DEID_DEVDATA", Path(__file__).resolve().parents[2] / "shared" / "devdata"))
BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.01)


@dataclass(frozen=True, slots=True)
class LabelledPhoto:
    """One devdata photo for the tattoo figures."""

    folder: str  # "tattoos" or "skin"
    name: str
    has_tattoo: bool
    boxes: tuple[Box, ...]
    split: str

    @property
    def group(self) -> str:
        """``tattoo``, ``hard negative`` (tattoos/ without one) or ``skin`` (plain skin/)."""
        if self.has_tattoo:
            return "tattoo"
        return "hard negative" if self.folder == "tattoos" else "skin"


def labelled_photos(devdata: Path) -> list[LabelledPhoto]:
    """Every photo of ``devdata/tattoos`` and ``devdata/skin`` with its label and split."""
    tattoos = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text("utf-8"))
    skin = json.loads((devdata / "skin" / "labels_skin.json").read_text("utf-8"))
    photos = [
        LabelledPhoto(
            "tattoos",
            name,
            label["has_tattoo"] == "yes",
            tuple(Box.from_xywh(*box) for box in label["boxes"]),
            devdata_split(name),
        )
        for name, label in sorted(tattoos.items())
    ]
    photos += [LabelledPhoto("skin", name, False, (), devdata_split(name)) for name in sorted(skin)]
    return photos


def load_photo(devdata: Path, photo: LabelledPhoto) -> RGBImage | None:
    """The photo's pixels through :func:`deid.io.load_image`, or ``None`` when deid refuses the file."""
    try:
        return load_image(devdata / photo.folder / photo.name, load_config().input).pixels
    except InputError:
        return None


def inside_labels(box: Box, labels: tuple[Box, ...]) -> float:
    """Share of ``box`` inside the union of ``labels``."""
    if box.is_empty:
        return 0.0
    covered = np.zeros((box.height, box.width), bool)
    for label in labels:
        inner = label.intersection(box)
        if not inner.is_empty:
            covered[inner.top - box.top : inner.bottom - box.top, inner.left - box.left : inner.right - box.left] = True
    return float(covered.mean())


def group_evidence(
    devdata: Path, photos: list[LabelledPhoto], detector: InkTattooDetector, max_side_px: int
) -> tuple[dict[str, list[tuple[float, int]]], list[str]]:
    """Per split, ``(evidence, is_tattoo)`` of each photo's best stroke group; and the files deid refused."""
    samples: dict[str, list[tuple[float, int]]] = {"tune": [], "check": []}
    refused = []
    work_side = int(detector.options["work_side_px"])
    for photo in photos:
        pixels = load_photo(devdata, photo)
        if pixels is None:
            refused.append(photo.name)
            continue
        copy, copy_scale = make_detection_copy(pixels, max_side_px=max_side_px)
        work_scale = max(copy.shape[:2]) / work_side if max(copy.shape[:2]) > work_side else 1.0
        groups = detector.analyse(copy)
        if not groups or groups[0].evidence <= 0.0:
            continue
        best = groups[0]  # analyse() returns groups best first
        share = inside_labels(best.box.scale(work_scale * copy_scale), photo.boxes) if photo.has_tattoo else 0.0
        samples[photo.split].append((best.evidence, int(share >= 0.5)))
    return samples, refused


def logit(evidence: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    clipped = np.clip(evidence, 0.01, 0.99)
    result: npt.NDArray[np.float64] = np.log(clipped / (1.0 - clipped))
    return result


def fit_logistic_line(x: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Slope and offset of ``p = 1 / (1 + exp(-(slope * x + offset)))``, maximum likelihood (Newton)."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    weights = np.zeros(2)
    for _ in range(100):
        probability = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (probability - labels)
        hessian = design.T @ (design * (probability * (1 - probability))[:, None]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(weights[0]), float(weights[1])


def fit_platt(evidence: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Slope and offset of ``p = 1 / (1 + exp(-(slope * logit(evidence) + offset)))``, maximum likelihood."""
    return fit_logistic_line(logit(evidence), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=DEVDATA, help="default: $DEID_DEVDATA or ../shared/devdata")
    args = parser.parse_args()
    config = load_config()
    shipped = dict(config.detection.detectors[NAME].options)
    identity = {
        **shipped,
        "calibration_slope": 1.0,
        "calibration_offset": 0.0,
        "learned_score": False,
        "bright_skin_lightness": 0.0,  # one look per photo, as the shipped pair was fitted
    }
    detector = InkTattooDetector(DetectorSettings(options=identity))
    samples, refused = group_evidence(
        args.devdata, labelled_photos(args.devdata), detector, config.detection.max_side_px
    )
    tune = np.asarray(samples["tune"], float)
    slope, offset = fit_platt(tune[:, 0], tune[:, 1])
    print(f"fitted on the best stroke group of {len(tune)} tune photos ({int(tune[:, 1].sum())} on a tattoo)")
    print(f"calibration_slope = {slope:.3f}")
    print(f"calibration_offset = {offset:.3f}")
    if refused:
        print(f"files deid refused (left out): {', '.join(refused)}")
    fitted = InkTattooDetector(
        DetectorSettings(options={**identity, "calibration_slope": slope, "calibration_offset": offset})
    )
    for split in ("tune", "check"):
        rows = np.asarray(samples[split], float)
        probability = np.array([fitted.probability(value) for value in rows[:, 0]])
        print(f"{split}: probability bin, groups, predicted, observed share of tattoos")
        for low, high in itertools.pairwise(BINS):
            chosen = (probability >= low) & (probability < high)
            if chosen.any():
                print(
                    f"  [{low:.1f}, {min(high, 1.0):.1f})  {int(chosen.sum()):4d}  "
                    f"{probability[chosen].mean():.2f}  {rows[chosen, 1].mean():.2f}"
                )


if __name__ == "__main__":
    main()
