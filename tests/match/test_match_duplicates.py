"""Duplicate clustering within a batch and against earlier releases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from deid.config import MatchSettings
from deid.match import MemoryMatchIndex, cluster_duplicates, compute_fingerprints
from deid.types import RGBImage


def resized(pixels: RGBImage, factor: float) -> RGBImage:
    image = Image.fromarray(pixels)
    return np.asarray(image.resize((round(image.width * factor), round(image.height * factor))))


@pytest.fixture
def batch(photos: dict[str, RGBImage], settings: MatchSettings) -> dict[str, object]:
    items = {
        "c1": photos["chelsea"],
        "a1": photos["astronaut"],
        "c2": resized(photos["chelsea"], 0.5),
        "r1": photos["rocket"],
        "a2": np.ascontiguousarray(np.rot90(resized(photos["astronaut"], 1.5))),
        "c3": np.ascontiguousarray(photos["chelsea"][:, ::-1]),
    }
    return {key: compute_fingerprints(pixels, settings) for key, pixels in items.items()}


def test_keep_first(batch: dict[str, object], settings: MatchSettings) -> None:
    clusters = cluster_duplicates(batch, dataclasses.replace(settings, keep_duplicate="first"))  # type: ignore[arg-type]
    assert [(c.kept, c.excluded) for c in clusters] == [("c1", ("c2", "c3")), ("a1", ("a2",))]
    assert all(not c.released for c in clusters)
    assert {item for c in clusters for item, _ in c.matches} == {"c2", "c3", "a2"}
    assert clusters[0].to_json()["kept"] == "c1"


def test_keep_largest(batch: dict[str, object], settings: MatchSettings) -> None:
    clusters = cluster_duplicates(batch, dataclasses.replace(settings, keep_duplicate="largest"))  # type: ignore[arg-type]
    kept = {c.kept: set(c.excluded) for c in clusters}
    assert kept == {"c1": {"c2", "c3"}, "a2": {"a1"}}  # c1 and c3 tie on size: the earlier wins


def test_against_an_earlier_release(
    batch: dict[str, object], photos: dict[str, RGBImage], settings: MatchSettings
) -> None:
    released = MemoryMatchIndex()
    released.add("release-1/img-7f3a.png", compute_fingerprints(resized(photos["rocket"], 0.7), settings))
    clusters = cluster_duplicates(batch, settings, release_index=released)  # type: ignore[arg-type]
    prior = [c for c in clusters if c.released]
    assert [(c.kept, c.excluded) for c in prior] == [("release-1/img-7f3a.png", ("r1",))]


def test_nothing_to_cluster(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    items = {name: compute_fingerprints(pixels, settings) for name, pixels in photos.items()}
    assert cluster_duplicates(items, settings) == []
    assert cluster_duplicates({}, settings) == []
