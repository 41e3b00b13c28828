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

Usage::

    .venv/bin/python benchmarks/tattoos.py [--devdata ../shared/devdata] [--repeats 5] [--json]
        [--scorer config|rules|learned]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from train_tattoo_calibration import DEVDATA, LabelledPhoto, labelled_photos, load_photo

from deid.config import load_config
from deid.detect import DETECTORS, Detector, detect_regions
from deid.types import RegionKind, RGBImage

NAME = "tattoos.ink"
TARGET_RECALL = 0.95
TARGET_HARD_NEGATIVES = 0.10
TARGET_SKIN = 0.03  # "ideally 0-2" of 77 plain skin photos
SPEED_IMAGE = "bivtatt_64_1.jpg"  # lettering and a fingerprint heart: a typical workload
GROUPS = ("tattoo", "hard negative", "skin")


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
    for photo in [photo for photo in labelled_photos(args.devdata) if photo.split in splits_read]:
        pixels = load_photo(args.devdata, photo)
        if pixels is None:
            refused.append(photo.name)  # a refused photo is held by the pipeline: counted as flagged
            found = True
        else:
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


if __name__ == "__main__":
    main()
