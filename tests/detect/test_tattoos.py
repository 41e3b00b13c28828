"""Tests for :mod:`deid.detect.tattoos` on generated skin and on devdata.

The generated cases paint ink onto a synthetic skin texture the way light
works: each ink multiplies the skin by its own RGB transmission (carbon
black passes a little more blue than red, melanin passes red, gentian violet
passes red and blue). Every case knows where it drew, so each asserts both
"found or not" and where.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deid.config import DetectorSettings, load_config
from deid.detect import DETECTORS, build_detectors, detect_regions
from deid.detect.tattoos import (
    _OPTIONS,
    FEATURE_NAMES,
    MODEL_FILE,
    MODEL_SCHEMA,
    InkFeatures,
    InkModel,
    InkTattooDetector,
    _skeleton,
    _skin_mask,
    _tone_to,
)
from deid.errors import ConfigError, InputError
from deid.evaluate import devdata_split
from deid.io import load_image
from deid.types import Box, Region, RegionKind, RGBImage

FloatImage = npt.NDArray[np.float32]
Case = tuple[RGBImage, Box]

BLACK_INK = (0.28, 0.31, 0.36)
MELANIN = (0.5, 0.33, 0.22)
GENTIAN_VIOLET = (0.55, 0.3, 0.6)


def make_skin(rgb: tuple[int, int, int], seed: int, shape: tuple[int, int] = (480, 640)) -> FloatImage:
    """Skin of colour ``rgb`` with soft shading, a curved limb's falloff and pores."""
    rng = np.random.default_rng(seed)
    height, width = shape
    low = np.asarray(cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 40), np.float32)
    low = low / (float(np.abs(low).max()) + 1e-6)
    across = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    pores = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 1.2) * 0.03
    shade = 1.0 + 0.07 * low - 0.08 * across**2 + pores
    skin: FloatImage = (
        np.asarray(rgb, np.float32)[None, None, :] * shade[..., None] * np.ones((height, width, 1), np.float32)
    )
    return skin


def add_ink(
    skin: FloatImage, mask: npt.NDArray[np.generic], transmission: tuple[float, float, float], *, blur: float = 1.0
) -> FloatImage:
    """Multiply ``skin`` by ``transmission`` where ``mask`` is 1 (softened by ``blur`` px)."""
    weight = mask.astype(np.float32)
    if blur:
        weight = np.asarray(cv2.GaussianBlur(weight, (0, 0), blur), np.float32)
    inked: FloatImage = skin * (1 - weight[..., None] * (1 - np.asarray(transmission, np.float32)))
    return inked


def to_image(pixels: FloatImage) -> RGBImage:
    return np.clip(pixels, 0, 255).astype(np.uint8)


def mask_box(*masks: npt.NDArray[np.uint8]) -> Box:
    """The box around everything drawn in ``masks``."""
    ys, xs = np.nonzero(np.logical_or.reduce(masks))
    return Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def lettering_tattoo() -> Case:
    """A name and a year in serif capitals, black ink on light skin."""
    mask = np.zeros((480, 640), np.uint8)
    cv2.putText(mask, "Maria 1987", (110, 260), cv2.FONT_HERSHEY_TRIPLEX, 2.0, (1,), 3, cv2.LINE_AA)
    return to_image(add_ink(make_skin((224, 172, 150), 1), mask, BLACK_INK)), mask_box(mask)


def coloured_tattoo() -> Case:
    """A flower: red petals, green leaves, a blue swirl, outlined in dark green ink (no black)."""
    skin = make_skin((230, 185, 160), 2)
    petals, leaves, swirl, outline = (np.zeros((480, 640), np.uint8) for _ in range(4))
    cx, cy = 320, 230
    for k in range(5):
        angle = k * 2 * np.pi / 5
        centre = (int(cx + 35 * np.cos(angle)), int(cy + 35 * np.sin(angle)))
        cv2.ellipse(petals, centre, (32, 20), float(np.degrees(angle)), 0, 360, (1,), -1)
        cv2.ellipse(outline, centre, (32, 20), float(np.degrees(angle)), 0, 360, (1,), 2)
    for side in (-1, 1):
        leaf = np.array(
            [
                [cx + side * 60, cy + 60],
                [cx + side * 110, cy + 100],
                [cx + side * 150, cy + 90],
                [cx + side * 110, cy + 60],
            ],
            np.int32,
        )
        cv2.fillPoly(leaves, [leaf], (1,))
        cv2.polylines(outline, [leaf], True, (1,), 2)
    cv2.line(outline, (cx, cy + 20), (cx, cy + 150), (1,), 4)
    wave = np.array([[cx - 160 + 40 * i, cy - 100 - (30 if i % 2 else 0)] for i in range(9)], np.int32)
    cv2.polylines(swirl, [wave], False, (1,), 4)
    pixels = add_ink(skin, petals, (0.85, 0.3, 0.35))
    pixels = add_ink(pixels, leaves, (0.45, 0.8, 0.55))
    pixels = add_ink(pixels, swirl, (0.25, 0.45, 0.8))
    pixels = add_ink(pixels, outline, (0.2, 0.45, 0.3))
    return to_image(pixels), mask_box(petals, leaves, swirl, outline)


