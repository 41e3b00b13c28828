"""Tattoo detector: recall and false alarms per devdata split, and speed on a 12-megapixel photo.

For each half of devdata (``tune``, on which the detector's options and
calibration were chosen, and ``check``, which is only reported) it prints:

* image recall on ``tattoos/`` photos with a tattoo (target >= 0.95);
* false alarms on the hard negatives in ``tattoos/`` (moles, naevi, bruises,
  scars, veins, vitiligo, marker ink, dermoscopy; target <= 0.10);
* false alarms on the plain skin photos of ``skin/`` (target: rare, 0-2).

A photo counts as flagged when a tattoo region scores at or above the
policy's tattoo ``review_score`` (what the pipeline would hold), through
:func:`deid.detect.detect_regions` on the detection copy, as the pipeline
runs it. Then the time per 12-MP image (detection copy included, decoding
not), images per second and peak memory.

With ``--perturb`` it also prints recall and false alarms per split with every
photo taken again as a phone might have taken it (:data:`PERTURBATIONS`:
harder JPEG, a smaller file, under- and over-exposure, a warm cast, slight
blur). Thresholds were chosen on the photos as they are, so this table shows
how far the operating point holds on photos unlike devdata's.

Usage::

    .venv/bin/python benchmarks/tattoos.py [--devdata ../shared/devdata] [--repeats 5] [--json]
        [--scorer config|rules|learned] [--perturb]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from train_tattoo_calibration import DEVDATA, LabelledPhoto, labelled_photos, load_photo

from deid.config import load_config
from deid.detect import DETECTORS, Detector, detect_regions
from deid.match.fingerprint import thumbnail
from deid.types import RegionKind, RGBImage

NAME = "tattoos.ink"
TARGET_RECALL = 0.95
TARGET_HARD_NEGATIVES = 0.10
TARGET_SKIN = 0.03  # "ideally 0-2" of 77 plain skin photos
SPEED_IMAGE = "bivtatt_64_1.jpg"  # lettering and a fingerprint heart: a typical workload
GROUPS = ("tattoo", "hard negative", "skin")


def _jpeg(image: RGBImage, quality: int) -> RGBImage:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _gains(image: RGBImage, gains: tuple[float, float, float]) -> RGBImage:
    return np.clip(image.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


def _gamma(image: RGBImage, gamma: float) -> RGBImage:
    return np.asarray(255.0 * (image / 255.0) ** gamma, np.uint8)


PERTURBATIONS = {
    "as is": lambda image: image,
    "JPEG q40": lambda image: _jpeg(image, 40),
    "long side 360 px": lambda image: thumbnail(image, 360),
    "exposure x0.6": lambda image: _gains(image, (0.6, 0.6, 0.6)),
    "gamma 0.6 (bright)": lambda image: _gamma(image, 0.6),
    "gamma 1.6 (dark)": lambda image: _gamma(image, 1.6),
    "warm cast": lambda image: _gains(image, (1.15, 1.0, 0.85)),
    "blue cast": lambda image: _gains(image, (0.85, 1.0, 1.2)),
    "blur 1.2 px": lambda image: np.asarray(cv2.GaussianBlur(image, (0, 0), 1.2), np.uint8),
}
"""Each photo as a phone might have taken it otherwise; ``as is`` is the table above."""


def perturbed_rates(
    photos: list[tuple[LabelledPhoto, RGBImage]], detector: Detector, *, max_side_px: int, review: float
) -> dict[str, dict[str, dict[str, tuple[int, int]]]]:
    """Per perturbation, split and group: (photos flagged, photos)."""
    table: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}
    for name, change in PERTURBATIONS.items():
        for photo, pixels in photos:
            regions = detect_regions(change(pixels), [detector], max_side_px=max_side_px)
            found = any(region.kind is RegionKind.TATTOO and region.score >= review for region in regions)
            flagged, count = table.setdefault(name, {}).setdefault(photo.split, {}).get(photo.group, (0, 0))
            table[name][photo.split][photo.group] = (flagged + found, count + 1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=DEVDATA, help="default: $DEID_DEVDATA or ../shared/devdata")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs on the 12-MP image")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--scorer",
        choices=("config", "rules", "learned"),
        default="config",
        help="group score: as configured, the ramp product, or deid/data/tattoo_model.json",
    )
    parser.add_argument("--split", choices=("both", "tune", "check"), default="both", help="devdata half to read")
    parser.add_argument("--perturb", action="store_true", help="also each photo JPEG'd, shrunk, exposed, cast, blurred")
    args = parser.parse_args()
    splits_read = ("tune", "check") if args.split == "both" else (args.split,)

    config = load_config()
    settings = config.detection.detectors[NAME]
    if args.scorer != "config":
        options = {**settings.options, "learned_score": args.scorer == "learned"}
        settings = dataclasses.replace(settings, options=options)
    detector: Detector = DETECTORS[NAME](settings)
    max_side_px = config.detection.max_side_px
    review = config.policy.rule_for(RegionKind.TATTOO).review_score

    flagged: dict[tuple[str, str], list[tuple[LabelledPhoto, bool]]] = {}
    refused: list[str] = []
    seconds_devdata = []
    readable: list[tuple[LabelledPhoto, RGBImage]] = []
    for photo in [photo for photo in labelled_photos(args.devdata) if photo.split in splits_read]:
        pixels = load_photo(args.devdata, photo)
        if pixels is None:
            refused.append(photo.name)  # a refused photo is held by the pipeline: counted as flagged
            found = True
        else:
            readable.append((photo, pixels))
            start = time.perf_counter()
            regions = detect_regions(pixels, [detector], max_side_px=max_side_px)
            seconds_devdata.append(time.perf_counter() - start)
            found = any(region.kind is RegionKind.TATTOO and region.score >= review for region in regions)
        flagged.setdefault((photo.split, photo.group), []).append((photo, found))

    splits = {}
    for split in splits_read:
        figures = {}
        for group in GROUPS:
            rows = flagged.get((split, group), [])
            hits = [photo.name for photo, found in rows if found]
            misses = [photo.name for photo, found in rows if not found]
            figures[group] = {
                "images": len(rows),
                "flagged": len(hits),
                "rate": round(len(hits) / len(rows), 3) if rows else None,
                "names": misses if group == "tattoo" else hits,
            }
        splits[split] = figures

    perturbed = perturbed_rates(readable, detector, max_side_px=max_side_px, review=review) if args.perturb else {}

    photo = load_photo(args.devdata, LabelledPhoto("tattoos", SPEED_IMAGE, True, (), "tune"))
    assert photo is not None, SPEED_IMAGE
    portrait = photo.shape[0] > photo.shape[1]
    size = (3000, 4000) if portrait else (4000, 3000)
    large: RGBImage = np.asarray(cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC), np.uint8)
    detect_regions(large, [detector], max_side_px=max_side_px)  # warm-up
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        detect_regions(large, [detector], max_side_px=max_side_px)
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    detect_regions(large, [detector], max_side_px=max_side_px)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_image = statistics.median(seconds)

    result = {
        "detector": f"{detector.name}@{detector.version}",
        "review_score": review,
        "splits": splits,
        "refused_files": refused,
        "devdata_seconds_per_image": round(statistics.mean(seconds_devdata), 4),
        "seconds_per_12mp_image": round(per_image, 4),
        "images_per_second": round(1 / per_image, 2),
        "peak_traced_mb_per_12mp_image": round(traced_peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "perturbed": perturbed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['detector']} on {args.devdata} (flagged: a tattoo region >= review_score {review})")
    for split, figures in splits.items():
        tattoo, hard, skin = (figures[group] for group in GROUPS)
        print(f"[{split}]")
        print(
            f"  image recall             {tattoo['rate']:.3f}  {tattoo['flagged']}/{tattoo['images']}"
            f"  (target >= {TARGET_RECALL})  missed: {tattoo['names']}"
        )
        print(
            f"  false alarms, hard neg.  {hard['rate']:.3f}  {hard['flagged']}/{hard['images']}"
            f"  (target <= {TARGET_HARD_NEGATIVES})  on: {hard['names']}"
        )
        print(
            f"  false alarms, skin/      {skin['rate']:.3f}  {skin['flagged']}/{skin['images']}"
            f"  (target <= {TARGET_SKIN})  on: {skin['names']}"
        )
    if refused:
        print(f"  refused by deid.io (counted as flagged): {refused}")
    print(f"  devdata photo          {result['devdata_seconds_per_image'] * 1000:.0f} ms mean (detect_regions)")
    print(f"  12-MP image            {per_image * 1000:.0f} ms  (median of {args.repeats}, detect_regions incl. copy)")
    print(f"  images/s               {result['images_per_second']}")
    print(f"  peak memory            {result['peak_traced_mb_per_12mp_image']} MB traced in one 12-MP call")
    print(f"  process max RSS        {result['max_rss_mb']} MB")
    if perturbed:
        print("\nperturbed photos (flagged / photos): recall on tattoos, false alarms on hard negatives and skin/")
        for split in splits_read:
            print(f"[{split}]  {'':<20}  {'recall':>9}  {'hard neg.':>9}  {'skin/':>9}")
            for name, by_split in perturbed.items():
                cells = [by_split.get(split, {}).get(group, (0, 0)) for group in GROUPS]
                print(f"  {name:<26}  " + "  ".join(f"{f'{hit}/{count}':>9}" for hit, count in cells))


if __name__ == "__main__":
    main()
