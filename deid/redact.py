"""Irreversible redaction: a solid fill written into the pixels before encoding.

Blur and pixelation can be reversed and are deliberately not offered. The
fill covers each box grown by its kind's margin and clipped to the image;
boxes that cross the image edge are filled up to the edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from deid.config import PolicySettings
from deid.types import Box, Decision, Region, RGBImage


def redaction_boxes(regions: Iterable[Region], policy: PolicySettings, shape: Sequence[int]) -> list[Box]:
    """Each region's box grown by its kind's ``margin_frac`` and clipped to ``shape``."""
    boxes = [region.box.expand(policy.rule_for(region.kind).margin_frac).clip(shape) for region in regions]
    return [box for box in boxes if not box.is_empty]


def fill_boxes(image: RGBImage, boxes: Iterable[Box], *, fill_rgb: Sequence[int]) -> RGBImage:
    """Return a copy of ``image`` with every pixel inside every box set to ``fill_rgb``.

    The input is never modified. Boxes are clipped to the image first.
    """
    out = image.copy()
    colour = np.asarray(fill_rgb, dtype=np.uint8)
    for box in boxes:
        clipped = box.clip(out.shape)
        out[clipped.top : clipped.bottom, clipped.left : clipped.right] = colour
    return out


def render_decision(image: RGBImage, decision: Decision, policy: PolicySettings) -> RGBImage:
    """Apply a decision's redactions, then its crop, to a copy of ``image``.

    Redaction is applied before cropping so a crop can never bring back a
    redacted pixel through rounding at its edge.
    """
    boxes = redaction_boxes(decision.regions, policy, image.shape)
    out = fill_boxes(image, boxes, fill_rgb=policy.fill_rgb)
    if decision.crop is not None:
        crop = decision.crop.clip(out.shape)
        out = np.ascontiguousarray(out[crop.top : crop.bottom, crop.left : crop.right])
    return out