def dark_skin_dark_ink() -> Case:
    """Tribal zigzags and a ring in faded black ink on dark brown skin (low contrast)."""
    mask = np.zeros((480, 640), np.uint8)
    for row in range(4):
        y = 170 + 45 * row
        points = np.array([[160 + 40 * i, y + (18 if i % 2 else -18)] for i in range(9)], np.int32)
        cv2.polylines(mask, [points], False, (1,), 7)
    cv2.circle(mask, (320, 270), 55, (1,), 5)
    return to_image(add_ink(make_skin((96, 64, 48), 3), mask, (0.45, 0.5, 0.55))), mask_box(mask)


def solid_blackwork() -> Case:
    """Solid black tribal shapes with spikes, no linework (found by the coarse fill pass)."""
    mask = np.zeros((480, 640), np.uint8)
    for centre_x in (240, 400):
        spikes = [
            (centre_x + 70 * np.cos(a) * (1.6 if k % 2 else 0.6), 240 + 70 * np.sin(a) * (1.6 if k % 2 else 0.6))
            for k, a in enumerate(np.linspace(0, 2 * np.pi, 10, endpoint=False))
        ]
        cv2.fillPoly(mask, [np.array(spikes, np.int32)], (1,))
    return to_image(add_ink(make_skin((205, 160, 120), 8), mask, BLACK_INK)), mask_box(mask)


def mole() -> Case:
    """A brown naevus and three freckles."""
    mask = np.zeros((480, 640), np.uint8)
    cv2.ellipse(mask, (300, 240), (16, 13), 20, 0, 360, (1,), -1)
    for x, y in [(150, 120), (470, 330), (420, 140)]:
        cv2.circle(mask, (x, y), 3, (1,), -1)
    return to_image(add_ink(make_skin((225, 180, 155), 4), mask, MELANIN, blur=2.0)), Box(280, 223, 320, 257)


def bruise() -> Case:
    """A purple core fading through a yellow rim, no sharp edge anywhere."""
    skin = make_skin((222, 178, 152), 5)
    ys, xs = np.mgrid[0:480, 0:640]
    core = np.exp(-(((xs - 330) / 90.0) ** 2 + ((ys - 240) / 65.0) ** 2))
    rim = np.clip(np.exp(-(((xs - 330) / 130.0) ** 2 + ((ys - 240) / 100.0) ** 2)) - core, 0, 1)
    pixels = add_ink(skin, core * 0.9, (0.62, 0.5, 0.7), blur=0)
    pixels = add_ink(pixels, rim * 0.7, (0.95, 0.9, 0.6), blur=0)
    return to_image(pixels), Box(200, 140, 460, 340)


def surgical_marker_outline() -> Case:
    """A hand-drawn gentian-violet ring around a pink-brown lesion (a pre-excision marking)."""
    skin = make_skin((226, 182, 158), 6)
    lesion = np.zeros((480, 640), np.uint8)
    cv2.ellipse(lesion, (320, 240), (30, 22), 0, 0, 360, (1,), -1)
    pixels = add_ink(skin, lesion, (0.75, 0.55, 0.45), blur=4)
    rng = np.random.default_rng(6)
    angles = np.linspace(0, 2 * np.pi, 60)
    radius = 95 + rng.normal(0, 3, angles.size).cumsum() * 0.3
    ring = np.stack([320 + 1.3 * radius * np.cos(angles), 240 + radius * np.sin(angles)], 1).astype(np.int32)
    marks = np.zeros((480, 640), np.uint8)
    cv2.polylines(marks, [ring], True, (1,), 3, cv2.LINE_AA)
    return to_image(add_ink(pixels, marks, GENTIAN_VIOLET)), Box(190, 130, 450, 350)


