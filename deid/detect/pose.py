"""One mediapipe pose estimate per image, shared by the detectors that read it.

``faces.landmarks`` (heads on shoulders) and ``people.mediapipe`` (whole
bodies, people from behind) both read BlazePose's landmarks. Each used to run
its own pose model on the same detection copy; now both ask
:func:`shared_estimator` for an estimator and :meth:`PoseEstimator.estimate`
runs the model once per image (the last image is kept by identity: detectors
never change the image they are given, see :class:`deid.detect.Detector`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import mediapipe as mp
import numpy as np

from deid.types import RGBImage

VERSION = f"mediapipe-pose-{mp.__version__}"


@dataclass(frozen=True)
class PoseEstimate:
    """BlazePose's answer for one image.

    Attributes
    ----------
    points
        ``(33, 3)`` landmarks: x and y in the image's pixels, then visibility (0-1).
    mask
        Person segmentation in the image's pixels (0-1), when the model gave one.
    """

    points: np.ndarray[Any, Any]
    mask: np.ndarray[Any, Any] | None


class PoseEstimator:
    """mediapipe pose (the full landmark model the wheel ships), static images, with segmentation."""

    def __init__(self, *, min_score: float) -> None:
        pose: Any = mp.solutions.pose
        self._model = pose.Pose(
            static_image_mode=True,
            model_complexity=1,  # the wheel ships pose_landmark_full only
            enable_segmentation=True,
            min_detection_confidence=min_score,
        )
        # mediapipe graphs are not re-entrant; Prefect may call from threads.
        self._lock = threading.Lock()
        self._last: tuple[RGBImage, PoseEstimate | None] | None = None

    def estimate(self, image: RGBImage) -> PoseEstimate | None:
        """The pose of the person in ``image`` (``None`` when there is none), computed once per image."""
        with self._lock:
            if self._last is not None and self._last[0] is image:
                return self._last[1]
            result = self._model.process(np.ascontiguousarray(image))
            estimate = None
            if result.pose_landmarks is not None:
                height, width = image.shape[:2]
                points = np.array([[p.x * width, p.y * height, p.visibility] for p in result.pose_landmarks.landmark])
                mask = None if result.segmentation_mask is None else np.array(result.segmentation_mask)
                estimate = PoseEstimate(points, mask)
            self._last = (image, estimate)
            return estimate


_SHARED: dict[float, PoseEstimator] = {}
_SHARED_LOCK = threading.Lock()


def shared_estimator(*, min_score: float) -> PoseEstimator:
    """The process's pose estimator for this detection confidence (built on first use)."""
    with _SHARED_LOCK:
        if min_score not in _SHARED:
            _SHARED[min_score] = PoseEstimator(min_score=min_score)
        return _SHARED[min_score]
