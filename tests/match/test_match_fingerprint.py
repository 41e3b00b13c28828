"""Fingerprints: imagehash-compatible pHash, dihedral views, border trimming, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

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


def noisy_photo(seed: int, height: int, width: int, *, low: int = 0, high: int = 255) -> RGBImage:
    """A smooth random photo with sensor-like noise, its levels squeezed into ``low..high``."""
    smooth = smooth_image(seed, height, width).astype(np.float64)
    noise = np.random.default_rng(seed + 1).normal(0.0, 2.0, smooth.shape)
    return np.clip(low + smooth * (high - low) / 255.0 + noise, 0, 255).astype(np.uint8)


def screenshot(photo: RGBImage, *, canvas_height: int) -> tuple[RGBImage, Box]:
    """A phone screenshot: the photo centred on a dark canvas, a status bar's text above, a toolbar below."""
    height, width = photo.shape[:2]
    canvas = Image.new("RGB", (width, canvas_height), (18, 18, 18))
    top = (canvas_height - height) // 2
    canvas.paste(Image.fromarray(photo), (0, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), "12:41  4G  87%", fill=(230, 230, 230))
    draw.rectangle((0, canvas_height - 40, width, canvas_height), fill=(40, 40, 40))
    draw.text((8, canvas_height - 28), "Share   Edit   Delete", fill=(230, 230, 230))
    return np.asarray(canvas), Box(0, top, width, top + height)