@pytest.fixture(scope="module")
def detector() -> InkTattooDetector:
    return InkTattooDetector()


def covered_fraction(regions: list[Region], box: Box) -> float:
    """Fraction of ``box`` covered by the union of the regions' boxes."""
    covered = np.zeros((box.bottom + 1, box.right + 1), bool)
    for region in regions:
        inner = region.box.intersection(box)
        covered[inner.top : inner.bottom, inner.left : inner.right] = True
    return float(covered[box.top : box.bottom, box.left : box.right].mean())


@pytest.mark.parametrize(
    "make_case",
    [
        pytest.param(lettering_tattoo, id="lettering"),
        pytest.param(coloured_tattoo, id="coloured"),
        pytest.param(dark_skin_dark_ink, id="dark-skin-dark-ink"),
        pytest.param(solid_blackwork, id="solid-blackwork"),
    ],
)
def test_tattoo_is_found_where_it_was_drawn(detector: InkTattooDetector, make_case: Callable[[], Case]) -> None:
    image, drawn = make_case()
    regions = detector.detect(image)
    assert regions, "tattoo not found"
    assert all(region.kind is RegionKind.TATTOO and 0.3 <= region.score <= 1.0 for region in regions)
    assert covered_fraction(regions, drawn) >= 0.7
    for region in regions:  # nothing proposed away from the ink
        assert drawn.expand(0.1).coverage_of(region.box) >= 0.9, region


@pytest.mark.parametrize(
    "make_case",
    [
        pytest.param(mole, id="mole"),
        pytest.param(bruise, id="bruise"),
        pytest.param(surgical_marker_outline, id="surgical-marker-outline"),
    ],
)
def test_skin_finding_is_not_a_tattoo(detector: InkTattooDetector, make_case: Callable[[], Case]) -> None:
    image, finding = make_case()
    assert detector.detect(image) == []
    # Not even a weak candidate group sits on the finding itself.
    assert all(group.score < 0.1 or group.box.iou(finding) == 0 for group in detector.analyse(image))


def brightened(image: RGBImage, gamma: float) -> RGBImage:
    """``image`` through a power-law tone curve (gamma < 1 lifts it: an over-exposed phone photo)."""
    return np.asarray(255.0 * (image / 255.0) ** gamma, np.uint8)


def faded_lettering() -> Case:
    """Thin lettering in faded blue-black ink on light skin."""
    mask = np.zeros((480, 640), np.uint8)
    cv2.putText(mask, "Maria 1987", (110, 260), cv2.FONT_HERSHEY_TRIPLEX, 2.0, (1,), 2, cv2.LINE_AA)
    return to_image(add_ink(make_skin((224, 172, 150), 1), mask, (0.585, 0.62, 0.65))), mask_box(mask)


def test_faint_ink_on_a_brightened_photo_is_found_by_the_second_look(detector: InkTattooDetector) -> None:
    """Lifting a photo's tone curve compresses every density: faded ink fell under the ink floor.

    The second look tones the copy back down to ``bright_skin_lightness``; with it off
    (the detector before it) this photo raised nothing.
    """
    image, drawn = faded_lettering()
    bright = brightened(image, 0.6)
    single = InkTattooDetector(DetectorSettings(options={"bright_skin_lightness": 0.0}))
    assert found_regions(single, bright) == []
    regions = found_regions(detector, bright)
    assert regions, "tattoo not found"
    assert covered_fraction(regions, drawn) >= 0.7
    for region in regions:
        assert drawn.expand(0.1).coverage_of(region.box) >= 0.9, region


@pytest.mark.parametrize("make_case", [mole, bruise, surgical_marker_outline], ids=["mole", "bruise", "marker"])
@pytest.mark.parametrize("gamma", [0.6, 0.45])
def test_brightened_skin_finding_is_not_a_tattoo(
    detector: InkTattooDetector, make_case: Callable[[], Case], gamma: float
) -> None:
    """The second look on a bright photo turns no mole, bruise or marker ring into ink."""
    image, _ = make_case()
    assert found_regions(detector, brightened(image, gamma)) == []


