"""Detectors load their models once per test session (mediapipe graphs and ONNX sessions are slow to build)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import skimage.data

from deid.config import DetectorSettings
from deid.detect import DETECTORS, Detector
from deid.types import Box, RGBImage

ASTRONAUT_FACE = Box(175, 50, 275, 180)
"""Eileen Collins' face in ``skimage.data.astronaut()`` (512 x 512), forehead to chin, drawn by eye."""

_BUILT: dict[str, Detector] = {}


def get_detector(name: str) -> Detector:
    """The registered detector ``name`` with its default options, built once per session."""
    if name not in _BUILT:
        _BUILT[name] = DETECTORS[name](DetectorSettings())
    return _BUILT[name]


@pytest.fixture(scope="session")
def detector_named() -> Callable[[str], Detector]:
    """Factory fixture: ``detector_named("faces.ensemble")``."""
    return get_detector


@pytest.fixture(scope="session")
def astronaut() -> RGBImage:
    """A real portrait (NASA photo shipped with scikit-image), read-only so a write would raise."""
    image = np.ascontiguousarray(skimage.data.astronaut())
    image.setflags(write=False)
    return image
