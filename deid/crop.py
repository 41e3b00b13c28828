"""Crop planning: the most useful rectangle of an image that holds no flagged region.

This is pure geometry. :func:`find_empty_rectangles` enumerates, exactly, every
maximal axis-aligned rectangle that overlaps no obstacle; :func:`plan_crop`
trims each to the allowed aspect ratio, drops those that are too small or (with
``keep_centre``) miss the image centre, and scores the rest by area, closeness
to the image centre and the share of the skin area they keep. When nothing
fits it returns a typed :class:`NoCrop` with the reason, and the policy falls
back to redaction or a hold; it never returns an empty or too-small crop.

The enumeration compresses the image to the grid of obstacle edges (at most
``2n + 1`` cells a side for ``n`` obstacles) and runs the classic
histogram-and-stack method over it, row by row, so it costs ``O(n^2)`` cells
whatever the image size. Every maximal empty rectangle has its edges on that
grid, so nothing is missed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

from deid.config import CropSettings, SkinSettings, default_config
from deid.types import Box, RGBImage

BoolMask: TypeAlias = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Crop:
    """A crop the planner found: the box kept, its score and why it was chosen."""

    box: Box
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class NoCrop:
    """No crop fits; ``reason`` says which limit every candidate broke."""

    reason: str


CropPlan: TypeAlias = Crop | NoCrop
"""What :func:`plan_crop` returns: a :class:`Crop` or a typed :class:`NoCrop`."""


def find_empty_rectangles(shape: Sequence[int], obstacles: Sequence[Box]) -> list[Box]:
    """Every maximal rectangle of an image of ``shape`` that overlaps no obstacle.

    Parameters
    ----------
    shape
        ``(height, width, ...)`` of the image.
    obstacles
        Boxes to avoid, already grown by any margin; they are clipped to the
        image and may touch or cross its edge.

    Returns
    -------
    list[Box]
        The maximal empty rectangles (none can grow on any side without
        overlapping an obstacle or leaving the image), sorted; ``[]`` when the
        obstacles cover everything.

    Examples
    --------
    >>> find_empty_rectangles((10, 10), [Box(0, 0, 5, 5)])
    [Box(left=0, top=5, right=10, bottom=10), Box(left=5, top=0, right=10, bottom=10)]
    """
    height, width = int(shape[0]), int(shape[1])
    if height <= 0 or width <= 0:
        return []
    blocks = [box.clip((height, width)) for box in obstacles]
    blocks = [box for box in blocks if not box.is_empty]
    xs = sorted({0, width, *(b.left for b in blocks), *(b.right for b in blocks)})
    ys = sorted({0, height, *(b.top for b in blocks), *(b.bottom for b in blocks)})
    rows, cols = len(ys) - 1, len(xs) - 1
    blocked = np.zeros((rows, cols), dtype=bool)
    for box in blocks:
        r0, r1 = bisect.bisect_left(ys, box.top), bisect.bisect_left(ys, box.bottom)
        c0, c1 = bisect.bisect_left(xs, box.left), bisect.bisect_left(xs, box.right)
        blocked[r0:r1, c0:c1] = True

    found: set[Box] = set()
    run = np.zeros(cols, dtype=np.int64)  # free cells ending at this row, per column
    for row in range(rows):
        run = np.where(blocked[row], 0, run + 1)
        heights = [int(h) for h in run] + [0]
        stack: list[tuple[int, int]] = []  # (first column, height), heights increasing
        for col, cell_height in enumerate(heights):
            start = col
            while stack and stack[-1][1] >= cell_height:
                first, bar = stack.pop()
                # Equal bars merge and are emitted later with their full width.
                if bar > cell_height:
                    top_row = row - bar + 1
                    at_bottom = row + 1 == rows or bool(blocked[row + 1, first:col].any())
                    if at_bottom:  # otherwise it grows downwards: not maximal
                        found.add(Box(xs[first], ys[top_row], xs[col], ys[row + 1]))
                start = first
            if cell_height > 0:
                stack.append((start, cell_height))
    return sorted(found)


def plan_crop(
    shape: Sequence[int],
    obstacles: Sequence[Box],
    settings: CropSettings,
    *,
    skin_mask: BoolMask | None = None,
) -> CropPlan:
    """Choose the crop of an image that keeps the most useful area and no obstacle.

    Parameters
    ----------
    shape
        ``(height, width, ...)`` of the full image.
    obstacles
        Flagged regions' boxes, already grown by their margins.
    settings
        ``[policy.crop]``: size and aspect limits, ``keep_centre``, score weights.
    skin_mask
        Optional ``H' x W'`` boolean mask of skin at any resolution (it is
        mapped onto ``shape``), from :func:`estimate_skin_mask`; crops that
        keep more skin score higher.

    Returns
    -------
    Crop or NoCrop
        The best crop, which overlaps no obstacle, is at least
        ``min_side_px`` on its short side, keeps at least ``min_area_frac``
        of the image and respects ``max_aspect``; or :class:`NoCrop` with the
        reason when none does.

    Raises
    ------
    ValueError
        If ``skin_mask`` is not two-dimensional.

    Examples
    --------
    >>> from deid.config import load_config
    >>> plan = plan_crop((1000, 1000), [Box(0, 0, 200, 200)], load_config().policy.crop)
    >>> plan.box if isinstance(plan, Crop) else plan.reason
    Box(left=200, top=0, right=1000, bottom=1000)
    """
    height, width = int(shape[0]), int(shape[1])
    if height <= 0 or width <= 0:
        return NoCrop("the image is empty")
    candidates = find_empty_rectangles((height, width), obstacles)
    if not candidates:
        return NoCrop("the flagged regions and their margins cover the whole image")
    skin = _SkinIntegral(skin_mask, (height, width)) if skin_mask is not None else None
    centre_x, centre_y = width // 2, height // 2
    best: tuple[tuple[float, int, int, int], Box] | None = None
    largest_rejected: tuple[int, str] | None = None
    for rectangle in candidates:
        box = _fit_aspect(rectangle, settings.max_aspect, centre_x, centre_y)
        problem = _problem(box, settings, width * height, centre_x, centre_y)
        if problem:
            if largest_rejected is None or box.area > largest_rejected[0]:
                largest_rejected = (box.area, problem)
            continue
        score = _score(box, settings, width, height, skin)
        key = (score, box.area, -box.top, -box.left)
        if best is None or key > best[0]:
            best = (key, box)
    if best is None:
        assert largest_rejected is not None  # candidates is not empty
        return NoCrop(largest_rejected[1])
    (score, *_), box = best
    kept = box.area / (width * height)
    return Crop(box, score, f"largest useful rectangle free of {len(obstacles)} flagged region(s) keeps {kept:.0%}")


def estimate_skin_mask(image: RGBImage, *, skin: SkinSettings | None = None) -> BoolMask:
    """A coarse skin mask of ``image`` (at most 256 px a side) for crop scoring.

    The mask covers the whole image at a lower resolution;
    :func:`plan_crop` maps it onto the full image.

    It only weighs crop candidates and never decides what is identifying, so a
    fixed colour rule is enough: the ``[skin]`` box of Chai and Ngan (1999)
    (``skin``, or the shipped default when ``None``). Reddened and inflamed
    skin stays inside it, which is what a lesion-preserving crop needs.

    Returns
    -------
    numpy.ndarray
        A boolean ``H' x W'`` mask, ``True`` on skin-coloured pixels.

    Raises
    ------
    ValueError
        If ``image`` is not ``H x W x 3``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    # Strided sampling, not area averaging: a few milliseconds on a 12 MP photo
    # instead of ~90, and a coarse mask is all the scoring needs.
    box = skin or default_config().skin
    step = max(1, math.ceil(max(image.shape[:2]) / box.mask_side_px))
    small = np.ascontiguousarray(image[::step, ::step])
    ycrcb = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    low_cr, high_cr = box.cr_range
    low_cb, high_cb = box.cb_range
    mask: BoolMask = (cr >= low_cr) & (cr <= high_cr) & (cb >= low_cb) & (cb <= high_cb)
    return mask