@settings(max_examples=200, deadline=None)
@given(lightness=st.floats(1.0, 254.0), target=st.floats(1.0, 254.0))
def test_tone_curve_takes_the_skin_to_its_target_and_keeps_order(lightness: float, target: float) -> None:
    curve = _tone_to(np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2), lightness, target)
    values = curve[..., 0].ravel().astype(int)
    assert np.all(np.diff(values) >= 0)  # a tone curve never swaps two grey levels
    assert values[0] == 0 and values[255] == 255
    # The grey levels either side of the skin's lightness land either side of the target (to rounding).
    assert values[int(np.floor(lightness))] <= target + 0.5
    assert values[int(np.ceil(lightness))] >= target - 0.5


def test_detect_does_not_mutate_and_maps_boxes_to_full_size(detector: InkTattooDetector) -> None:
    image, drawn = lettering_tattoo()
    large: RGBImage = np.asarray(cv2.resize(image, (2560, 1920), interpolation=cv2.INTER_CUBIC), np.uint8)
    before = large.copy()
    regions = detect_regions(large, [detector], max_side_px=1280)
    np.testing.assert_array_equal(large, before)
    scaled = Box(drawn.left * 4, drawn.top * 4, drawn.right * 4, drawn.bottom * 4)
    assert regions and covered_fraction(regions, scaled) >= 0.7


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.full((300, 400, 3), (205, 160, 135), np.uint8), id="plain-skin"),
        pytest.param(np.zeros((300, 400, 3), np.uint8), id="black"),
        pytest.param(np.full((20, 30, 3), 255, np.uint8), id="tiny-white"),
        pytest.param(to_image(make_skin((224, 172, 150), 7)), id="textured-skin"),
    ],
)
def test_nothing_found_on_empty_images(detector: InkTattooDetector, image: RGBImage) -> None:
    assert detector.detect(image) == []


@pytest.mark.parametrize(
    "skin_rgb",
    [
        pytest.param((240, 200, 180), id="fitzpatrick-I"),
        pytest.param((205, 160, 120), id="fitzpatrick-III"),
        pytest.param((150, 100, 70), id="fitzpatrick-V"),
        pytest.param((75, 50, 38), id="fitzpatrick-VI"),
    ],
)
def test_lettering_found_on_every_skin_tone(detector: InkTattooDetector, skin_rgb: tuple[int, int, int]) -> None:
    mask = np.zeros((480, 640), np.uint8)
    cv2.putText(mask, "Forever", (150, 260), cv2.FONT_HERSHEY_COMPLEX, 2.2, (1,), 4, cv2.LINE_AA)
    image = to_image(add_ink(make_skin(skin_rgb, 11), mask, BLACK_INK))
    regions = detector.detect(image)
    assert regions and covered_fraction(regions, mask_box(mask)) >= 0.7


def test_shipped_options_match_code_defaults() -> None:
    """default.toml lists every option with the value the code falls back to, so neither drifts."""
    shipped = load_config().detection.detectors["tattoos.ink"].options
    assert {key: float(value) for key, value in shipped.items()} == {
        key: float(value) for key, value in _OPTIONS.items()
    }


def test_registered_and_enabled_by_default() -> None:
    assert "tattoos.ink" in DETECTORS
    names = [detector.name for detector in build_detectors(load_config()) if RegionKind.TATTOO in detector.kinds]
    assert names == ["tattoos.ink"]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"no_such_option": 1.0}, id="unknown"),
        pytest.param({"min_score": "high"}, id="not-a-number"),
        pytest.param({"work_side_px": 32}, id="too-small"),
        pytest.param({"min_score": 1.5}, id="score-out-of-range"),
        pytest.param({"calibration_slope": 0.0}, id="calibration-slope-not-positive"),
        pytest.param({"calibration_offset": 50.0}, id="calibration-offset-out-of-range"),
        pytest.param({"greenness_low": 2.0, "greenness_high": 1.5}, id="greenness-ramp-reversed"),
        pytest.param({"shadow_low": 0.7}, id="shadow-ramp-reversed"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        InkTattooDetector(DetectorSettings(options=options))  # type: ignore[arg-type]


def noisy_grey(seed: int, *, sigma: float, blur: float, tint: tuple[int, int, int]) -> RGBImage:
    """A grey surface photographed in poor light: sensor noise, smeared into blotches by the JPEG-like blur."""
    rng = np.random.default_rng(seed)
    noise = np.asarray(cv2.GaussianBlur(rng.normal(0, sigma, (480, 640, 3)).astype(np.float32), (0, 0), blur))
    return to_image(np.asarray(tint, np.float32) + noise * (1 + blur))


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(noisy_grey(1, sigma=20, blur=0.7, tint=(128, 128, 128)), id="fine-noise"),
        pytest.param(noisy_grey(2, sigma=40, blur=1.5, tint=(128, 128, 128)), id="blotchy-noise"),
        pytest.param(noisy_grey(3, sigma=60, blur=3.0, tint=(135, 128, 120)), id="warm-blotchy-noise"),
        pytest.param(noisy_grey(4, sigma=30, blur=1.0, tint=(90, 90, 95)), id="dark-cool-noise"),
    ],
)
def test_noisy_grey_image_without_skin_raises_no_tattoo(detector: InkTattooDetector, image: RGBImage) -> None:
    """No skin colour anywhere, so no stroke can be ink in skin, however textured the noise."""
    assert detector.detect(image) == []


