"""Batch throughput as ``deid run`` executes it, against the decode+encode floor, with peak memory.

Builds 40-photo mixes at 12 MP (4000 x 3000) and 3 MP (2000 x 1500): plain
skin, tattoo and face photos from ``../shared/devdata`` (skipped when absent)
and scikit-image photos, upscaled and saved as phone-like JPEGs (q90). Then,
in one run, it prints:

* the floor: decode + upright + encode of the configured output format (and
  the other encoders, for comparison), in one process and in two;
* deid end to end: the real console script (``deid run``) on 1 and 2 worker
  processes; process start, Prefect and model loading reported separately (a
  run on a one-image batch), then images per second of the batch itself, the
  summary's per-stage times and the peak RSS of the whole process tree (and its
  PSS, which counts the pages the workers share once);
* with ``--memory-scaling``, the peak RSS of 3 MP batches of 200 and 2,000
  images (the second should be within 10% of the first);
* with ``--recall``, beside the speed and from the same code: the detection figures of
  ``benchmarks/review_load.py`` and the input-size table of ``benchmarks/input_sizes.py``.

Usage: ``.venv/bin/python benchmarks/throughput.py [--images 40] [--sizes 12,3] [--memory-scaling] [--recall]``.
Run it on a quiet machine: every figure is wall-clock time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageOps
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deid.config import OutputSettings, load_config  # noqa: E402
from deid.metadata import encode_clean  # noqa: E402

DEVDATA = Path(os.environ.get("DEID_DEVDATA", ROOT.parent / "shared" / "devdata"))
DEID = Path(sys.executable).with_name("deid")
SIZES = {12: (4000, 3000), 3: (2000, 1500)}
ENCODERS = {
    "png/fpng": OutputSettings("png", 92, 3, "fpng"),
    "png/zlib-1": OutputSettings("png", 92, 1, "zlib"),
    "png/zlib-3": OutputSettings("png", 92, 3, "zlib"),
    "jpeg/q92": OutputSettings("jpeg", 92, 3, "zlib"),
}


def _sources() -> list[np.ndarray]:
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    for folder in ("skin", "tattoos", "faces"):
        for path in sorted((DEVDATA / folder).glob("*.jpg"))[:12]:
            with Image.open(path) as opened:
                photos.append(np.asarray(ImageOps.exif_transpose(opened).convert("RGB")))
    return photos


def build_batch(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` phone-size JPEGs and a cases.csv naming them, one contribution each."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    sources = _sources()
    rows = []
    for index in range(count):
        name = f"p{index:04d}.jpg"
        Image.fromarray(sources[index % len(sources)]).resize(size, Image.BICUBIC).save(images / name, quality=90)
        rows.append(
            {
                "contribution_id": f"b{index:04d}",
                "submitted_at": "2026-06-01T10:00:00Z",
                "age": "40",
                "body_parts": "arm",
                "image_1": name,
                "shot_type_1": "CLOSE_UP",
            }
        )
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _floor_one(args: tuple[str, str]) -> float:
    path, encoder = args
    started = time.perf_counter()
    with Image.open(path) as opened:
        pixels = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    encode_clean(pixels, ENCODERS[encoder])
    return time.perf_counter() - started


def floor(paths: list[Path], encoder: str, processes: int) -> float:
    """Images per second of decode + upright + encode, the better of two passes.

    The processes are started and warmed (one image each) before the clock
    starts, and the second pass reads files the first left in the page cache,
    so the figure is the encoder's, not process start-up's or the disk's.
    """
    jobs = [(str(p), encoder) for p in paths]
    best = float("inf")
    with ProcessPoolExecutor(processes) if processes > 1 else contextlib.nullcontext() as pool:
        run = pool.map if pool is not None else map
        list(run(_floor_one, jobs[:processes]))
        for _ in range(2):
            started = time.perf_counter()
            list(run(_floor_one, jobs))
            best = min(best, time.perf_counter() - started)
    return len(paths) / best


def _memory(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process in bytes, from one read of its ``smaps_rollup``."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                values[name] = int(rest.split()[0]) * 1024
    return values.get("Rss", 0), values.get("Pss", 0)


def _tree_memory(process: psutil.Process) -> tuple[int, int]:
    """RSS and PSS of ``process`` and its descendants, summed.

    The RSS sum counts a library page every worker maps once per worker; the PSS
    sum counts it once in all (each shared page split among the processes mapping it),
    which is what the machine actually spends.
    """
    rss = pss = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:  # the run ended between the sampler's check and this listing
        return rss, pss
    for member in members:
        try:
            one_rss, one_pss = _memory(member.pid)
        except OSError:  # the process ended between listing and reading
            continue
        rss, pss = rss + one_rss, pss + one_pss
    return rss, pss


def run_deid(
    batch: Path, workspace: Path, workers: int, config: Path | None
) -> tuple[float, tuple[int, int], dict[str, float]]:
    """Wall seconds, peak (RSS, PSS) of the process tree, and the summary's stage seconds of one ``deid run``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    # One Prefect home for every run of the benchmark, as on a user's machine: its database is
    # created (about 8 s of migrations) by the first run only, and later start-ups do not pay it.
    env["PREFECT_HOME"] = str(workspace.parent / "prefect-home")
    command = [str(DEID), "run", str(batch), "--workspace", str(workspace), "--workers", str(workers), "--json"]
    if config is not None:
        command += ["--config", str(config)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    peak = [0, 0]
    watched = psutil.Process(child.pid)

    def sample() -> None:
        while child.poll() is None:
            rss, pss = _tree_memory(watched)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"deid run failed with exit {child.returncode}")
    summary = json.loads(out.strip().splitlines()[-1])
    return seconds, (peak[0], peak[1]), summary.get("stage_seconds", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--sizes", default="12,3", help="megapixel mixes to run: 12, 3 or both")
    parser.add_argument("--config", type=Path, help="deid.toml for deid run (default configuration otherwise)")
    parser.add_argument("--memory-scaling", action="store_true", help="also 3 MP batches of 200 and 2,000 images")
    parser.add_argument("--recall", action="store_true", help="also the detection recall and input-size tables")
    args = parser.parse_args()
    configured = load_config(args.config).output
    configured_name = "jpeg/q92" if configured.format == "jpeg" else f"png/{configured.png_encoder}"
    if configured_name == "png/zlib":
        configured_name = f"png/zlib-{configured.png_compress_level}"
    where = DEVDATA if DEVDATA.exists() else "absent (scikit-image photos only)"
    print(f"devdata: {where}; configured output {configured_name}")
    with tempfile.TemporaryDirectory(prefix="deid-throughput-") as scratch:
        root = Path(scratch)
        for megapixels in (int(part) for part in args.sizes.split(",")):
            batch = build_batch(root / f"batch{megapixels}", args.images, SIZES[megapixels])
            paths = sorted((batch / "images").glob("*.jpg"))
            print(f"\n== {len(paths)} photos at {megapixels} MP ==")
            print("floor (decode + upright + encode), images/s:")
            two_process: dict[str, float] = {}
            for encoder in ENCODERS:
                one, two_process[encoder] = floor(paths, encoder, 1), floor(paths, encoder, 2)
                mark = "  <- configured" if encoder == configured_name else ""
                print(f"  {encoder:<11} 1 process {one:6.2f}   2 processes {two_process[encoder]:6.2f}{mark}")
            # The target compares with the fastest lossless encoder measured (the PNG encoders), or JPEG's own floor.
            lossless = [rate for name, rate in two_process.items() if name.startswith("png/")]
            fastest_two = max(lossless) if configured.format == "png" else two_process["jpeg/q92"]
            tiny = build_batch(root / f"tiny{megapixels}", 1, SIZES[megapixels])
            if not (root / "prefect-home").exists():
                run_deid(tiny, root / "ws-first", 1, args.config)  # creates the Prefect database; not reported
            for workers in (1, 2):
                start_seconds, _, _ = run_deid(tiny, root / f"ws-tiny{megapixels}-{workers}", workers, args.config)
                seconds, (peak, peak_pss), stages = run_deid(
                    batch, root / f"ws{megapixels}-{workers}", workers, args.config
                )
                # The one-image run costs start-up plus one image; the rest of the batch is the difference.
                batch_seconds = seconds - start_seconds
                rate = (len(paths) - 1) / batch_seconds if batch_seconds > 0 else float("nan")
                print(
                    f"deid run, {workers} worker(s): start + Prefect + models {start_seconds:.1f} s (one-image run), "
                    f"whole run {seconds:.1f} s, batch {rate:.2f} images/s, peak RSS {peak / 2**30:.2f} GiB "
                    f"(PSS {peak_pss / 2**30:.2f} GiB: shared library pages counted once)"
                )
                if stages:
                    total = sum(stages.values()) or 1.0
                    print(
                        "  per stage (worker seconds): "
                        + ", ".join(f"{k} {v / len(paths):.3f}s/img ({v / total:.0%})" for k, v in stages.items())
                    )
                if workers == 2:
                    print(
                        f"  vs the fast-PNG floor on 2 processes ({fastest_two:.2f} images/s): "
                        f"{rate / fastest_two:.2f}x (target >= 0.3x)"
                    )
                    if megapixels == 12:
                        print(
                            f"  12 MP target >= 3 images/s: {'met' if rate >= 3 else 'NOT met'}; "
                            "peak RSS target <= 1.5 GB: "
                            f"{'met' if peak <= 1.5e9 else 'NOT met'}"
                        )
        if args.memory_scaling:
            peaks = {}
            for count in (200, 2000):
                batch = build_batch(root / f"mem{count}", count, SIZES[3])
                _, (peaks[count], _), _ = run_deid(batch, root / f"ws-mem{count}", 2, args.config)
                print(f"3 MP batch of {count}: peak RSS {peaks[count] / 2**30:.2f} GiB")
            print(f"2,000 vs 200 images: {peaks[2000] / peaks[200]:.2f}x (target within 1.10x)")
    if args.recall:
        for script in ("review_load.py", "input_sizes.py"):
            print(f"\n== {script} (same code) ==", flush=True)
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / script)], check=True, cwd=ROOT / "benchmarks")


if __name__ == "__main__":
    main()
