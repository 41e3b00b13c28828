"""Regions drawn by a person: a real detector that returns boxes it was given.

A reviewer draws boxes on the full-resolution image; the pipeline builds a
:class:`ManualRegions` from them and runs it like any other detector, so the
same policy, redaction and audit trail apply. Detectors see a downscaled copy,
so the boxes are scaled to whatever image ``detect`` receives, rounding
outwards (a manual box never shrinks). Tests use it to place exact regions.

It is registered as ``"manual"`` but not enabled in ``default.toml``: from
config it has no boxes, and code builds it from review decisions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from deid.config import DetectorSettings
from deid.errors import ConfigError
from deid.types import Box, Region, RegionKind, RGBImage


class ManualRegions:
    """A detector that returns fixed regions, scaled to the image it is given.

    Parameters
    ----------
    settings
        Detector settings from config; it takes no options.
    regions
        Regions in pixels of the full-resolution upright image, usually with
        ``source="review:<reviewer>"``.
    image_shape
        ``(height, width, ...)`` of the image the regions were drawn on. When
        ``None`` the regions are taken to be in the pixels of whatever image
        ``detect`` receives.

    Raises
    ------
    ConfigError
        If ``settings`` carries any option, or ``image_shape`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> face = Region(RegionKind.FACE, Box(100, 100, 300, 300), 1.0, "review:ana")
    >>> detector = ManualRegions(regions=[face], image_shape=(1000, 1000))
    >>> detector.detect(np.zeros((500, 500, 3), np.uint8))[0].box
    Box(left=50, top=50, right=150, bottom=150)
    """

    name = "manual"
    version = "1"
    kinds = frozenset(RegionKind)

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        *,
        regions: Sequence[Region] = (),
        image_shape: Sequence[int] | None = None,
    ) -> None:
        if settings is not None and settings.options:
            raise ConfigError(
                f"detector {self.name} takes no options, got {', '.join(sorted(settings.options))}",
                hint="its boxes come from review decisions, not from deid.toml",
            )
        if image_shape is not None and (int(image_shape[0]) <= 0 or int(image_shape[1]) <= 0):
            raise ConfigError(
                f"image_shape {tuple(image_shape)} must be positive", hint="pass the drawn-on image's shape"
            )
        self.regions = tuple(regions)
        self.image_shape = (int(image_shape[0]), int(image_shape[1])) if image_shape is not None else None

    def detect(self, image: RGBImage) -> list[Region]:
        """Return the regions in ``image`` pixels, clipped to it; ``[]`` when none falls on it."""
        height, width = int(image.shape[0]), int(image.shape[1])
        scale_y, scale_x = (
            (height / self.image_shape[0], width / self.image_shape[1]) if self.image_shape else (1.0, 1.0)
        )
        found: list[Region] = []
        for region in self.regions:
            box = Box(
                math.floor(region.box.left * scale_x),
                math.floor(region.box.top * scale_y),
                math.ceil(region.box.right * scale_x),
                math.ceil(region.box.bottom * scale_y),
            ).clip(image.shape)
            if not box.is_empty:
                found.append(replace(region, box=box))
        return found


__all__ = ["ManualRegions"]