def test_black_and_white_picture_has_no_skin() -> None:
    """A picture without colour has no skin model (it used to get one, its chroma floored to 8).

    So no ink can be found in a black-and-white photo; the detector holds its whole frame instead (below).
    """
    image, _ = lettering_tattoo()
    grey = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert _skin_mask(grey, hue_deg=30.0, chroma_ratio=0.45) is None
    assert _skin_mask(image, hue_deg=30.0, chroma_ratio=0.45) is not None


def greyscale(image: RGBImage) -> RGBImage:
    """``image`` as a black-and-white photo: the same grey level in all three channels."""
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def test_black_and_white_photo_of_a_tattoo_is_held_whole_frame(detector: InkTattooDetector) -> None:
    """Without colour no skin can be found, so the tattoo cannot be located: the whole frame goes to a person.

    Before, a black-and-white photo raised nothing and its tattoo was released.
    """
    image, _ = lettering_tattoo()
    regions = found_regions(detector, greyscale(image))
    assert [region.box for region in regions] == [Box(0, 0, image.shape[1], image.shape[0])]
    review = load_config().policy.rule_for(RegionKind.TATTOO)
    assert review.review_score <= regions[0].score < review.min_score  # held for review, never auto-cleared
    assert "colourless photo" in regions[0].note


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.full((480, 640, 3), 128, np.uint8), id="blank-grey"),
        pytest.param(greyscale(noisy_grey(2, sigma=40, blur=1.5, tint=(128, 128, 128))), id="grey-blotchy-noise"),
        pytest.param(greyscale(noisy_grey(3, sigma=60, blur=3.0, tint=(128, 128, 128))), id="grey-coarse-noise"),
    ],
)
def test_colourless_frame_without_a_picture_raises_no_tattoo(detector: InkTattooDetector, image: RGBImage) -> None:
    """A blank frame or plain sensor noise in grey is not a photograph of anyone: nothing to hold."""
    assert detector.detect(image) == []


def test_colourless_hold_can_be_switched_off_and_keeps_colour_photos_out(detector: InkTattooDetector) -> None:
    """``colourless_score = 0`` restores the old silence; a colour photo never takes the colourless path."""
    image, _ = lettering_tattoo()
    off = InkTattooDetector(DetectorSettings(options={"colourless_score": 0.0}))
    assert off.detect(greyscale(image)) == []
    assert all("colourless" not in region.note for region in detector.detect(image))
    with pytest.raises(ConfigError, match="colourless_score"):
        InkTattooDetector(DetectorSettings(options={"colourless_score": 1.5}))


BLUE_CAST = (0.85, 1.0, 1.2)  # shade or window daylight a phone did not correct: red down, blue up