def _fit_aspect(box: Box, max_aspect: float, centre_x: int, centre_y: int) -> Box:
    """Trim the long side to ``max_aspect`` times the short one, as near the centre as it goes.

    The trimmed box is the largest of allowed aspect inside ``box``: any such
    rectangle is at most the short side tall and ``max_aspect`` times that wide.
    """
    width, height = box.width, box.height
    if width > max_aspect * height:
        new_width = max(1, math.floor(max_aspect * height))
        left = min(max(centre_x - new_width // 2, box.left), box.right - new_width)
        return Box(left, box.top, left + new_width, box.bottom)
    if height > max_aspect * width:
        new_height = max(1, math.floor(max_aspect * width))
        top = min(max(centre_y - new_height // 2, box.top), box.bottom - new_height)
        return Box(box.left, top, box.right, top + new_height)
    return box


def _problem(box: Box, settings: CropSettings, image_area: int, centre_x: int, centre_y: int) -> str:
    """Why ``box`` cannot be the crop, or ``""`` when it can."""
    kept = box.area / image_area
    if min(box.width, box.height) < settings.min_side_px:
        return (
            f"the best crop free of flagged regions is {box.width}x{box.height} px, "
            f"under policy.crop.min_side_px {settings.min_side_px}"
        )
    if kept < settings.min_area_frac:
        return (
            f"the best crop free of flagged regions keeps {kept:.0%}, "
            f"under policy.crop.min_area_frac {settings.min_area_frac:.0%}"
        )
    if settings.keep_centre and not (box.left <= centre_x < box.right and box.top <= centre_y < box.bottom):
        return "every crop free of flagged regions loses the image centre (policy.crop.keep_centre)"
    return ""


def _score(box: Box, settings: CropSettings, width: int, height: int, skin: _SkinIntegral | None) -> float:
    area_frac = box.area / (width * height)
    offset = math.hypot((box.left + box.right - width) / 2, (box.top + box.bottom - height) / 2)
    closeness = 1.0 - offset / (0.5 * math.hypot(width, height))
    score = area_frac + settings.centre_weight * closeness
    if skin is not None:
        score += settings.skin_weight * skin.kept(box)
    return score


class _SkinIntegral:
    """Fraction of a mask's skin inside a box of the full image, in O(1) per box."""

    def __init__(self, mask: BoolMask, shape: tuple[int, int]) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"skin_mask must be two-dimensional, got shape {mask.shape}")
        self.rows, self.cols = mask.shape
        self.scale_y, self.scale_x = self.rows / shape[0], self.cols / shape[1]
        self.table = np.zeros((self.rows + 1, self.cols + 1), dtype=np.int64)
        self.table[1:, 1:] = mask.cumsum(0).cumsum(1)
        self.total = int(self.table[-1, -1])

    def kept(self, box: Box) -> float:
        if self.total == 0:
            return 0.0
        top, bottom = round(box.top * self.scale_y), round(box.bottom * self.scale_y)
        left, right = round(box.left * self.scale_x), round(box.right * self.scale_x)
        t = self.table
        inside = int(t[bottom, right] - t[top, right] - t[bottom, left] + t[top, left])
        return inside / self.total


__all__ = ["Crop", "CropPlan", "NoCrop", "estimate_skin_mask", "find_empty_rectangles", "plan_crop"]
