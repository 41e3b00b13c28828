"""Irreversible redaction: a solid fill written into the pixels before encoding.

Blur and pixelation can be reversed and are deliberately not offered. The
fill covers each box grown by its kind's margin and clipped to the image;
boxes that cross the image edge are filled up to the edge.

:func:`render_decision` turns a policy decision into staged pixels (fill,
then crop); :func:`redact_file` runs the whole chain for one loose file
(load, detect, decide, render, encode clean), as ``deid redact`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deid.config import Config, PolicySettings
from deid.crop import estimate_skin_mask
from deid.detect import Detector, detect_regions
from deid.errors import DeidError
from deid.io import load_image
from deid.metadata import SUFFIXES, encode_clean
from deid.policy import apply_policy, is_releasable
from deid.preview import is_preview_needed, write_preview
from deid.types import Action, Box, Decision, Region, RGBImage


def redaction_boxes(regions: Iterable[Region], policy: PolicySettings, shape: Sequence[int]) -> list[Box]:
    """Each region's box grown by its kind's ``margin_frac`` and clipped to ``shape``.

    Boxes left empty by clipping (wholly outside the image) are dropped.
    """
    boxes = [region.box.expand(policy.rule_for(region.kind).margin_frac).clip(shape) for region in regions]
    return [box for box in boxes if not box.is_empty]


def fill_boxes(image: RGBImage, boxes: Iterable[Box], *, fill_rgb: Sequence[int]) -> RGBImage:
    """Return a copy of ``image`` with every pixel inside every box set to ``fill_rgb``.

    The input is never modified. Boxes are clipped to the image first, so a
    box touching or crossing an edge is filled up to that edge.

    Examples
    --------
    >>> image = np.full((4, 4, 3), 200, dtype=np.uint8)
    >>> fill_boxes(image, [Box(-2, -2, 2, 2)], fill_rgb=(0, 0, 0))[:, :, 0]
    array([[  0,   0, 200, 200],
           [  0,   0, 200, 200],
           [200, 200, 200, 200],
           [200, 200, 200, 200]], dtype=uint8)
    """
    out = image.copy()
    colour = np.asarray(fill_rgb, dtype=np.uint8)
    for box in boxes:
        clipped = box.clip(out.shape)
        out[clipped.top : clipped.bottom, clipped.left : clipped.right] = colour
    return out


def render_decision(image: RGBImage, decision: Decision, policy: PolicySettings) -> RGBImage:
    """Apply a decision's redactions, then its crop, to a copy of ``image``.

    Every region of the decision is filled (grown by its kind's margin), then
    the crop is cut. Filling the regions a crop removes as well costs nothing
    and means a crop can never bring back a flagged pixel through rounding at
    its edge. For a ``hold`` or ``exclude`` decision this renders the proposal
    a reviewer would approve; whether it may be released is the caller's call
    (:func:`deid.policy.is_releasable`).

    Parameters
    ----------
    image
        The upright full-resolution image; never modified.
    decision
        From :func:`deid.policy.apply_policy` (or a reviewer).
    policy
        The ``[policy]`` configuration (margins and fill colour).

    Returns
    -------
    RGBImage
        A new ``uint8`` RGB array: redacted, and cropped when ``decision.crop`` is set.

    Raises
    ------
    ValueError
        If ``image`` is not ``H x W x 3`` or the crop leaves no pixel of it.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    boxes = redaction_boxes(decision.regions, policy, image.shape)
    out = fill_boxes(image, boxes, fill_rgb=policy.fill_rgb)
    if decision.crop is not None:
        crop = decision.crop.clip(out.shape)
        if crop.is_empty:
            raise ValueError(f"crop {decision.crop} leaves nothing of a {image.shape[1]}x{image.shape[0]} image")
        out = np.ascontiguousarray(out[crop.top : crop.bottom, crop.left : crop.right])
    return out


@dataclass(frozen=True, slots=True)
class RedactedFile:
    """What :func:`redact_file` did with one loose file."""

    file: str
    decision: Decision
    regions: tuple[Region, ...]
    output: str | None = None
    preview: str | None = None

    @property
    def status(self) -> str:
        """``released``, ``held`` or ``excluded``."""
        if self.decision.action is Action.EXCLUDE:
            return "excluded"
        return "held" if self.decision.action is Action.HOLD else "released"

    def to_json(self) -> dict[str, object]:
        """One JSON line for ``deid redact``: decision, reasons, regions, crop (boxes as ``[x, y, w, h]``)."""
        decision = self.decision
        return {
            "file": self.file,
            "decision": self.status,
            "action": str(decision.action),
            "reasons": list(decision.reasons),
            "regions": [region.to_json() for region in self.regions],
            "applied": [region.to_json() for region in decision.regions],
            "crop": decision.crop.to_xywh() if decision.crop is not None else None,
            "output": self.output,
            "preview": self.preview,
        }


def redact_file(
    path: str | Path,
    config: Config,
    detectors: Sequence[Detector],
    *,
    out_dir: str | Path,
    preview_dir: str | Path | None = None,
) -> RedactedFile:
    """Load, detect, decide and (when it may be released) write one loose file.

    The file is written to ``out_dir/<stem>.png`` (or ``.jpg``) as freshly
    encoded pixels with no metadata; a held or excluded file writes nothing
    there. With ``preview_dir``, a before/after preview of every held or
    altered file goes to ``preview_dir/<stem>.preview.png``.

    Parameters
    ----------
    path
        The image file.
    config
        The whole configuration (input, detection, policy, output).
    detectors
        From :func:`deid.detect.build_detectors`, built once for many files.
    out_dir
        Where releasable results go.
    preview_dir
        Where previews go (a private folder), or ``None`` for none.

    Returns
    -------
    RedactedFile
        The decision, the regions found and the files written.

    Raises
    ------
    InputError
        If the file cannot be loaded.
    DetectorError
        If a detector fails (the file must then be held).
    DeidError
        If an output file cannot be written.
    """
    source = Path(path)
    pixels = load_image(source, config.input).pixels
    regions = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px)
    decision = apply_policy(regions, config.policy, image_shape=pixels.shape, skin_mask=estimate_skin_mask(pixels))
    staged = render_decision(pixels, decision, config.policy) if is_releasable(decision) else None
    output: Path | None = None
    if staged is not None:
        output = Path(out_dir) / f"{source.stem}{SUFFIXES[config.output.format]}"
        _write(output, encode_clean(staged, config.output))
    preview: Path | None = None
    if preview_dir is not None and is_preview_needed(decision):
        preview = write_preview(pixels, regions, decision, staged, Path(preview_dir) / f"{source.stem}.preview.png")
    return RedactedFile(
        str(source), decision, tuple(regions), str(output) if output else None, str(preview) if preview else None
    )


def _write(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as error:
        raise DeidError(f"cannot write output: {error.strerror}", path=target, hint="check --out") from error