def with_cast(image: RGBImage, gains: tuple[float, float, float] = BLUE_CAST) -> RGBImage:
    """``image`` as if taken under a light of another colour: each channel scaled, saturating at 255."""
    return np.clip(image.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


def test_skin_is_found_under_a_blue_cast() -> None:
    """Pale skin beside a grey wall, under a blue cast: the fixed seed gamut alone sees no skin at all.

    tattoos.ink@3 returned ``None`` here (its seeds are a YCrCb box that assumes a
    neutral white balance); the grey-world balanced copy finds the skin and keeps
    the wall out.
    """
    scene = make_skin((240, 200, 180), 12)
    scene[:, :320] = scene[:, :320, 1:2]  # the left half a grey wall under the same light
    mask = _skin_mask(with_cast(to_image(scene)), hue_deg=30.0, chroma_ratio=0.45, min_chroma=5.0)
    assert mask is not None
    assert mask[:, 320:].mean() >= 0.9
    assert mask[:, :320].mean() <= 0.05


def test_probability_is_calibrated_evidence_in_order(detector: InkTattooDetector) -> None:
    """The calibration keeps the evidence's order, gives no evidence no probability and stays below 1."""
    values = [detector.probability(evidence) for evidence in np.linspace(0, 1, 21)]
    assert values[0] == 0.0
    assert all(low <= high for low, high in itertools.pairwise(values))
    assert 0.0 < values[-1] < 1.0


def load_devdata(devdata: Path, folder: str, name: str) -> RGBImage:
    return load_image(devdata / folder / name, load_config().input).pixels


def found_regions(detector: InkTattooDetector, image: RGBImage) -> list[Region]:
    """Regions the pipeline would hold at least for review (the policy's tattoo review band)."""
    config = load_config()
    review = config.policy.rule_for(RegionKind.TATTOO).review_score
    regions = detect_regions(image, [detector], max_side_px=config.detection.max_side_px)
    return [region for region in regions if region.score >= review]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ham10000_ISIC_0027287.jpg", id="dermoscopic-naevus"),
        pytest.param("ham10000_ISIC_0024793.jpg", id="dermoscopic-naevus-black-dots-bubbles"),
        pytest.param("dermnet_naevus-single-colour-08.jpg", id="large-dark-congenital-naevus"),
        pytest.param("dermnet_vitiligo-34.jpg", id="vitiligo-hyperpigmented-edges-dark-skin"),
        pytest.param("dermnet_blue-naevus-0005.jpg", id="blue-naevus"),
    ],
)
def test_devdata_mole_raises_no_tattoo(devdata: Path, detector: InkTattooDetector, name: str) -> None:
    assert found_regions(detector, load_devdata(devdata, "tattoos", name)) == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("bivtatt_128_1.jpg", id="bold-black-solid-rose"),
        pytest.param("bivtatt_56_1.jpg", id="bold-black-swallow"),
        pytest.param("bivtatt_63_1.jpg", id="colour-red-lettering"),
        pytest.param("bivtatt_130_1.jpg", id="colour-pink-purple-rose"),
        pytest.param("tdyolo_72336322_559535724590133_5071048573420470310_n.jpg", id="script-blackletter-calf"),
        pytest.param("bivtatt_143_1.jpg", id="fine-line-script-chest"),
        pytest.param("bivtatt_41_1.jpg", id="portrait-mother-and-baby"),
        pytest.param("bivtatt_113_1.jpg", id="portrait-baby-with-script"),
        pytest.param("tattseg_mikerubendall120.jpg", id="large-body-suit"),
        pytest.param("tdyolo_80048942_589713224929507_2326654421343668984_n.jpg", id="dark-skin-snake"),
        pytest.param("bivtatt_14_1.jpg", id="dark-skin-bear"),
        pytest.param("bivtatt_54_1.jpg", id="faded-line-work-dagger"),
        pytest.param("bivtatt_147_1.jpg", id="black-and-white-photo-dotwork"),
    ],
)
def test_devdata_tattoo_category_is_found_on_its_box(devdata: Path, detector: InkTattooDetector, name: str) -> None:
    """Each tattoo category of issue 17 in one labelled devdata photo: held, and the box lies on the tattoo."""
    labels = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text("utf-8"))
    regions = found_regions(detector, load_devdata(devdata, "tattoos", name))
    assert regions, "tattoo not found"
    labelled = [Box.from_xywh(*box) for box in labels[name]["boxes"]]
    assert max(covered_fraction(regions, box) for box in labelled) >= 0.5


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("bivtatt_41_1.jpg", id="portrait-mother-and-baby"),
        pytest.param("bivtatt_138_1.jpg", id="line-work-forearm"),
        pytest.param("bivtatt_54_1.jpg", id="faded-line-work-dagger"),
        pytest.param("tdyolo_239478f857f25d62306abe7aa9544514.jpg", id="colour-fine-line-pale-skin"),
    ],
)
def test_devdata_tattoo_under_a_blue_cast_is_found(devdata: Path, detector: InkTattooDetector, name: str) -> None:
    """Tune tattoos photographed again under a blue cast (R x0.85, B x1.2): still held, on the tattoo.

    tattoos.ink@3 found none of these four (no skin left inside its seed gamut);
    over the 42 tune tattoo photos under this cast it held 16, @4 holds 28.
    """
    labels = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text("utf-8"))
    regions = found_regions(detector, with_cast(load_devdata(devdata, "tattoos", name)))
    assert regions, "tattoo not found"
    labelled = [Box.from_xywh(*box) for box in labels[name]["boxes"]]
    assert max(covered_fraction(regions, box) for box in labelled) >= 0.5


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        pytest.param("skin", "ajl9_8f351cd9f1259ee3e6d522dbbf51ac7b.jpg", id="dark-skin-shin"),
        pytest.param("skin", "ajl9_c1cde759eca19dd8fbe3884a352ba3c1.jpg", id="medium-skin-trunk-close-up"),
        pytest.param("skin", "fuseg_0347.png", id="medium-skin-heel"),
        pytest.param("tattoos", "ham10000_ISIC_0027287.jpg", id="dermoscopic-naevus"),
    ],
)
def test_devdata_plain_skin_under_a_blue_cast_raises_no_tattoo(
    devdata: Path, detector: InkTattooDetector, folder: str, name: str
) -> None:
    """The skin model built in balanced light must not turn a plain skin photo's texture into ink."""
    assert found_regions(detector, with_cast(load_devdata(devdata, folder, name))) == []


