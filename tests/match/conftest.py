"""Fixtures for the matching tests: real photos from skimage.data and the default [match] settings."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from deid.config import Config, MatchSettings
from deid.errors import UnreadableImage
from deid.match import MemoryMatchIndex, ReferenceLoader, compute_fingerprints
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


@pytest.fixture(scope="session")
def public(photos: dict[str, RGBImage], settings: MatchSettings) -> MemoryMatchIndex:
    """A public index of three of the photos, as ``atlas/<name>.png`` (matching never changes it)."""
    index = MemoryMatchIndex()
    for name in ("astronaut", "coffee", "rocket"):
        index.add(f"atlas/{name}.png", compute_fingerprints(photos[name], settings))
    return index


def loader(photos: dict[str, RGBImage]) -> ReferenceLoader:
    """Loads ``…/<name>.<ext>`` from ``photos``; a name not there is an unreadable reference."""

    def load(reference: str) -> RGBImage:
        name = reference.rsplit("/", 1)[-1].split(".")[0]
        if name not in photos:
            raise UnreadableImage("gone", path=reference)
        return photos[name]

    return load
