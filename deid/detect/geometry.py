"""Geometry shared by detectors: rotated and tiled passes, merging overlapping regions.

A detector that looks at an image several ways (turned 90/180/270 degrees,
cut into overlapping tiles, several models) finds the same face several
times; :func:`merge_regions` folds those into one region per object.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from deid.types import Box, Region, RGBImage


def rotate_image(image: RGBImage, quarter_turns: int) -> RGBImage:
    """Turn ``image`` counter-clockwise by ``quarter_turns`` x 90 degrees (a view, not a copy)."""
    return np.rot90(image, quarter_turns % 4)


def unrotate_box(box: Box, quarter_turns: int, shape: Sequence[int]) -> Box:
    """Map a box found on :func:`rotate_image` output back to the original image.

    Parameters
    ----------
    box
        Box in the rotated image's pixels (half-open).
    quarter_turns
        The turns given to :func:`rotate_image`.
    shape
        ``(height, width, ...)`` of the *original* image.

    Examples
    --------
    >>> unrotate_box(Box(0, 0, 10, 20), 1, (100, 200))
    Box(left=180, top=0, right=200, bottom=10)
    """
    height, width = int(shape[0]), int(shape[1])
    turns = quarter_turns % 4
    if turns == 1:  # rotated[y', x'] = original[x', W - 1 - y']
        return Box(width - box.bottom, box.left, width - box.top, box.right)
    if turns == 2:
        return Box(width - box.right, height - box.bottom, width - box.left, height - box.top)
    if turns == 3:  # rotated[y', x'] = original[H - 1 - x', y']
        return Box(box.top, height - box.right, box.bottom, height - box.left)
    return box


def tile_boxes(shape: Sequence[int], *, grid: int, overlap_frac: float) -> Iterator[Box]:
    """Split an image into ``grid`` x ``grid`` tiles that overlap by ``overlap_frac`` of a tile.

    Overlap keeps a face on a tile border whole in at least one tile.
    """
    height, width = int(shape[0]), int(shape[1])
    if grid <= 1:
        yield Box(0, 0, width, height)
        return
    tile_w = width / (grid - (grid - 1) * overlap_frac)
    tile_h = height / (grid - (grid - 1) * overlap_frac)
    for row in range(grid):
        for column in range(grid):
            left = column * tile_w * (1 - overlap_frac)
            top = row * tile_h * (1 - overlap_frac)
            yield Box(
                int(left), int(top), min(width, int(np.ceil(left + tile_w))), min(height, int(np.ceil(top + tile_h)))
            )


def is_same_object(first: Box, second: Box, *, min_iou: float) -> bool:
    """True when two boxes overlap enough to be one object (IoU, or one mostly inside the other)."""
    return first.iou(second) >= min_iou or max(first.coverage_of(second), second.coverage_of(first)) >= 0.8


def merge_regions(regions: Sequence[Region], *, min_iou: float, source: str | None = None) -> list[Region]:
    """Fold regions of the same kind that show the same object into one.

    Clusters are built greedily from the highest score down. The merged box is
    the union of the cluster's boxes, not their score-weighted mean: models
    disagree on where a face ends (mediapipe boxes a masked face by its
    visible part, CenterFace by the whole head), and a mean would shrink the
    redaction below what one model found, a breach whenever that model was
    right. Clusters need real overlap, so the union stays close to the face.
    The score is the cluster's maximum and
    the note lists every distinct note, so a reviewer sees which passes agreed.

    Parameters
    ----------
    regions
        Regions of any kinds, possibly overlapping.
    min_iou
        Two boxes are one object at this IoU or more (or when one lies at
        least 80% inside the other).
    source
        When given, the merged regions carry this source.

    Returns
    -------
    list[Region]
        One region per object, highest score first.
    """
    ordered = sorted(regions, key=lambda region: region.score, reverse=True)
    clusters: list[list[Region]] = []
    for region in ordered:
        for cluster in clusters:
            lead = cluster[0]
            if lead.kind == region.kind and is_same_object(lead.box, region.box, min_iou=min_iou):
                cluster.append(region)
                break
        else:
            clusters.append([region])
    merged: list[Region] = []
    for cluster in clusters:
        lead = cluster[0]
        box = lead.box
        for region in cluster[1:]:
            box = box.union(region.box)
        notes = list(dict.fromkeys(region.note for region in cluster if region.note))
        # The score is the lead's, and so is its provenance (calibration, raw_score).
        merged.append(replace(lead, box=box, source=source or lead.source, note="; ".join(notes)))
    return merged