def test_devdata_pale_skin_filling_the_frame_is_found(devdata: Path, detector: InkTattooDetector) -> None:
    """A colour fine-line piece cropped to its labelled box: pale skin (seed chroma 7.3) fills the frame.

    Under @3's no-skin floor of 8 the crop had no skin and nothing was found.
    """
    name = "tdyolo_239478f857f25d62306abe7aa9544514.jpg"
    labels = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text("utf-8"))
    box = Box.from_xywh(*labels[name]["boxes"][0])
    image = load_devdata(devdata, "tattoos", name)
    margin_x, margin_y = box.width // 20, box.height // 20
    crop = np.ascontiguousarray(
        image[
            max(0, box.top - margin_y) : box.bottom + margin_y,
            max(0, box.left - margin_x) : box.right + margin_x,
        ]
    )
    assert found_regions(detector, crop)


def test_devdata_figures_per_split(devdata: Path) -> None:
    """Image-level recall and false alarms on devdata, per split, through the pipeline's detection path.

    Golden figures (2026-12, tattoos.ink@3, unchanged at @4; ``benchmarks/tattoos.py``): tune
    recall 40/42, hard negatives 1/17, plain skin 1/41; check recall 39/43,
    hard negatives 0/15, plain skin 2/35 (one skin file, a PNG named .jpg, is
    refused by deid.io today and left out here). Issue 17 asks recall >= 0.95 and
    hard-negative false alarms <= 0.10; these floors sit just under today's figures.
    """
    tattoos = json.loads((devdata / "tattoos" / "labels_tattoos.json").read_text("utf-8"))
    skin = json.loads((devdata / "skin" / "labels_skin.json").read_text("utf-8"))
    photos = [
        ("tattoos", name, "tattoo" if label["has_tattoo"] == "yes" else "hard") for name, label in tattoos.items()
    ]
    photos += [("skin", name, "skin") for name in skin]
    detector = InkTattooDetector(load_config().detection.detectors["tattoos.ink"])
    flagged: dict[tuple[str, str], list[bool]] = {}
    for folder, name, group in photos:
        try:
            image = load_devdata(devdata, folder, name)
        except InputError:
            continue
        flagged.setdefault((devdata_split(name), group), []).append(bool(found_regions(detector, image)))
    for split in ("tune", "check"):
        recall = np.mean(flagged[split, "tattoo"])
        assert recall >= 0.88, (split, recall)
        assert np.mean(flagged[split, "hard"]) <= 0.1, split
        assert sum(flagged[split, "skin"]) <= 3, split


@pytest.mark.parametrize("seed", range(6))
def test_skeleton_is_opencv_thinning_pixel_for_pixel(seed: int) -> None:
    """The vectorised Zhang-Suen thinning draws exactly the lines OpenCV's ``ximgproc.thinning`` draws."""
    rng = np.random.default_rng(seed)
    blobs = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 1.5 + seed)
    mask = blobs > np.median(blobs)
    expected = cv2.ximgproc.thinning(mask.astype(np.uint8) * 255) > 0
    assert np.array_equal(_skeleton(mask), expected)


BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def learned() -> InkTattooDetector:
    return InkTattooDetector(DetectorSettings(options={"learned_score": True}))


