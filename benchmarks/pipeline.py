"""Whole-pipeline speed on 12-megapixel phone-size JPEGs, against the decode+encode floor.

DESIGN.md's budget: decoding and re-encoding a 12 MP JPEG alone costs ~70-75 ms on this
machine kind; the target is the whole pipeline at half the floor's throughput or better.
This script prints, per image and on average: the floor (decode + JPEG encode), each stage
of :func:`deid.pipeline.process_image` (read+inspect, decode, detect, policy+render, encode,
verify), the end-to-end time, images per second and peak memory.

Usage: ``.venv/bin/python benchmarks/pipeline.py [--images N] [--format png|jpeg]``
(run under ``taskset -c 0`` for one-core figures).
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deid.config import load_config
from deid.crop import estimate_skin_mask
from deid.detect import build_detectors, detect_regions
from deid.ingest import ImageTask
from deid.io import load_image, read_bytes
from deid.metadata import encode_clean, inspect_metadata
from deid.pipeline import process_image
from deid.policy import apply_policy
from deid.redact import render_decision
from deid.verify_bytes import verify_clean
from deid.workspace import Workspace

SOURCES = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea, "rocket": data.rocket}


def make_photos(folder: Path, count: int) -> list[Path]:
    """12 MP (4000 x 3000) phone-like JPEGs at quality 90 from scikit-image photos."""
    paths = []
    for index, (name, loader) in enumerate(list(SOURCES.items()) * (count // len(SOURCES) + 1)):
        if index >= count:
            break
        image = Image.fromarray(loader()).convert("RGB").resize((4000, 3000), Image.BICUBIC)
        path = folder / f"{index:02d}_{name}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--format", choices=["png", "jpeg"], default=None, help="output format (default: config)")
    args = parser.parse_args()
    config = load_config()
    if args.format:
        from dataclasses import replace

        config = replace(config, output=replace(config.output, format=args.format))
    detectors, load_seconds = timed(build_detectors, config)
    print(f"detectors: {', '.join(d.name for d in detectors)} (built in {load_seconds:.1f} s)")
    print(f"output format: {config.output.format}")
    stages: dict[str, list[float]] = {
        k: [] for k in ("floor", "inspect", "decode", "detect", "policy+render", "encode", "verify", "end_to_end")
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = make_photos(root, args.images)
        workspace = Workspace(root / "ws").create()
        for path in photos:
            raw = path.read_bytes()
            # Floor: decode + re-encode as JPEG, nothing else.
            start = time.perf_counter()
            pixels = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            Image.fromarray(pixels).save(io.BytesIO(), "JPEG", quality=90)
            stages["floor"].append(time.perf_counter() - start)

            raw, t_read = timed(read_bytes, path, config.input)
            _, t_inspect = timed(inspect_metadata, path, data=raw)
            stages["inspect"].append(t_read + t_inspect)
            loaded, t = timed(load_image, path, config.input, data=raw)
            stages["decode"].append(t)
            found, t = timed(detect_regions, loaded.pixels, detectors, max_side_px=config.detection.max_side_px)
            stages["detect"].append(t)
            start = time.perf_counter()
            decision = apply_policy(
                found, config.policy, image_shape=loaded.pixels.shape, skin_mask=estimate_skin_mask(loaded.pixels)
            )
            rendered = render_decision(loaded.pixels, decision, config.policy)
            stages["policy+render"].append(time.perf_counter() - start)
            encoded, t = timed(encode_clean, rendered, config.output)
            stages["encode"].append(t)
            _, t = timed(verify_clean, encoded, decode=False)
            stages["verify"].append(t)
            task = ImageTask(path.stem, "bench", path.name, str(path))
            _, t = timed(process_image, task, config, workspace, detectors=detectors)
            stages["end_to_end"].append(t)
            print(f"  {path.name}: end-to-end {t * 1000:.0f} ms, {len(found)} region(s), decision {decision.action}")
    print("\nper 12 MP image (mean, ms):")
    for stage, values in stages.items():
        print(f"  {stage:14s} {statistics.mean(values) * 1000:8.0f}")
    end_to_end = statistics.mean(stages["end_to_end"])
    floor = statistics.mean(stages["floor"])
    print(
        f"\nthroughput: {1 / end_to_end:.2f} images/s "
        f"(floor {1 / floor:.1f} images/s; target >= {0.5 / floor:.1f} images/s)"
    )
    print(f"pipeline / floor: {end_to_end / floor:.1f}x")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
