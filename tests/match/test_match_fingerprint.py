"""Fingerprints: imagehash-compatible pHash, dihedral views, border trimming, JSON round trip."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from deid.config import MatchSettings
from deid.errors import InputError
from deid.match import Fingerprints, compute_fingerprints
from deid.match.fingerprint import TRANSFORMS, find_content_box, thumbnail
from deid.types import Box, Fingerprint, RGBImage


def smooth_image(seed: int, height: int, width: int) -> RGBImage:
    """A smooth random photo-like image (random coarse grid, bicubic upscaled)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def test_full_window_is_imagehash_phash(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    """The indexed pHash is bit-for-bit imagehash's, so hashes from other tools interoperate."""
    for pixels in photos.values():
        prints = compute_fingerprints(pixels, settings)
        small = Image.fromarray(thumbnail(pixels, settings.thumbnail_side_px))
        expected = str(imagehash.phash(small))
        assert prints.windows[0] == Fingerprint("phash:full", expected)
        assert prints.hash("phash").hex == expected
        assert {f.method for f in prints.hashes} == {"phash", "dhash", "whash", "colorhash"}


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_dihedral_copy_has_a_view_near_the_original(
    transform: str, photos: dict[str, RGBImage], settings: MatchSettings
) -> None:
    """A rotated or mirrored copy has one query view within a few bits of the original's full window."""
    original = compute_fingerprints(photos["astronaut"], settings)
    copy = compute_fingerprints(np.ascontiguousarray(TRANSFORMS[transform](photos["astronaut"])), settings)
    best = min(view.distance(Fingerprint(view.method, original.windows[0].hex)) for view in copy.views)
    assert best <= 4


@given(seed=st.integers(0, 2**32 - 1), height=st.integers(40, 200), width=st.integers(40, 200), k=st.integers(0, 3))
@hypothesis_settings(max_examples=25, deadline=None)
def test_rotation_property(seed: int, height: int, width: int, k: int, settings: MatchSettings) -> None:
    """For any smooth image and any quarter turn, some view of the turned copy is within 6 bits of the original."""
    image = smooth_image(seed, height, width)
    original = compute_fingerprints(image, settings).windows[0]
    turned = compute_fingerprints(np.ascontiguousarray(np.rot90(image, k)), settings)
    assert min(int(view.distance(Fingerprint(view.method, original.hex))) for view in turned.views) <= 6


@given(seed=st.integers(0, 2**32 - 1))
@hypothesis_settings(max_examples=15, deadline=None)
def test_json_round_trip(seed: int, settings: MatchSettings) -> None:
    """Fingerprints survive the ledger's JSON form unchanged."""
    prints = compute_fingerprints(smooth_image(seed, 64, 96), settings)
    assert Fingerprints.from_json(prints.to_json()) == prints


def test_from_json_refuses_garbage() -> None:
    with pytest.raises(InputError):
        Fingerprints.from_json({"width": 1, "height": 1, "hashes": {"phash": "not hex"}, "windows": {}, "views": {}})
    with pytest.raises(InputError):
        Fingerprints.from_json({"width": 1})


@pytest.mark.parametrize(
    ("top", "bottom", "left", "right"),
    [
        pytest.param(20, 20, 20, 20, id="uniform-border"),
        pytest.param(0, 40, 0, 0, id="caption-band"),
        pytest.param(60, 60, 0, 0, id="letterbox"),
        pytest.param(0, 0, 0, 0, id="none"),
    ],
)
def test_find_content_box(top: int, bottom: int, left: int, right: int, photos: dict[str, RGBImage]) -> None:
    """Borders, caption bands and letterbox padding are found; a plain photo is left whole."""
    photo = thumbnail(photos["chelsea"], 200)
    height, width = photo.shape[:2]
    canvas = np.full((height + top + bottom, width + left + right, 3), 250, dtype=np.uint8)
    canvas[top : top + height, left : left + width] = photo
    if bottom >= 40:  # caption text in the band
        canvas[top + height + 15 : top + height + 22, 10:120:3] = 0
    box = find_content_box(canvas)
    expected = Box(left, top, left + width, top + height)
    assert abs(box.left - expected.left) <= 2 and abs(box.right - expected.right) <= 2
    assert abs(box.top - expected.top) <= 2 and abs(box.bottom - expected.bottom) <= 3


def test_refuses_non_rgb(settings: MatchSettings) -> None:
    with pytest.raises(InputError):
        compute_fingerprints(np.zeros((10, 10), dtype=np.uint8), settings)
    with pytest.raises(InputError):
        compute_fingerprints(np.zeros((10, 10, 3), dtype=np.float32), settings)  # type: ignore[arg-type]
