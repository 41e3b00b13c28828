"""People from mediapipe pose: whole-body photos and people seen from behind.

A face detector only sees faces. A photo can still identify someone without
one: a whole body (build, clothes, setting) or a head and shoulders seen from
behind (hair, ears, neck marks). mediapipe's pose model (shipped in its
0.10.21 wheel) finds the most prominent person from the body, and its
segmentation mask outlines that person; this detector turns those into
``person`` regions, which the default policy holds for review.

A head-and-shoulders portrait with the face visible gives no person region:
its face is the face detectors' job, and flagging every portrait as a person
would hold every redacted face. A close-up of a limb gives none either:
pose sometimes "finds" a person in a close-up of skin (a leg, a back, a
rash), so a person whose box is mostly skin (``closeup_min_skin_frac``,
:func:`deid.evidence.skin_fraction`) is a close-up, not a person. A body in
a setting shows clothes, hair and background: on devdata's whole-body
photos at most 0.71 of the person box is skin, while the limb close-ups pose
called a whole body are 0.78-0.91 skin.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from deid.config import DetectorSettings
from deid.detect import OptionDefaults, read_options
from deid.detect.pose import VERSION as POSE_VERSION
from deid.detect.pose import shared_estimator
from deid.evidence import skin_fraction
from deid.types import Box, Region, RegionKind, RGBImage

# BlazePose landmark indices.
_FACE = (0, 1, 2, 3, 4, 5, 6, 9, 10)  # nose, eyes, mouth (ears are seen from behind too)
_EARS = (7, 8)
_SHOULDERS = (11, 12)
_HIPS = (23, 24)
_LEGS = (25, 26, 27, 28)  # knees, ankles


class MediapipePersonDetector:
    """Person regions from mediapipe pose landmarks and the pose segmentation mask.

    Parameters
    ----------
    settings
        Options: ``min_score`` (pose detection confidence), ``min_visibility``
        (per landmark), ``body_score`` (whole body visible),
        ``back_score`` (shoulders and head without a face: seen from behind),
        ``margin_frac`` (grows the landmark box), ``segmentation``
        (use the pose mask to outline the person) and
        ``closeup_min_skin_frac`` (a person box at least this much skin is a
        close-up of skin: no region).

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    """

    name = "people.mediapipe"
    version = POSE_VERSION
    kinds = frozenset({RegionKind.PERSON})
    defaults: ClassVar[OptionDefaults] = {
        "min_score": 0.5,
        "min_visibility": 0.5,
        "body_score": 0.6,
        "back_score": 0.6,
        "margin_frac": 0.1,
        "segmentation": True,
        "closeup_min_skin_frac": 0.75,
    }

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        self._pose = shared_estimator(min_score=self.options["min_score"])  # one pose run per image, with faces.*

    def detect(self, image: RGBImage) -> list[Region]:
        """Return at most one person region (mediapipe pose follows one person)."""
        pose = self._pose.estimate(image)
        if pose is None:
            return []
        points = pose.points
        mask = pose.mask if self.options["segmentation"] else None
        seen = points[:, 2] >= self.options["min_visibility"]

        def all_seen(indices: tuple[int, ...]) -> bool:
            return bool(seen[list(indices)].all())

        def any_seen(indices: tuple[int, ...]) -> bool:
            return bool(seen[list(indices)].any())

        if all_seen(_SHOULDERS) and all_seen(_HIPS) and any_seen(_LEGS):
            score, note = self.options["body_score"], "whole body visible (pose: shoulders, hips and legs)"
        elif all_seen(_SHOULDERS) and any_seen(_EARS) and not any_seen(_FACE):
            score, note = self.options["back_score"], "person seen from behind (pose: head and shoulders, no face)"
        else:
            return []
        visible = points[seen]
        box = Box(
            int(np.floor(visible[:, 0].min())),
            int(np.floor(visible[:, 1].min())),
            int(np.ceil(visible[:, 0].max())) + 1,
            int(np.ceil(visible[:, 1].max())) + 1,
        ).expand(self.options["margin_frac"])
        if mask is not None:
            outline = person_outline(mask, box)
            if outline is not None:
                box = box.union(outline)
        box = box.clip(image.shape)
        if box.is_empty or skin_fraction(image, box) >= self.options["closeup_min_skin_frac"]:
            return []
        return [Region(RegionKind.PERSON, box, score, f"{self.name}@{self.version}", note)]


def person_outline(mask: np.ndarray[Any, Any], near: Box, *, threshold: float = 0.5) -> Box | None:
    """The bounding box of the mask's person pixels, when they overlap ``near`` (the landmarks)."""
    rows, columns = np.nonzero(mask > threshold)
    if rows.size == 0:
        return None
    outline = Box(int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)
    return outline if outline.intersection(near).area > 0 else None
