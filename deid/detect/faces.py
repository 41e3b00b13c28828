"""Face detection with mediapipe's BlazeFace models (short and full range).

mediapipe 0.10.21 ships both models inside its wheel, so nothing is fetched
at run time. The raw boxes are tight (brows to mouth); the devdata label
convention, and what must be covered, runs hairline to chin and ear to ear,
so each box is grown by ``expand_*`` fractions before it is returned.
"""

from __future__ import annotations

import threading
from typing import Any

import mediapipe as mp

from deid.config import DetectorSettings
from deid.errors import ConfigError
from deid.types import Box, Region, RegionKind, RGBImage

_OPTIONS = {"min_score": 0.3, "expand_side_frac": 0.15, "expand_top_frac": 0.35, "expand_bottom_frac": 0.1}


def read_options(settings: DetectorSettings, defaults: dict[str, float], name: str) -> dict[str, float]:
    """Merge a detector's options over its defaults, refusing unknown or non-numeric ones.

    Raises
    ------
    ConfigError
        If an option is unknown or not a number.
    """
    unknown = sorted(set(settings.options) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for detector {name}",
            hint=f"valid options: {', '.join(sorted(defaults))}",
        )
    merged = dict(defaults)
    for key, value in settings.options.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"option {key!r} of detector {name} must be a number", hint=f"default is {defaults[key]}")
        merged[key] = float(value)
    return merged


class MediapipeFaceDetector:
    """Faces from mediapipe face detection, short-range and full-range models merged.

    Parameters
    ----------
    settings
        Options: ``min_score`` (model confidence floor) and the ``expand_*``
        fractions that grow a tight box to the whole face.

    Raises
    ------
    ConfigError
        On an unknown or non-numeric option.
    """

    name = "faces.mediapipe"
    version = f"mediapipe-{mp.__version__}"
    kinds = frozenset({RegionKind.FACE})

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), _OPTIONS, self.name)
        floor = self.options["min_score"]
        face_detection: Any = mp.solutions.face_detection
        self._models = [
            face_detection.FaceDetection(model_selection=0, min_detection_confidence=floor),
            face_detection.FaceDetection(model_selection=1, min_detection_confidence=floor),
        ]
        # mediapipe graphs are not re-entrant; Prefect may call from threads.
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[Region]:
        """Return whole-face boxes in ``image`` pixels."""
        height, width = image.shape[:2]
        regions: list[Region] = []
        with self._lock:
            results = [model.process(image) for model in self._models]
        for label, result in zip(("short", "full"), results, strict=True):
            for detection in result.detections or []:
                rel = detection.location_data.relative_bounding_box
                box = self._whole_face(rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height)
                box = box.clip(image.shape)
                if not box.is_empty:
                    regions.append(
                        Region(
                            RegionKind.FACE,
                            box,
                            float(detection.score[0]),
                            f"{self.name}@{self.version}",
                            f"mediapipe {label}-range face",
                        )
                    )
        return regions

    def _whole_face(self, x: float, y: float, w: float, h: float) -> Box:
        side, top, bottom = (self.options[k] for k in ("expand_side_frac", "expand_top_frac", "expand_bottom_frac"))
        return Box.from_xywh(x - side * w, y - top * h, w * (1 + 2 * side), h * (1 + top + bottom))
