"""Fixtures for the matching tests: real photos from skimage.data and the default [match] settings."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from deid.config import Config, MatchSettings
from deid.types import RGBImage


@pytest.fixture(scope="session")
def settings(config: Config) -> MatchSettings:
    """The shipped ``[match]`` settings."""
    return config.match


@pytest.fixture(scope="session")
def photos() -> dict[str, RGBImage]:
    """Real, unrelated colour photos (skimage.data), keyed by name."""
    return {
        "astronaut": np.ascontiguousarray(data.astronaut()),
        "coffee": np.ascontiguousarray(data.coffee()),
        "chelsea": np.ascontiguousarray(data.chelsea()),
        "rocket": np.ascontiguousarray(data.rocket()),
        "camera": np.ascontiguousarray(np.stack([data.camera()] * 3, axis=2)),
    }
