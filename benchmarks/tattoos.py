"""Tattoo detector: accuracy on devdata, speed and memory on a 12-megapixel photo.

Prints image-level recall on the tattoo images, the false-alarm rate on the
skin-without-tattoo images (wounds, moles, melanoma), box recall for
information, then the time per 12-MP image through
:func:`deid.detect.detect_regions` (detection copy included, decoding not),
images per second and peak memory. Scoring goes through
:func:`deid.evaluate.evaluate_folder`, the same code as ``deid eval``.

Usage::

    .venv/bin/python benchmarks/tattoos.py [--devdata ../shared/devdata] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

from deid.config import load_config
from deid.detect import DETECTORS, Detector, detect_regions
from deid.evaluate import evaluate_folder
from deid.io import load_image
from deid.types import RegionKind, RGBImage

NAME = "tattoos.ink"
TARGET_RECALL = 0.90
TARGET_FALSE_ALARMS = 0.20
SPEED_IMAGE = "bivtatt_64_1.jpg"  # lettering and a fingerprint heart: a typical workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "devdata")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs on the 12-MP image")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    config = load_config()
    detector: Detector = DETECTORS[NAME](config.detection.detectors[NAME])
    max_side_px = config.detection.max_side_px
    rule = config.policy.rule_for(RegionKind.TATTOO)
    folder = args.devdata / "tattoos"

    report = evaluate_folder(
        folder, [detector], kind=RegionKind.TATTOO, max_side_px=max_side_px, min_score=rule.review_score
    )

    photo = load_image(folder / SPEED_IMAGE, config.input).pixels
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

    figures = {
        "detector": f"{detector.name}@{detector.version}",
        "images": len(report.images),
        "image_recall": report.image_recall,
        "false_alarm_rate": report.false_alarm_rate,
        "box_recall": report.box_recall,
        "missed_images": list(report.missed_images),
        "false_alarm_images": list(report.false_alarm_images),
        "devdata_seconds_per_image": round(report.seconds_per_image, 4),
        "seconds_per_12mp_image": round(per_image, 4),
        "images_per_second": round(1 / per_image, 2),
        "peak_traced_mb_per_12mp_image": round(traced_peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets_met": bool(
            (report.image_recall or 0) >= TARGET_RECALL and (report.false_alarm_rate or 0) <= TARGET_FALSE_ALARMS
        ),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    missed, alarms = figures["missed_images"], figures["false_alarm_images"]
    print(f"{figures['detector']} on {folder} ({figures['images']} images, max_side_px={max_side_px})")
    print(f"  image recall      {report.image_recall:.3f}  (target >= {TARGET_RECALL})  missed: {missed}")
    print(f"  false-alarm rate  {report.false_alarm_rate:.3f}  (target <= {TARGET_FALSE_ALARMS})  on: {alarms}")
    print(
        f"  box recall        {report.box_recall:.3f}  (boxes covered >= {report.min_coverage:.0%}; information only)"
    )
    print(f"  12-MP image       {per_image * 1000:.0f} ms  (median of {args.repeats}, detect_regions incl. copy)")
    print(f"  images/s          {figures['images_per_second']}")
    print(f"  peak memory       {figures['peak_traced_mb_per_12mp_image']} MB traced in one 12-MP call")
    print(f"  process max RSS   {figures['max_rss_mb']} MB")
    print(f"  targets met       {figures['targets_met']}")


if __name__ == "__main__":
    main()
