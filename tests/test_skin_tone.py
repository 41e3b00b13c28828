"""Skin tone estimate: ITA bands on generated colour patches, checked with scikit-image's CIELAB."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.color import lab2rgb, rgb2lab

from deid.errors import InputError
from deid.skin_tone import SkinToneBand, band_for_ita, estimate_skin_tone, rgb_to_lab, skin_mask
from deid.types import RGBImage


def patch_for_ita(ita_degrees: float, *, b_star: float = 18.0, a_star: float = 12.0, size: int = 40) -> RGBImage:
    """A uniform patch whose CIELAB colour has the given ITA (L* = 50 + b* tan(ITA)), via scikit-image."""
    lightness = 50.0 + b_star * math.tan(math.radians(ita_degrees))
    rgb = lab2rgb(np.array([[[lightness, a_star, b_star]]]))
    colour = np.clip(np.round(rgb[0, 0] * 255), 0, 255).astype(np.uint8)
    return np.broadcast_to(colour, (size, size, 3)).copy()


@pytest.mark.parametrize(
    ("ita", "band"),
    [
        pytest.param(62.0, SkinToneBand.VERY_LIGHT, id="very-light"),
        pytest.param(48.0, SkinToneBand.LIGHT, id="light"),
        pytest.param(34.5, SkinToneBand.INTERMEDIATE, id="intermediate"),
        pytest.param(19.0, SkinToneBand.TAN, id="tan"),
        pytest.param(-10.0, SkinToneBand.BROWN, id="brown"),
        pytest.param(-45.0, SkinToneBand.DARK, id="dark"),
    ],
)
def test_generated_patches_land_in_their_band(ita: float, band: SkinToneBand) -> None:
    patch = patch_for_ita(ita)
    estimate = estimate_skin_tone(patch)
    assert estimate.band is band
    assert estimate.ita_degrees == pytest.approx(ita, abs=1.5)  # uint8 rounding moves the angle a little
    assert estimate.skin_fraction == 1.0
    assert estimate.is_estimate and "ita" in estimate.method


@pytest.mark.parametrize(
    ("ita", "band"),
    [(55.01, "very_light"), (55.0, "light"), (41.0, "intermediate"), (28.0, "tan"), (10.0, "brown"), (-30.0, "dark")],
)
def test_band_edges(ita: float, band: str) -> None:
    assert band_for_ita(ita) == band


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_lab_conversion_matches_scikit_image(colour: tuple[int, int, int]) -> None:
    pixel = np.array([[colour]], dtype=np.uint8)
    assert np.allclose(rgb_to_lab(pixel), rgb2lab(pixel), atol=0.02)


def test_redaction_fill_is_not_skin_even_when_skin_coloured() -> None:
    skin = patch_for_ita(-10.0)
    light = patch_for_ita(62.0)
    image = np.concatenate([skin, light], axis=1)  # half brown skin, half a light "fill"
    fill = tuple(int(v) for v in light[0, 0])
    estimate = estimate_skin_tone(image, fill_rgb=fill)
    assert estimate.band is SkinToneBand.BROWN
    assert estimate.skin_fraction == pytest.approx(0.5)


def test_black_fill_and_background_are_excluded_by_the_colour_rule() -> None:
    image = np.zeros((60, 60, 3), dtype=np.uint8)
    image[:, :, 2] = 200  # blue background
    image[20:40, 20:40] = patch_for_ita(34.5, size=20)
    image[:10, :10] = 0  # black redaction
    mask = skin_mask(image)
    assert mask.sum() == 400
    assert estimate_skin_tone(image).band is SkinToneBand.INTERMEDIATE


def test_too_little_skin_is_undetermined() -> None:
    blue = np.zeros((50, 50, 3), dtype=np.uint8)
    blue[..., 2] = 255
    estimate = estimate_skin_tone(blue)
    assert estimate.band is SkinToneBand.UNDETERMINED
    assert estimate.ita_degrees is None
    assert estimate.to_json()["band"] == "undetermined"


def test_explicit_mask_is_used() -> None:
    image = np.concatenate([patch_for_ita(62.0), patch_for_ita(-45.0)], axis=1)
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[:, 40:] = True
    assert estimate_skin_tone(image, mask).band is SkinToneBand.DARK


def test_large_images_are_sampled() -> None:
    image = np.broadcast_to(patch_for_ita(19.0)[0, 0], (2000, 1500, 3)).copy()
    assert estimate_skin_tone(image, max_pixels=100_000).band is SkinToneBand.TAN


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10, 4), dtype=np.uint8),
    ],
)
def test_bad_input_raises(pixels: RGBImage) -> None:
    with pytest.raises(InputError):
        estimate_skin_tone(pixels)


def test_mask_shape_must_match() -> None:
    with pytest.raises(InputError, match="mask"):
        estimate_skin_tone(np.zeros((10, 10, 3), dtype=np.uint8), np.ones((5, 5), dtype=bool))


def test_real_photo_gives_a_plausible_estimate() -> None:
    """skimage.data.astronaut(): a portrait of a light-skinned person in a white suit before a flag."""
    from skimage import data

    estimate = estimate_skin_tone(data.astronaut())
    assert 0.05 < estimate.skin_fraction < 0.6
    assert estimate.band in {SkinToneBand.VERY_LIGHT, SkinToneBand.LIGHT}