def captioned(photo: RGBImage, *, below: bool, text: str = "Dermatology atlas fig. 12") -> tuple[RGBImage, Box]:
    """The photo with a white caption band of black text above or below it.

    Words are dropped from the end of ``text`` until it spans at most 60 % of
    the width: a line of text is crossed only if most of it is still the band.
    """
    height, width = photo.shape[:2]
    band = max(24, height // 8)
    canvas = Image.new("RGB", (width, height + band), "white")
    top = 0 if below else band
    canvas.paste(Image.fromarray(photo), (0, top))
    draw = ImageDraw.Draw(canvas)
    words = text.split()
    while len(words) > 1 and draw.textlength(" ".join(words)) > 0.6 * width:
        words.pop()
    draw.text((8, (height if below else 0) + band // 3), " ".join(words), fill="black")
    return np.asarray(canvas), Box(0, top, width, top + height)


def bordered(photo: RGBImage, *, border_px: int, colour: int) -> tuple[RGBImage, Box]:
    """The photo inside a solid border of grey level ``colour``."""
    height, width = photo.shape[:2]
    canvas = np.full((height + 2 * border_px, width + 2 * border_px, 3), colour, dtype=np.uint8)
    canvas[border_px : border_px + height, border_px : border_px + width] = photo
    return canvas, Box(border_px, border_px, border_px + width, border_px + height)


PADDINGS = ("screenshot", "caption_above", "caption_below", "white_border", "black_border")


def pad(photo: RGBImage, padding: str, *, seed: int = 0) -> tuple[RGBImage, Box]:
    """``photo`` padded the way copies found online are (see ``PADDINGS``)."""
    height, width = photo.shape[:2]
    if padding == "screenshot":
        return screenshot(photo, canvas_height=max(round(width * (1.8 + 0.4 * (seed % 5) / 4)), height + 80))
    if padding.startswith("caption"):
        return captioned(photo, below=padding == "caption_below")
    border_px = max(4, width // (12 + seed % 14))
    return bordered(photo, border_px=border_px, colour=255 if padding == "white_border" else 0)


def trim_thumbnail(pixels: RGBImage) -> RGBImage:
    """The 128 px copy :func:`compute_fingerprints` trims on (by way of the default 256 px hashing copy)."""
    return thumbnail(thumbnail(pixels, 256), 128)


def trim_error_px(canvas: RGBImage, truth: Box) -> float:
    """How far (in pixels of the 128 px copy the fingerprints trim on) the found box is from ``truth``."""
    small = trim_thumbnail(canvas)
    scale_y, scale_x = small.shape[0] / canvas.shape[0], small.shape[1] / canvas.shape[1]
    found = find_content_box(small)
    return max(
        abs(found.left - truth.left * scale_x),
        abs(found.top - truth.top * scale_y),
        abs(found.right - truth.right * scale_x),
        abs(found.bottom - truth.bottom * scale_y),
    )


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


@pytest.mark.parametrize("padding", PADDINGS)
def test_padding_is_trimmed_to_the_photo(padding: str, photos: dict[str, RGBImage]) -> None:
    """Screenshot canvas (status bar and toolbar text), caption bands and borders come off to within 2 px."""
    for name, photo in photos.items():
        canvas, truth = pad(photo, padding)
        assert trim_error_px(canvas, truth) <= 2, name


@given(
    seed=st.integers(0, 2**32 - 2),
    padding=st.sampled_from(PADDINGS),
    tone=st.sampled_from([(0, 255), (8, 48), (200, 245)]),
    height=st.integers(150, 480),
    width=st.integers(240, 480),
)
@hypothesis_settings(max_examples=40, deadline=None)
def test_padding_is_trimmed_even_when_the_photo_edge_is_close_to_it(
    seed: int, padding: str, tone: tuple[int, int], height: int, width: int
) -> None:
    """A night shot on a dark canvas or black border, an overcast sky under a white caption: still within 2 px."""
    photo = noisy_photo(seed, height, width, low=tone[0], high=tone[1])
    canvas, truth = pad(photo, padding, seed=seed)
    assert trim_error_px(canvas, truth) <= 2


def test_unpadded_photos_are_not_trimmed(photos: dict[str, RGBImage]) -> None:
    """A photo's own smooth sky or dark corner is not padding: the box stays the whole image."""
    for name, photo in photos.items():
        small = trim_thumbnail(photo)
        assert find_content_box(small) == Box(0, 0, small.shape[1], small.shape[0]), name
    for seed in range(20):
        for low, high in [(0, 255), (8, 48), (200, 245)]:
            small = trim_thumbnail(noisy_photo(seed, 240, 320, low=low, high=high))
            assert find_content_box(small) == Box(0, 0, small.shape[1], small.shape[0]), (seed, low)


def test_trimmed_view_of_a_screenshot_matches_the_original(
    photos: dict[str, RGBImage], settings: MatchSettings
) -> None:
    """The trimmed query view of a screenshot is within a few bits of the original's full window."""
    for name, photo in photos.items():
        original = compute_fingerprints(photo, settings).windows[0]
        canvas, _ = screenshot(photo, canvas_height=2 * photo.shape[1])
        views = {view.method: view for view in compute_fingerprints(canvas, settings).views}
        assert views["phash:trim:identity"].distance(Fingerprint("phash:trim:identity", original.hex)) <= 4, name


@pytest.mark.devdata
def test_padded_devdata_photos_trim_to_the_photo(devdata: Path) -> None:
    """Every neardup photo, padded every way, trims to the photo or to the photo's own trim, within 2 px.

    A product shot on a pure white ground loses that ground with a white
    caption or border, as it does unpadded: the same box either way.
    """
    files = sorted((devdata / "neardup").glob("*.jpg"))
    assert files
    for path in files:
        photo = np.asarray(Image.open(path).convert("RGB"))
        small = trim_thumbnail(photo)
        own = find_content_box(small)
        assert own.width * own.height >= 0.85 * small.shape[0] * small.shape[1], path.name
        fy, fx = photo.shape[0] / small.shape[0], photo.shape[1] / small.shape[1]
        for padding in PADDINGS:
            for seed in (0, 7):
                canvas, truth = pad(photo, padding, seed=seed)
                own_truth = Box(
                    round(truth.left + own.left * fx),
                    round(truth.top + own.top * fy),
                    round(truth.left + own.right * fx),
                    round(truth.top + own.bottom * fy),
                )
                error = min(trim_error_px(canvas, truth), trim_error_px(canvas, own_truth))
                assert error <= 2, (path.name, padding, seed, error)