def test_shipped_model_loads_and_names_the_detector_features() -> None:
    """deid/data/tattoo_model.json: its schema, small, every term a feature the detector measures."""
    text = resources.files("deid.data").joinpath(MODEL_FILE).read_text("utf-8")
    document = json.loads(text)
    assert len(text.encode("utf-8")) < 100_000
    assert document["schema"] == MODEL_SCHEMA
    model = InkModel.shipped()
    assert set(model.features) <= set(FEATURE_NAMES)
    assert list(model.features) == document["provenance"]["features"]
    assert document["provenance"]["split"] == "tune"
    assert tuple(field.name for field in dataclasses.fields(InkFeatures)) == FEATURE_NAMES


def test_bad_model_document_is_refused() -> None:
    document = json.loads(resources.files("deid.data").joinpath(MODEL_FILE).read_text("utf-8"))
    with pytest.raises(ConfigError):
        InkModel.from_json({**document, "schema": "other/1"})
    with pytest.raises(ConfigError):
        InkModel.from_json({**document, "terms": [{**document["terms"][0], "feature": "no_such_cue"}]})


@pytest.mark.parametrize("cue", ["stroke_length", "neutrality", "strokes"])
def test_learned_probability_rises_with_the_main_ink_cues(cue: str) -> None:
    """More stroke length, a more neutral (ink-like) colour, more strokes: never a lower probability."""
    model = InkModel.shipped()
    typical = InkFeatures(**{name: 0.0 for name in FEATURE_NAMES})
    typical = dataclasses.replace(
        typical,
        stroke_length=0.3,
        strokes=4,
        junctions=3,
        neutrality=1.05,
        greenness=1.0,
        density=0.4,
        edge=0.5,
        skin_around=0.8,
        area=0.02,
        coverage=0.2,
        skin_share=0.5,
    )
    values = {"stroke_length": np.geomspace(0.03, 3.0, 25), "neutrality": np.linspace(0.7, 1.5, 25)}
    values["strokes"] = np.arange(1, 26, dtype=float)
    rows = np.stack([dataclasses.replace(typical, **{cue: float(value)}).vector() for value in values[cue]])
    probability = model.probability(rows)
    assert np.all(np.diff(probability) >= 0.0)
    assert probability[-1] > probability[0]


def test_learned_score_scores_groups_by_the_model_and_keeps_the_physical_vetoes(learned: InkTattooDetector) -> None:
    """With the learned score on, a group's score is the model's probability of its cues; colourless is held whole.

    Not asserted: that it finds the generated lettering. It does not (0.05): the model
    leans on the share of skin in the frame, which on devdata tells the tattoo sets'
    limbs from the dermatology close-ups, and a frame full of skin reads as a close-up.
    Nor that it stays quiet on the blotchy grey noise: it flags it (neutrality 1.8 reads
    as ink). Those are reasons the rule product stays the default.
    """
    image, _ = lettering_tattoo()
    groups = learned.analyse(image)
    assert groups
    rows = np.stack([group.features.vector() for group in groups if group.features is not None])
    np.testing.assert_allclose([group.score for group in groups], InkModel.shipped().probability(rows))
    assert learned.version == "6+model"
    assert learned.detect(np.full((300, 400, 3), 128, np.uint8)) == []
    assert [region.note.split(" (")[0] for region in learned.detect(greyscale(image))] == ["colourless photo"]


def test_groups_carry_their_raw_cues(detector: InkTattooDetector) -> None:
    image, _ = lettering_tattoo()
    groups = detector.analyse(image)
    assert groups and all(group.features is not None for group in groups)
    best = groups[0].features
    assert best is not None
    assert best.vector().shape == (len(FEATURE_NAMES),)
    assert best.stroke_length == groups[0].stroke_length and best.colour == 0.0
    assert 0.0 < best.skin_share <= 1.0 and 0.0 < best.coverage <= 1.0


@pytest.mark.devdata
def test_shipped_model_is_what_the_training_script_builds(devdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/train_tattoo_model.py on the tune split rebuilds the shipped file exactly (but the date)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import train_tattoo_model  # a benchmark script: importable only with its folder on the path

    document, _ = train_tattoo_model.build_model(devdata, hard_rate=0.10, skin_rate=0.05)
    shipped = json.loads(resources.files("deid.data").joinpath(MODEL_FILE).read_text("utf-8"))
    rebuilt = json.loads(json.dumps(document))
    assert train_tattoo_model.without_date(rebuilt) == train_tattoo_model.without_date(shipped)
