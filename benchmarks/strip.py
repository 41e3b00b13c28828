"""Strip + verify throughput and peak memory on the devdata metadata files, next to ``exiftool -all=``.

Run: ``.venv/bin/python benchmarks/strip.py [--devdata DIR] [--format png|jpeg]``

deid decodes every file (orientation applied, colours to sRGB), encodes the
pixels afresh and checks the bytes with the independent verifier, the way the
pipeline does. ``exiftool -all=`` edits the original's segments in place (one
exiftool process for all copies, its fastest mode). The two do not do the
same work: the last lines say what each one's output still carries, read by
deid's verifier and by exiftool itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deid.config import load_config  # noqa: E402
from deid.metadata import strip_image  # noqa: E402
from deid.verify_bytes import verify_clean  # noqa: E402

# exiftool tags that describe only the file system, the reader or the image structure (see tests/test_metadata.py).
STRUCTURE_GROUPS = ("SourceFile", "ExifTool:", "System:", "File:", "Composite:ImageSize", "Composite:Megapixels")
STRUCTURE_TAGS = frozenset(
    {"PNG:ImageWidth", "PNG:ImageHeight", "PNG:BitDepth", "PNG:ColorType", "PNG:Compression", "PNG:Filter",
     "PNG:Interlace", "JFIF:JFIFVersion", "JFIF:ResolutionUnit", "JFIF:XResolution", "JFIF:YResolution"}
)  # fmt: skip


# Tag names that identify a person, device, place or time (exiftool's names, any group).
IDENTIFYING = re.compile(r"Artist|Copyright|Make|Model|Serial|GPS|Owner|Software|Date|Author|Creator|By-line|Credit")


def _metadata_tags(entry: dict[str, object]) -> list[str]:
    return [tag for tag in entry if not tag.startswith(STRUCTURE_GROUPS) and tag not in STRUCTURE_TAGS]


def _exiftool_entries(files: list[Path]) -> dict[str, dict[str, object]]:
    done = subprocess.run(["exiftool", "-j", "-a", "-G1", *map(str, files)], capture_output=True, check=True)
    return {Path(str(entry["SourceFile"])).name: entry for entry in json.loads(done.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_devdata = Path(os.environ.get("DEID_DEVDATA", REPO.parent / "shared" / "devdata"))
    parser.add_argument("--devdata", type=Path, default=default_devdata)
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    args = parser.parse_args()
    files = sorted(p for p in (args.devdata / "metadata").iterdir() if p.suffix.lower() != ".json")
    if not files:
        print(f"no files under {args.devdata / 'metadata'}")
        return 1
    config = load_config()
    output = dataclasses.replace(config.output, format=args.format)
    total_mb = sum(file.stat().st_size for file in files) / 1e6
    print(f"{len(files)} files, {total_mb:.1f} MB, output {args.format}, {os.cpu_count()} CPU(s)")

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # --- deid: strip + verify, one file at a time, as the pipeline does
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        outputs: list[Path] = []
        failed_verify = 0
        per_file: list[tuple[float, str]] = []
        start, cpu_start = time.perf_counter(), time.process_time()
        for file in files:
            began = time.perf_counter()
            result = strip_image(file, work / "deid" / file.name, config.input, output)
            outputs.append(result.output)
            failed_verify += not verify_clean(result.output.read_bytes(), path=result.output).ok
            per_file.append((time.perf_counter() - began, file.name))
        deid_seconds, deid_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        # --- exiftool -all= on copies of the same files, in one process
        copies = work / "exiftool"
        copies.mkdir()
        for file in files:
            shutil.copy2(file, copies / file.name)
        copied = sorted(copies.iterdir())
        start = time.perf_counter()
        command = ["exiftool", "-all=", "-overwrite_original", "-q", "-q", *map(str, copied)]
        done = subprocess.run(command, capture_output=True, check=False)
        exiftool_seconds = time.perf_counter() - start
        exiftool_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

        exiftool_unverified = {copy.name: verify_clean(copy.read_bytes(), decode=False).problems for copy in copied}
        exiftool_unverified = {name: problems for name, problems in exiftool_unverified.items() if problems}
        exiftool_left = {
            name: [f"{tag}={entry[tag]}" for tag in _metadata_tags(entry) if IDENTIFYING.search(tag.split(":")[-1])]
            for name, entry in _exiftool_entries(copied).items()
        }
        exiftool_left = {name: tags for name, tags in exiftool_left.items() if tags}
        deid_entries = _exiftool_entries(outputs)
        deid_left = {name: tags for name, entry in deid_entries.items() if (tags := _metadata_tags(entry))}

    print()
    print(f"{'tool':<34}{'seconds':>9}{'files/s':>9}{'ms/file':>9}   peak memory")
    print(
        f"{'deid strip + verify':<34}{deid_seconds:>9.2f}{len(files) / deid_seconds:>9.2f}"
        f"{1000 * deid_seconds / len(files):>9.0f}   max RSS {rss_after / 1024:.0f} MB "
        f"(was {rss_before / 1024:.0f} MB before), tracemalloc peak {traced_peak / 1e6:.0f} MB"
    )
    print(
        f"{'exiftool -all= (one process)':<34}{exiftool_seconds:>9.2f}{len(files) / exiftool_seconds:>9.2f}"
        f"{1000 * exiftool_seconds / len(files):>9.0f}   max RSS {exiftool_rss / 1024:.0f} MB"
        + (f"  (exit {done.returncode})" if done.returncode else "")
    )
    slowest = ", ".join(f"{name} {seconds:.2f} s" for seconds, name in sorted(per_file, reverse=True)[:3])
    print(f"deid CPU time {deid_cpu:.2f} s ({len(files) / deid_cpu:.2f} files per CPU-second); slowest: {slowest}")
    print()
    print(f"deid outputs failing deid.verify_bytes: {failed_verify}/{len(files)}; "
          f"with metadata tags per exiftool: {len(deid_left)}")  # fmt: skip
    print(f"exiftool -all= outputs failing deid.verify_bytes: {len(exiftool_unverified)}/{len(files)}")
    for name, problems in sorted(exiftool_unverified.items()):
        print(f"  {name}: {problems[0]}{f' (+{len(problems) - 1} more)' if len(problems) > 1 else ''}")
    print(f"exiftool -all= outputs where exiftool still reads identifying tags: {len(exiftool_left)}/{len(files)}")
    for name, tags in sorted(exiftool_left.items()):
        print(f"  {name}: {', '.join(tags[:6])}{' ...' if len(tags) > 6 else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
