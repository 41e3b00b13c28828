"""Policy: per-kind rules, thresholds, crop-or-fallback, and the reasons that name them.

Images are built from ``skimage.data.astronaut()`` (a real face) composited
onto a generated skin-and-rash close-up; regions are placed exactly, as a
reviewer's :class:`~deid.detect.manual.ManualRegions` would, so every case
tests the policy and not a detector.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from deid.config import Config, load_config
from deid.errors import ConfigError
from deid.policy import apply_policy, is_releasable
from deid.redact import render_decision
from deid.types import Action, Box, Decision, Region, RegionKind, RGBImage
from tests.assertions import assert_no_pixel_survives

POLICIES = Path(__file__).parent / "policies"
HEIGHT, WIDTH = 1200, 1600


def policy_config(name: str) -> Config:
    """Defaults overlaid by ``tests/policies/<name>.toml`` (``default`` for none)."""
    return load_config() if name == "default" else load_config(POLICIES / f"{name}.toml")


@cache
def rash_close_up(seed: int = 0) -> RGBImage:
    """A phone close-up of a forearm: uneven skin with a red rash around the centre (read-only, cached)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.float32)
    image[:] = (214, 160, 130)
    image += (12 * np.sin(xx / 97.0) * np.cos(yy / 131.0))[..., None]
    for _ in range(25):  # rash papules, denser near the centre
        cy, cx = rng.normal(HEIGHT / 2, HEIGHT / 8), rng.normal(WIDTH / 2, WIDTH / 8)
        radius = rng.uniform(15, 60)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        image += blob[..., None] * np.array([25.0, -45.0, -35.0])
    image += rng.normal(0, 4, image.shape)
    out = np.clip(image, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


FACE_PATCH: RGBImage = skimage.data.astronaut()[0:300, 110:370]  # type: ignore[no-untyped-call]
"""The astronaut's head and shoulders (300 x 260 px)."""


def with_face(image: RGBImage, top: int, left: int) -> tuple[RGBImage, Region]:
    """Paste the astronaut's face and return the region a reviewer would draw around it."""
    out = image.copy()
    out[top : top + FACE_PATCH.shape[0], left : left + FACE_PATCH.shape[1]] = FACE_PATCH
    box = Box(left + 40, top + 30, left + 200, top + 210)  # hairline to chin, ear to ear
    return out, Region(RegionKind.FACE, box, 0.93, "review:test", "astronaut face")


def with_wristband(image: RGBImage) -> tuple[RGBImage, Region]:
    """Draw a hospital wristband with a name and a date of birth across the forearm."""
    out = image.copy()
    band = Box(1000, 880, 1500, 960)
    out[band.top : band.bottom, band.left : band.right] = (245, 245, 240)
    cv2.putText(
        out, "DOE, JANE 03/12/1961", (band.left + 12, band.top + 52), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 3
    )
    text = Box(band.left + 8, band.top + 14, band.right - 40, band.top + 66)
    return out, Region(RegionKind.TEXT, text, 0.88, "review:test", "wristband text")


def face(score: float, box: Box | None = None) -> Region:
    return Region(RegionKind.FACE, box or Box(10, 10, 110, 130), score, "review:test")


def text(score: float, box: Box | None = None) -> Region:
    return Region(RegionKind.TEXT, box or Box(300, 300, 500, 340), score, "review:test")


@pytest.mark.parametrize(
    ("policy", "regions", "body_parts", "action", "reason"),
    [
        pytest.param("default", [], (), Action.KEEP, "no identifying region", id="nothing-found-keeps"),
        pytest.param("default", [face(0.9)], (), Action.REDACT, "policy.rules.face.action = redact", id="face-redact"),
        pytest.param("default", [face(0.1)], (), Action.KEEP, "no identifying region", id="face-below-review-ignored"),
        pytest.param(
            "default", [face(0.3)], (), Action.HOLD, "below policy.rules.face.min_score", id="face-review-band"
        ),
        pytest.param("face_hold", [face(0.9)], (), Action.HOLD, "policy.rules.face.action = hold", id="face-hold"),
        pytest.param("face_exclude", [face(0.9)], (), Action.EXCLUDE, "face.action = exclude", id="face-exclude"),
        pytest.param("text_below_threshold", [text(0.6)], (), Action.HOLD, "min_score 0.90", id="text-below-threshold"),
        pytest.param("text_below_threshold", [text(0.95)], (), Action.REDACT, "text.action = redact", id="text-sure"),
        pytest.param("text_below_threshold", [text(0.2)], (), Action.KEEP, "no identifying", id="text-below-review"),
        pytest.param("default", [], ("Face",), Action.HOLD, "policy.hold_body_parts", id="head-case-held"),
        pytest.param("face_exclude", [face(0.9), text(0.3)], (), Action.EXCLUDE, "exclude", id="exclude-beats-hold"),
        pytest.param(
            "face_crop",
            [face(0.9), text(0.3, Box(WIDTH // 2 - 60, HEIGHT // 2 - 20, WIDTH // 2 + 60, HEIGHT // 2 + 20))],
            (),
            Action.HOLD,
            "text score",
            id="hold-beats-crop-when-the-uncertain-region-is-in-the-middle",
        ),
        pytest.param(
            "face_crop",
            [face(0.9), text(0.3)],
            (),
            Action.CROP,
            "cut away by the crop",
            id="crop-removes-uncertain-too",
        ),
        pytest.param(
            "face_crop", [face(0.9), text(0.3)], ("neck",), Action.HOLD, "hold_body_parts", id="body-part-hold-stays"
        ),
        pytest.param("face_crop", [face(0.9), text(0.9)], (), Action.CROP, "policy.crop: keep", id="crop-with-redact"),
    ],
)
def test_rules_and_precedence(
    policy: str, regions: list[Region], body_parts: tuple[str, ...], action: Action, reason: str
) -> None:
    decision = apply_policy(
        regions, policy_config(policy).policy, body_parts=body_parts, image_shape=(HEIGHT, WIDTH, 3)
    )
    assert decision.action is action
    assert any(reason in line for line in decision.reasons), decision.reasons


def test_a_kind_without_a_rule_is_held(config: Config) -> None:
    policy = replace(config.policy, rules={k: v for k, v in config.policy.rules.items() if k is not RegionKind.TATTOO})
    tattoo = Region(RegionKind.TATTOO, Box(0, 0, 10, 10), 0.99, "review:test")
    decision = apply_policy([tattoo], policy)
    assert decision.action is Action.HOLD
    assert decision.reasons == ("tattoo score 0.99 >= 0.00: policy.default_action = hold",)


def test_a_hold_shows_the_reviewer_every_proposal() -> None:
    regions = [face(0.9), text(0.6)]
    decision = apply_policy(regions, policy_config("text_below_threshold").policy)
    assert decision.action is Action.HOLD
    assert set(decision.regions) == set(regions)


def test_crop_without_the_image_shape_falls_back() -> None:
    decision = apply_policy([face(0.9)], policy_config("face_crop").policy)
    assert decision.action is Action.REDACT
    assert any("image size was not given" in line for line in decision.reasons)


def test_face_in_the_corner_of_a_close_up_is_cropped_away() -> None:
    image, region = with_face(rash_close_up(), 20, 20)
    policy = policy_config("face_crop").policy
    decision = apply_policy([region], policy, image_shape=image.shape)
    assert decision.action is Action.CROP and decision.crop is not None
    assert decision.reasons[0] == "face score 0.93 >= 0.50: policy.rules.face.action = crop"
    grown = region.box.expand(policy.rule_for(RegionKind.FACE).margin_frac)
    assert decision.crop.intersection(grown).is_empty
    assert decision.crop.area >= 0.7 * HEIGHT * WIDTH, "a corner face costs only the corner"
    assert (
        decision.crop.left <= WIDTH // 2 < decision.crop.right
        and decision.crop.top <= HEIGHT // 2 < decision.crop.bottom
    )
    staged = render_decision(image, decision, policy)
    assert staged.shape == (decision.crop.height, decision.crop.width, 3)
    expected = image[decision.crop.top : decision.crop.bottom, decision.crop.left : decision.crop.right]
    assert (staged == expected).all(), "the rash inside the crop is untouched"


def test_face_in_the_corner_is_redacted_by_default(config: Config) -> None:
    image, region = with_face(rash_close_up(), 20, 20)
    decision = apply_policy([region], config.policy, image_shape=image.shape)
    assert decision.action is Action.REDACT and decision.crop is None
    staged = render_decision(image, decision, config.policy)
    assert_no_pixel_survives(region.box.expand(config.policy.rule_for(RegionKind.FACE).margin_frac), staged, (0, 0, 0))


@pytest.mark.parametrize(
    ("policy", "action"),
    [
        pytest.param("face_crop", Action.REDACT, id="fallback-redact"),
        pytest.param("face_crop_hold", Action.HOLD, id="fallback-hold"),
        pytest.param("face_hold", Action.HOLD, id="hold"),
    ],
)
def test_face_in_the_centre_is_redacted_or_held_per_config(policy: str, action: Action) -> None:
    image, region = with_face(rash_close_up(), HEIGHT // 2 - 150, WIDTH // 2 - 130)
    settings = policy_config(policy).policy
    decision = apply_policy([region], settings, image_shape=image.shape)
    assert decision.action is action
    assert decision.crop is None
    if policy.startswith("face_crop"):
        assert any(f"policy.crop.fallback = {action}" in line and "image centre" in line for line in decision.reasons)
    if action is Action.REDACT:
        staged = render_decision(image, decision, settings)
        assert_no_pixel_survives(region.box.expand(settings.rule_for(RegionKind.FACE).margin_frac), staged, (0, 0, 0))


def test_face_in_the_centre_may_be_cropped_when_the_centre_need_not_stay() -> None:
    image, region = with_face(rash_close_up(), HEIGHT // 2 - 150, WIDTH // 2 - 130)
    decision = apply_policy([region], policy_config("face_crop_anywhere").policy, image_shape=image.shape)
    assert decision.action is Action.CROP and decision.crop is not None
    assert decision.crop.intersection(region.box).is_empty


def test_text_on_a_wristband_is_redacted(config: Config) -> None:
    image, region = with_wristband(rash_close_up())
    decision = apply_policy([region], config.policy, image_shape=image.shape)
    assert decision.action is Action.REDACT
    assert decision.reasons == ("text score 0.88 >= 0.50: policy.rules.text.action = redact",)
    staged = render_decision(image, decision, config.policy)
    assert_no_pixel_survives(region.box.expand(config.policy.rule_for(RegionKind.TEXT).margin_frac), staged, (0, 0, 0))
    dark_text = (image[..., 0] < 60) & (staged[..., 0] != 0)
    assert not dark_text.any(), "no stroke of the printed name survives"


def test_corner_face_and_wristband_crop_and_redact_together() -> None:
    image, face_region = with_face(rash_close_up(), 20, 20)
    image, text_region = with_wristband(image)
    policy = policy_config("face_crop").policy
    decision = apply_policy([face_region, text_region], policy, image_shape=image.shape)
    assert decision.action is Action.CROP and decision.crop is not None
    assert set(decision.regions) == {face_region, text_region}
    staged = render_decision(image, decision, policy)
    crop = decision.crop
    grown = text_region.box.expand(policy.rule_for(RegionKind.TEXT).margin_frac)
    inside = Box(grown.left - crop.left, grown.top - crop.top, grown.right - crop.left, grown.bottom - crop.top)
    assert_no_pixel_survives(inside, staged, (0, 0, 0))


def test_skin_mask_steers_the_crop_towards_skin() -> None:
    # A face bar splits the image into equal top and bottom halves; only the bottom is skin.
    bar = Region(RegionKind.FACE, Box(0, 560, WIDTH, 640), 0.9, "review:test")
    policy = replace(policy_config("face_crop_anywhere").policy)
    skin = np.zeros((120, 160), dtype=bool)
    skin[70:] = True
    without = apply_policy([bar], policy, image_shape=(HEIGHT, WIDTH))
    with_skin = apply_policy([bar], policy, image_shape=(HEIGHT, WIDTH), skin_mask=skin)
    assert without.crop is not None and with_skin.crop is not None
    assert without.crop.top == 0 and with_skin.crop.top > 600


def test_decision_json_names_boxes_as_xywh() -> None:
    decision = Decision(Action.CROP, (face(0.9, Box(10, 20, 30, 60)),), ("why",), crop=Box(40, 0, 100, 80))
    as_json = decision.to_json()
    assert as_json["crop"] == [40, 0, 60, 80]
    assert as_json["regions"] == [face(0.9, Box(10, 20, 30, 60)).to_json()]
    assert is_releasable(decision) and not is_releasable(Decision(Action.HOLD))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        pytest.param('[policy.crop]\nfallback = "blur"\n', "policy.crop.fallback", id="bad-fallback"),
        pytest.param("[policy.crop]\nmin_side_px = 0\n", "policy.crop.min_side_px", id="min-side-positive"),
        pytest.param("[policy.crop]\ncentre_weight = -1\n", "policy.crop.centre_weight", id="weights-non-negative"),
        pytest.param("[policy.crop]\nkeep_center = true\n", "keep_center", id="unknown-key"),
    ],
)
def test_bad_crop_settings_are_refused_at_load_time(toml: str, key: str, tmp_path: Path) -> None:
    path = tmp_path / "deid.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=key):
        load_config(path)


def _sensitive(score: float) -> Region:
    return Region(RegionKind.SENSITIVE_BODY, Box(400, 300, 700, 600), score, "body.nudenet@test", "NudeNet")


@pytest.mark.parametrize(
    ("regions", "body_parts", "action"),
    [
        pytest.param([_sensitive(0.45)], ("foot",), Action.KEEP, id="genitalia-on-a-foot-case-is-implausible"),
        pytest.param([_sensitive(0.45)], (), Action.HOLD, id="no-case-no-evidence"),
        pytest.param([_sensitive(0.45)], ("foot", "groin"), Action.HOLD, id="a-plausible-part-keeps-it"),
        pytest.param([_sensitive(0.9)], ("foot",), Action.HOLD, id="a-confident-box-is-never-released"),
        pytest.param([face(0.9)], ("arm",), Action.REDACT, id="a-face-counts-whatever-the-case-says"),
        pytest.param([face(0.3)], ("toenail",), Action.HOLD, id="case-evidence-never-weighs-faces"),
    ],
)
def test_body_part_evidence_lowers_only_implausible_uncertain_regions(
    regions: list[Region], body_parts: tuple[str, ...], action: Action
) -> None:
    decision = apply_policy(regions, load_config().policy, body_parts=body_parts, image_shape=(HEIGHT, WIDTH, 3))
    assert decision.action is action, decision.reasons
