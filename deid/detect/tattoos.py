"""Tattoo detection: sharp ink strokes inside skin, scored as a calibrated probability.

No tattoo model ships in any wheel this project may use, and none may be
downloaded, so this detector is built from what ink on skin looks like
rather than learned; only the last step, turning evidence into a
probability, is fitted on labelled photos (two numbers). Every size is a
fraction of the image, every threshold an option in
``[detection.detectors."tattoos.ink".options]``.

1. **Working copy.** The detection copy is shrunk to ``work_side_px`` on its
   long side (640: a 12-MP photo costs the same as a phone thumbnail).
2. **Skin, per image.** Pixels in a broad YCrCb skin gamut (every skin tone)
   seed this image's own skin model: the median CIELAB hue and chroma.
   Skin is every pixel within ``skin_hue_deg`` of that hue with a chroma
   within ``skin_chroma_ratio`` of it. The chroma floor keeps white sheets,
   grey floors and walls out; the hue keeps clothing out. A picture whose
   seed pixels are all but grey (median chroma under ``min_skin_chroma``, 5:
   a grey wall, a black-and-white photo) has no skin, so nothing in it is a
   tattoo. Pale skin under cool light comes close (6 to 8; @3's floor of 8
   lost it whenever the white balance leaned blue). The seed gamut assumes a
   neutral white balance, so it is also tried on a grey-world balanced copy,
   and the lighting that shows more seed pixels is the one the skin model is
   built in (a cool cast used to leave a photo with almost no skin).
3. **Ink density.** A morphological closing of each RGB channel with a disc
   ``stroke_kernel_frac`` wide estimates the skin that would be there
   without thin dark structures; ``log(reference / pixel)`` is an optical
   density. A closing only reveals structures narrower than its disc, so
   large smooth areas (bruises, birthmarks, vitiligo, shading, big moles)
   give nothing.
   Bright non-skin (sheets, paper, rulers, walls) is blacked out before the
   closing, so it never lends its brightness to the skin beside it: the
   dark side of a limb against a white sheet is not ink.
   A density depends on the photo's tone curve: lifting it (over-exposure,
   a phone's brightening) compresses every density, and faint lines fall
   under ``min_ink_density``. A photo whose skin is lighter than
   ``bright_skin_lightness`` is therefore searched twice, as it is and toned
   back down to that lightness, and the groups of both looks are kept.
4. **Inside skin only.** Ink counts only where the skin mask, closed with a
   ``hull_kernel_frac`` disc and with its holes filled, surrounds it: the
   background beside a limb, clothing edges and floor tiles lie outside.
   A second, coarse pass (``fill_kernel_frac``, 0 to switch off) adds solid
   fills (tribal, blackwork): dense (``min_fill_density``), not skin-coloured
   and not brown or red (``min_fill_neutrality``). Their medial axes become
   strokes, so a round mole or a wound's eschar still makes no line art.
   A fill that runs into the image border is dropped: there it is nearly
   always the shadow or background beyond a limb that the hull closed over.
   **Colour ink** (red, pink, purple lettering and line work) absorbs green
   far more than red or blue (``min_pixel_greenness``); melanin's absorption
   falls smoothly from blue to red. Those pixels are grouped on their own
   and scored by that green absorption instead of neutrality, so a red
   petal never dilutes the colour cue of a black outline beside it.
5. **Strokes, grouped.** One-pixel threads (hairs, JPEG ringing) are opened
   away, fragments whose skeleton is shorter than ``min_stroke_frac`` (pores,
   freckles, the dots of a dermoscopic network, small moles) are dropped,
   and the rest are grouped when closer than ``group_gap_frac``.
6. **Evidence** = product of ramps in ``[0, 1]`` (the last three are penalties):

   * *stroke length*: total skeleton length of the group;
   * *neutrality*: red absorbed over blue absorbed, summed over a halo round
     the strokes. Carbon black is a neutral absorber that looks blue under
     the dermis, and blue, green and violet inks absorb red; melanin (moles,
     naevi, melanoma, hair) and haemoglobin (wounds, rashes, bruises) absorb
     blue far more. The halo matters because JPEG keeps colour at half
     resolution and smears a thin stroke's colour onto its neighbours;
   * *complexity*: strokes + junctions / 2, with wobble spurs pruned first.
     A surgical-marker ring round a lesion is one loop with no junction (the
     ramp's zero); lettering and line art are many strokes with many junctions,
     and fine line that falls apart into a few plain strokes still counts a little;
   * *backdrop*: the share of a ring just outside the ink that is bright
     non-skin. Ink sits on skin or on more ink; print sits on paper (ruler
     labels, dressings, documents held to the camera);
   * *edge*: optical density just outside the strokes over density on them.
     Ink stops sharply at the edge of the needle's line; pigment,
     inflammation and the rims of vitiligo fade out;
   * *shadow*: the share of the ring that is dark and not skin: the gap
     between fingers, a nail fold, a limb's outline against a dark room;
   * *round field*: how far the frame is a dermatoscope's (dark outside a
     centred disc, lit inside). Dermoscopy shows lesions, not tattoos.

7. **Probability.** The evidence is mapped to the probability that the group
   is a tattoo by a logistic (Platt) map of its logit, ``calibration_slope``
   and ``calibration_offset``, fitted by ``benchmarks/train_tattoo_calibration.py``
   on the best group of each photo of the devdata tune split (tattoos/ and
   skin/). The probability is what a region's ``score`` reports and what the
   policy's tattoo band reads. It is calibrated on devdata's mix (about four
   photos in ten show a tattoo); where tattoos are rarer, a region at 0.3 is
   less often one.

   With ``learned_score = true`` the probability comes instead from a small
   logistic model over every group's raw cues (:class:`InkFeatures`, no ramps),
   shipped in ``deid/data/tattoo_model.json`` and fitted by
   ``benchmarks/train_tattoo_model.py`` on the tune split (5-fold
   cross-validation by photo). It is off by default: on the tune split's
   cross-validation it held 37 of 42 tattoo photos at the false-alarm limits
   where the rule product holds 40 (in-sample), so the product stays; read
   once afterwards, the check split agreed (33 of 43 against 39). The model
   leans on cues that tell devdata's sources apart (the share of skin in the
   frame, fill, density) more than on ink. The physical veto stays either
   way: no skin, no tattoo.

   Groups whose probability is under ``min_score`` are not reported. Strong groups near
   each other (``merge_gap_frac``) are joined, and weak groups touching them
   absorbed, so the proposed box covers the whole piece.

Measured on ``../shared/devdata/tattoos`` and ``skin`` per split
(``benchmarks/tattoos.py``) and on generated skin (``tests/detect/test_tattoos.py``).
Known limits: solid fills are found only when dense and dark (faded
blackwork is missed); orange or yellow ink, and red fine line that absorbs
blue as much as green, reads as blood or melanin; a black-and-white photo
has no skin, so no ink can be found in it: the whole frame is held instead
(``colourless_score``, see :meth:`InkTattooDetector.colourless_region`). Nor is a frame filled edge to edge by pale skin
under a strong colour cast (the balanced copy turns that skin grey); a surgical-marker blot with hairs on
dermoscopy without a round field is ink and is flagged; strokes under about two
pixels on the working copy are lost; faded ink on dark skin after strong
JPEG compression loses the colour cue and is often missed; the operating
point is fragile under a warm colour cast (plain skin turns skin-hued
background into "skin", and its edges into strokes) and under strong
brightening even with the second look (``benchmarks/tattoos.py --perturb``
prints both); and on photos
that are not of skin (food, fur, wood, printed pages on warm paper), dark
line texture can be taken for ink. A flagged image goes to a reviewer with
the proposed box (the default policy holds tattoos).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from deid.config import DetectorSettings
from deid.detect import read_options
from deid.errors import ConfigError
from deid.types import Box, Region, RegionKind, RGBImage

_OPTIONS: dict[str, float | bool] = {
    "work_side_px": 640,
    "learned_score": False,
    "skin_hue_deg": 30.0,
    "skin_chroma_ratio": 0.45,
    "min_skin_chroma": 5.0,
    "stroke_kernel_frac": 0.035,
    "hull_kernel_frac": 0.1,
    "min_ink_density": 0.25,
    "min_pixel_neutrality": 0.75,
    "min_stroke_frac": 0.03,
    "group_gap_frac": 0.03,
    "spur_frac": 0.015,
    "stroke_length_low": 0.15,
    "stroke_length_high": 0.45,
    "neutrality_low": 0.92,
    "neutrality_high": 1.06,
    "complexity_low": 1.0,
    "complexity_high": 5.0,
    "backdrop_low": 0.3,
    "backdrop_high": 0.5,
    "merge_gap_frac": 0.1,
    "fill_kernel_frac": 0.15,
    "min_fill_density": 0.5,
    "min_fill_neutrality": 0.9,
    "min_pixel_greenness": 1.5,
    "greenness_low": 1.4,
    "greenness_high": 1.8,
    "edge_low": 0.6,
    "edge_high": 0.85,
    "shadow_low": 0.3,
    "shadow_high": 0.6,
    "round_field_low": 0.5,
    "round_field_high": 0.8,
    "calibration_slope": 0.732,
    "calibration_offset": -0.419,
    "min_score": 0.3,
    "bright_skin_lightness": 170.0,
    "colourless_max_chroma": 3.0,
    "colourless_min_structure": 10.0,
    "colourless_score": 0.35,
}

BoolMask = npt.NDArray[np.bool_]
FloatImage = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]

MODEL_FILE = "tattoo_model.json"
MODEL_SCHEMA = "deid.tattoo_model/1"

# A classic YCrCb skin gamut (Chai and Ngan 1999), widened for dark skin; it
# only seeds the per-image model, so it may be generous.
_SEED_CR = (133.0, 180.0)
_SEED_CB = (77.0, 135.0)
_SEED_MIN_Y = 30.0
_MIN_SEED_PIXELS = 200
# Evidence is clipped this far from 0 and 1 before calibration, so its logit stays finite.
_EVIDENCE_FLOOR = 0.01


@dataclass(frozen=True, slots=True)
class _Context:
    """What every stroke group of one working copy is judged against."""

    small: RGBImage
    skin: BoolMask
    backdrop: BoolMask
    round_field: float
    lightness: FloatImage
    skin_lightness: float
    chroma: FloatImage
    skin_chroma: float
    skin_share: float


@dataclass(frozen=True, slots=True)
class InkFeatures:
    """The raw cues of one stroke group: what the learned score reads (no ramps applied).

    Lengths are fractions of the working copy's long side, shares are in 0..1.
    """

    stroke_length: float  # total skeleton length
    strokes: float  # stroke fragments in the group
    junctions: float  # skeleton branch points (spurs pruned)
    neutrality: float  # red over blue absorbed in a halo round the strokes
    greenness: float  # green over mean(red, blue) absorbed
    colour: float  # 1 for the colour-ink pass (red, pink, purple), 0 for the neutral-ink pass
    density: float  # mean optical density on the strokes
    edge: float  # density just outside the strokes over density on them
    backdrop: float  # share of the ring outside the ink that is bright non-skin
    shadow: float  # share of that ring that is dark non-skin
    skin_around: float  # share of that ring that is skin
    round_field: float  # how far the frame is a dermatoscope's (per image)
    chroma_gain: float  # CIELAB chroma on the strokes minus the skin's
    border: float  # image sides the group's box touches (0-4)
    area: float  # box area over the image's
    coverage: float  # ink pixels over box area
    fill: float  # share of the strokes found by the solid-fill pass
    skin_share: float  # share of the image that is skin (per image)

    def vector(self) -> FloatArray:
        """The cues in :data:`FEATURE_NAMES` order."""
        return np.array([getattr(self, name) for name in FEATURE_NAMES], np.float64)


FEATURE_NAMES: tuple[str, ...] = tuple(field.name for field in fields(InkFeatures))

_TRANSFORMS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "identity": lambda values: values,
    "log": lambda values: np.log(np.maximum(values, 1e-3)),
    "log1p": lambda values: np.log1p(np.maximum(values, 0.0)),
}


def transform_features(rows: FloatArray, features: Sequence[str], transforms: Sequence[str]) -> FloatArray:
    """The columns ``features`` of ``rows`` (:data:`FEATURE_NAMES` columns), each through its transform.

    Transforms are ``identity``, ``log`` (of at least 0.001) and ``log1p`` (of at least 0).
    """
    columns = [FEATURE_NAMES.index(name) for name in features]
    values: FloatArray = np.stack(
        [_TRANSFORMS[transform](rows[:, column]) for column, transform in zip(columns, transforms, strict=True)],
        axis=1,
    )
    return values


@dataclass(frozen=True, slots=True)
class InkModel:
    """The learned group score: a logistic model over :class:`InkFeatures`, read from JSON.

    ``margin`` is ``intercept + sum(weight * clip((transform(x) - mean) / scale))``
    over the model's features (the clip bounds what one odd cue on an unseen photo
    can do); the probability is ``1 / (1 + exp(-(slope * margin + offset)))``, a
    Platt map fitted on out-of-fold image-level scores of the tune split. Written by
    ``benchmarks/train_tattoo_model.py``; see its provenance block for the data.
    """

    features: tuple[str, ...]
    transforms: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    weights: FloatArray
    intercept: float
    clip: float
    slope: float
    offset: float

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> InkModel:
        """Build the model from its JSON document.

        Raises
        ------
        ConfigError
            If the schema is not :data:`MODEL_SCHEMA` or a feature or transform is unknown.
        """
        if document.get("schema") != MODEL_SCHEMA:
            raise ConfigError(
                f"tattoo model has schema {document.get('schema')!r}, expected {MODEL_SCHEMA!r}",
                hint="rebuild it with benchmarks/train_tattoo_model.py",
            )
        terms: Sequence[Mapping[str, Any]] = document["terms"]
        unknown = [term["feature"] for term in terms if term["feature"] not in FEATURE_NAMES]
        unknown += [term["transform"] for term in terms if term["transform"] not in _TRANSFORMS]
        if unknown:
            raise ConfigError(f"tattoo model names unknown {unknown[0]!r}", hint=f"features: {FEATURE_NAMES}")
        calibration = document["calibration"]
        return cls(
            features=tuple(term["feature"] for term in terms),
            transforms=tuple(term["transform"] for term in terms),
            mean=np.array([term["mean"] for term in terms], np.float64),
            scale=np.array([term["scale"] for term in terms], np.float64),
            weights=np.array([term["weight"] for term in terms], np.float64),
            intercept=float(document["intercept"]),
            clip=float(document["clip"]),
            slope=float(calibration["slope"]),
            offset=float(calibration["offset"]),
        )

    @classmethod
    def shipped(cls) -> InkModel:
        """The model in ``deid/data/tattoo_model.json``."""
        text = resources.files("deid.data").joinpath(MODEL_FILE).read_text("utf-8")
        return cls.from_json(json.loads(text))

    def margin(self, rows: FloatArray) -> FloatArray:
        """The model's log-odds before calibration, one per row of :data:`FEATURE_NAMES` columns."""
        values = transform_features(rows, self.features, self.transforms)
        standard = np.clip((values - self.mean) / self.scale, -self.clip, self.clip)
        result: FloatArray = self.intercept + standard @ self.weights
        return result

    def probability(self, rows: FloatArray) -> FloatArray:
        """The calibrated probability that each row's group is a tattoo."""
        result: FloatArray = 1.0 / (1.0 + np.exp(-(self.slope * self.margin(rows) + self.offset)))
        return result


@dataclass(frozen=True, slots=True)
class InkGroup:
    """One candidate tattoo on the working copy, with the cues that scored it.

    Lengths are fractions of the working copy's long side. ``score`` is the
    probability that the group is a tattoo (what a region reports);
    ``evidence`` is the rule product of ramped cues it came from unless the
    learned score is on; ``features`` are the raw cues.
    """

    box: Box
    stroke_length: float
    strokes: int
    junctions: int
    neutrality: float
    density: float
    backdrop: float
    score: float
    edge: float = 0.0
    greenness: float = 0.0
    chroma_gain: float = 0.0
    vignette: float = 0.0
    border: float = 0.0
    area: float = 0.0
    fill: float = 0.0
    shadow: float = 0.0
    evidence: float = 0.0
    features: InkFeatures | None = None


class InkTattooDetector:
    """Tattoos as sharp, neutral-or-cool ink strokes surrounded by skin.

    Parameters
    ----------
    settings
        Options (all numbers, see ``_OPTIONS`` and the module docstring).

    Raises
    ------
    ConfigError
        On an unknown or non-numeric option.

    Examples
    --------
    >>> detector = InkTattooDetector()
    >>> detector.detect(np.full((200, 300, 3), (200, 150, 120), np.uint8))
    []
    """

    name = "tattoos.ink"
    version = "6"
    kinds = frozenset({RegionKind.TATTOO})

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), _OPTIONS, self.name)
        _check_options(self.options, self.name)
        self.model = InkModel.shipped() if self.options["learned_score"] else None
        if self.model is not None:
            self.version = f"{type(self).version}+model"  # regions say which score made them

    def detect(self, image: RGBImage) -> list[Region]:
        """Return tattoo boxes in ``image`` pixels, best first; ``[]`` when none.

        A colourless photograph (:meth:`colourless_region`) gets one region over
        the whole frame instead: the ink search cannot run on it.
        """
        height, width = image.shape[:2]
        factor = max(height, width) / self.options["work_side_px"]
        small = _shrink(image, int(self.options["work_side_px"]))
        blind = self.colourless_region(small, image.shape)
        if blind is not None:
            return [blind]
        regions = []
        for group in self.merge(self.analyse(small), side=max(height, width) / max(factor, 1.0)):
            box = group.box.scale(factor).clip(image.shape) if factor > 1 else group.box.clip(image.shape)
            note = (
                f"ink strokes {group.strokes}, junctions {group.junctions}, "
                f"stroke length {group.stroke_length:.2f} of the long side, neutrality {group.neutrality:.2f}"
            )
            regions.append(Region(RegionKind.TATTOO, box, round(group.score, 4), f"{self.name}@{self.version}", note))
        return sorted(regions, key=lambda region: -region.score)

    def colourless_region(self, small: RGBImage, shape: tuple[int, ...]) -> Region | None:
        """A whole-frame region when ``small`` is a photograph without colour, else ``None``.

        Skin is found by its colour, so in a black-and-white (or greyscale) photo
        this detector cannot tell skin from ink, nor a tattooed arm from a wall.
        Saying nothing there would release every tattoo in such a photo; so a
        photo with no colour anywhere (95th percentile of CIELAB chroma under
        ``colourless_max_chroma``: JPEG leaves a grey photo under 1, the least
        colourful skin photo of the devdata tune half measures 14) that still
        has a picture in it (the grey levels of a 32-pixel thumbnail spread by
        at least ``colourless_min_structure``: sensor noise and blank frames
        average out to under 7) gets one region over the whole frame at
        ``colourless_score``, the review band, for a person to look at.
        ``colourless_score = 0`` switches this off.
        """
        score = float(self.options["colourless_score"])
        if score <= 0.0:
            return None
        sample = np.ascontiguousarray(small[::2, ::2])  # a percentile needs no full resolution
        lab = cv2.cvtColor(sample, cv2.COLOR_RGB2LAB)
        chroma = np.hypot(lab[..., 1].astype(np.float32) - 128.0, lab[..., 2].astype(np.float32) - 128.0)
        colour = float(np.percentile(chroma, 95))
        if colour >= self.options["colourless_max_chroma"]:
            return None
        thumbnail = _shrink(np.ascontiguousarray(lab[..., 0]), 32)
        structure = float(np.std(thumbnail))
        if structure < self.options["colourless_min_structure"]:
            return None
        note = (
            f"colourless photo (chroma {colour:.1f}, structure {structure:.0f}): "
            "skin cannot be told from ink, so tattoos cannot be searched for"
        )
        box = Box(0, 0, int(shape[1]), int(shape[0]))
        return Region(RegionKind.TATTOO, box, round(score, 4), f"{self.name}@{self.version}", note)

    def analyse(self, image: RGBImage) -> list[InkGroup]:
        """Every candidate ink group on the working copy, scored (for tuning and tests).

        Boxes are in working-copy pixels; the copy is ``image`` itself when it is
        already at most ``work_side_px`` long.

        On a brightly exposed photo (skin's median CIELAB lightness above
        ``bright_skin_lightness``) every optical density is compressed: a tone
        curve that lifts the skin lifts the ink with it, and faint lines fall
        under ``min_ink_density``. So such a photo gets a second look, on a copy
        whose tone curve (a power law) brings the skin's median back to that
        lightness, and the groups of both looks are kept. A photo at or under it
        is searched once, as before.
        """
        small = _shrink(image, int(self.options["work_side_px"]))
        groups, skin_lightness = self._analyse_once(small)
        limit = float(self.options["bright_skin_lightness"])
        if limit > 0.0 and skin_lightness is not None and skin_lightness > limit:
            second, _ = self._analyse_once(_tone_to(small, skin_lightness, limit))
            groups = sorted(groups + second, key=lambda group: -group.score)
        return groups

    def _analyse_once(self, small: RGBImage) -> tuple[list[InkGroup], float | None]:
        """The scored ink groups of one working copy, and its skin's median lightness (``None``: no skin)."""
        side = max(small.shape[:2])
        kernel = _odd(self.options["stroke_kernel_frac"] * side)
        lab = np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2LAB), np.uint8)
        skin = _skin_mask(
            small,
            hue_deg=self.options["skin_hue_deg"],
            chroma_ratio=self.options["skin_chroma_ratio"],
            lab=lab,
            min_chroma=self.options["min_skin_chroma"],
        )
        if skin is None:
            return [], None
        # Not skin and at least as bright: paper, labels, rulers, sheets, walls. Kept out of
        # the skin reference, or the dark side of every limb against a white sheet is "ink".
        lightness: FloatImage = lab[..., 0].astype(np.float32)
        skin_lightness = float(np.median(lightness[skin]))
        backdrop = ~skin & (lightness >= skin_lightness)
        density, neutrality, absorbed = _ink_density(small, kernel, exclude=backdrop)
        inside = _inside_skin(skin, _odd(self.options["hull_kernel_frac"] * side))
        candidate = inside & (density >= self.options["min_ink_density"])
        ink = _open_threads(candidate & (neutrality >= self.options["min_pixel_neutrality"]))
        # Colour inks (red, pink, purple) absorb green far more than red or blue; melanin's
        # absorption falls smoothly from blue to red and blood's is spread over green and blue.
        # They are grouped on their own, so a red petal never dilutes a black outline's colour.
        greenness = (absorbed[..., 1] + 0.02) / (0.5 * (absorbed[..., 0] + absorbed[..., 2]) + 0.02)
        colour_ink = _open_threads(candidate & ~ink & (greenness >= self.options["min_pixel_greenness"]))
        solid = np.zeros(ink.shape, bool)
        if self.options["fill_kernel_frac"] > 0:
            fill_density, fill_neutrality, fill_absorbed = _ink_density(
                small, _odd(self.options["fill_kernel_frac"] * side), exclude=backdrop, shrink=4
            )
            fill = (
                inside
                & ~skin
                & (fill_density >= self.options["min_fill_density"])
                & (fill_neutrality >= self.options["min_fill_neutrality"])
            )
            fill = _off_frame(cv2.morphologyEx(fill.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0)
            new = fill & ~ink
            solid = new
            ink = ink | fill
            density = np.where(new, fill_density, density)
            absorbed = np.where(new[..., None], fill_absorbed, absorbed)
        chroma: FloatImage = np.hypot(lab[..., 1].astype(np.float32) - 128.0, lab[..., 2].astype(np.float32) - 128.0)
        context = _Context(
            small=small,
            skin=skin,
            backdrop=backdrop,
            round_field=_round_field(lightness),
            lightness=lightness,
            skin_lightness=skin_lightness,
            chroma=chroma,
            skin_chroma=float(np.median(chroma[skin])),
            skin_share=float(skin.mean()),
        )
        # One thinning for both passes (it is the costliest step); each keeps its own centre lines.
        skeleton = _skeleton(ink | colour_ink)
        groups = self._group(ink, density, absorbed, side, context=context, solid=solid, skeleton=skeleton & ink)
        if colour_ink.any():
            groups += self._group(
                colour_ink,
                density,
                absorbed,
                side,
                context=context,
                solid=np.zeros_like(solid),
                skeleton=skeleton & colour_ink,
                colour=True,
            )
        return sorted(groups, key=lambda group: -group.score), skin_lightness

    def merge(self, groups: list[InkGroup], *, side: float) -> list[InkGroup]:
        """Join groups scoring at least ``min_score`` that lie near each other, plus weak neighbours.

        One tattoo often falls apart into several stroke groups (a rose and its
        leaves, a name under a picture); the proposed redaction box must cover
        all of them. Strong groups chain; a weak group is absorbed only when it
        touches a strong cluster's reach (one pass, no chaining through weak
        groups), so weak groups never raise an alarm or spread a box on their own.
        """
        gap = round(self.options["merge_gap_frac"] * side)
        strong = [group for group in groups if group.score >= self.options["min_score"]]
        weak = [group for group in groups if group.score < self.options["min_score"]]
        clusters: list[InkGroup] = []
        while strong:
            seed = strong.pop(0)
            grew = True
            while grew:
                near = [group for group in strong if not _reach(seed.box, gap).intersection(group.box).is_empty]
                for group in near:
                    strong.remove(group)
                    seed = _join(seed, group)
                grew = bool(near)
            clusters.append(seed)
        merged = []
        for cluster in clusters:
            reach = _reach(cluster.box, gap)
            for group in [group for group in weak if not reach.intersection(group.box).is_empty]:
                weak.remove(group)
                cluster = _join(cluster, group)
            merged.append(cluster)
        return sorted(merged, key=lambda group: -group.score)

    def probability(self, evidence: float) -> float:
        """The calibrated probability that a group with this ``evidence`` score is a tattoo.

        A logistic (Platt) map of the evidence's logit, ``calibration_slope`` and
        ``calibration_offset`` fitted on labelled stroke groups of the devdata tune
        split by ``benchmarks/train_tattoo_calibration.py``; slope 1 and offset 0
        leave the evidence as it is.
        """
        clipped = min(max(evidence, _EVIDENCE_FLOOR), 1.0 - _EVIDENCE_FLOOR)
        logit = np.log(clipped / (1.0 - clipped))
        if evidence <= 0.0:
            return 0.0  # a group with no evidence at all (a ramp at zero) is never a tattoo
        value = self.options["calibration_slope"] * logit + self.options["calibration_offset"]
        return float(1.0 / (1.0 + np.exp(-value)))

    def _scored(self, groups: list[InkGroup]) -> list[InkGroup]:
        """``groups`` with ``score`` set to the probability that each is a tattoo.

        With ``learned_score`` on, the learned model over every group's raw cues
        at once; off, the Platt map of the rule product (``evidence``), as in @3.
        """
        if not groups:
            return groups
        if self.model is None:
            scores = [self.probability(group.evidence) for group in groups]
        else:
            rows = np.stack([group.features.vector() for group in groups if group.features is not None])
            scores = [float(value) for value in self.model.probability(rows)]
        return [replace(group, score=score) for group, score in zip(groups, scores, strict=True)]

    def _group(
        self,
        ink: BoolMask,
        density: FloatImage,
        absorbed: FloatImage,
        side: int,
        *,
        context: _Context,
        solid: BoolMask,
        skeleton: BoolMask,
        colour: bool = False,
    ) -> list[InkGroup]:
        count, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
        min_stroke = self.options["min_stroke_frac"] * side
        lengths = np.bincount(labels[skeleton], minlength=count)
        keep = np.zeros(count, bool)
        keep[1:] = lengths[1:] >= min_stroke
        strokes = keep[labels]
        if not strokes.any():
            return []
        gap = _odd(self.options["group_gap_frac"] * side)
        joined = cv2.dilate(strokes.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap, gap)))
        group_count, group_labels, group_stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        spur = max(1, round(self.options["spur_frac"] * side))
        junctions = _junctions(_prune(skeleton & strokes, spur))
        halo = cv2.dilate(strokes.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        # What the ink sits on: a ring 2 to 4 pixels out from any ink.
        ink_bytes = ink.astype(np.uint8)
        ring = (cv2.dilate(ink_bytes, np.ones((9, 9), np.uint8)) > 0) & ~(
            cv2.dilate(ink_bytes, np.ones((3, 3), np.uint8)) > 0
        )
        # Just outside the strokes (1 to 2 pixels): ink stops sharply, inflammation and pigment fade.
        near = (cv2.dilate(ink_bytes, np.ones((5, 5), np.uint8)) > 0) & ~ink
        backdrop = context.backdrop
        # Dark and not skin: the background beyond a limb, the gap between fingers, a sleeve.
        shadow = ~context.skin & ~ink & ~backdrop & (context.lightness < 0.6 * context.skin_lightness)
        chroma = context.chroma
        skin_chroma = context.skin_chroma
        vignette = context.round_field
        image_height, image_width = ink.shape
        groups = []
        for index in range(1, group_count):
            # Work inside the group's bounding box: a busy image has hundreds of groups.
            left, top, width, height = (int(value) for value in group_stats[index, :4])
            window = np.s_[top : top + height, left : left + width]
            in_group = group_labels[window] == index
            member = in_group & strokes[window]
            ys, xs = np.nonzero(member)
            stroke_ids = np.unique(labels[window][member])
            length = float(lengths[stroke_ids].sum()) / side
            junction_count = int(junctions[window][member].sum())
            # JPEG stores colour at half resolution, so a thin stroke's colour is smeared
            # onto its neighbours; summing over a halo round the strokes recovers most of it.
            around = in_group & halo[window]
            under = in_group & ring[window]
            on_backdrop = float(backdrop[window][under].mean()) if under.any() else 0.0
            on_shadow = float(shadow[window][under].mean()) if under.any() else 0.0
            absorbed_here = absorbed[window]
            red, green, blue = (float(absorbed_here[..., channel][around].sum()) + 1e-3 for channel in range(3))
            neutral = red / blue
            core = float(np.mean(density[window][member]))
            outside = in_group & near[window]
            edge = float(np.mean(density[window][outside])) / max(core, 1e-3) if outside.any() else 0.0
            box_left, box_top = left + int(xs.min()), top + int(ys.min())
            box_right, box_bottom = left + int(xs.max()) + 1, top + int(ys.max()) + 1
            touches = (
                (box_left <= 1) + (box_top <= 1) + (box_right >= image_width - 1) + (box_bottom >= image_height - 1)
            )
            box_area = (box_right - box_left) * (box_bottom - box_top)
            greenness = green / (0.5 * (red + blue))
            features = InkFeatures(
                stroke_length=length,
                strokes=float(len(stroke_ids)),
                junctions=float(junction_count),
                neutrality=neutral,
                greenness=greenness,
                colour=float(colour),
                density=core,
                edge=edge,
                backdrop=on_backdrop,
                shadow=on_shadow,
                skin_around=float(context.skin[window][under].mean()) if under.any() else 0.0,
                round_field=vignette,
                chroma_gain=float(np.mean(chroma[window][member])) - skin_chroma,
                border=float(touches),
                area=box_area / float(image_height * image_width),
                coverage=float(member.sum()) / max(box_area, 1),
                fill=float(solid[window][member].mean()),
                skin_share=context.skin_share,
            )
            evidence = self._score(
                length,
                neutral,
                len(stroke_ids),
                junction_count,
                on_backdrop,
                greenness=greenness,
                edge=edge,
                round_field=vignette,
                shadow=on_shadow,
                colour=colour,
            )
            groups.append(
                InkGroup(
                    box=Box(box_left, box_top, box_right, box_bottom),
                    stroke_length=length,
                    strokes=len(stroke_ids),
                    junctions=junction_count,
                    neutrality=neutral,
                    density=core,
                    backdrop=on_backdrop,
                    score=evidence,
                    edge=edge,
                    greenness=greenness,
                    chroma_gain=features.chroma_gain,
                    vignette=vignette,
                    border=float(touches),
                    area=features.area,
                    fill=features.fill,
                    shadow=on_shadow,
                    evidence=evidence,
                    features=features,
                )
            )
        groups = self._scored(groups)
        return sorted(groups, key=lambda group: -group.score)

    def _score(
        self,
        length: float,
        neutrality: float,
        strokes: int,
        junctions: int,
        backdrop: float,
        *,
        greenness: float = 1.0,
        edge: float = 0.0,
        round_field: float = 0.0,
        shadow: float = 0.0,
        colour: bool = False,
    ) -> float:
        option = self.options
        complexity = strokes + junctions / 2.0
        hue = (
            _ramp(greenness, option["greenness_low"], option["greenness_high"])
            if colour
            else _ramp(neutrality, option["neutrality_low"], option["neutrality_high"])
        )
        parts = (
            _ramp(length, option["stroke_length_low"], option["stroke_length_high"]),
            hue,
            _ramp(complexity, option["complexity_low"], option["complexity_high"]),
            1.0 - _ramp(backdrop, option["backdrop_low"], option["backdrop_high"]),
            1.0 - _ramp(edge, option["edge_low"], option["edge_high"]),
            1.0 - _ramp(round_field, option["round_field_low"], option["round_field_high"]),
            1.0 - _ramp(shadow, option["shadow_low"], option["shadow_high"]),
        )
        return float(np.prod(parts))


def _check_options(options: dict[str, float], name: str) -> None:
    """Refuse option values that cannot work.

    Raises
    ------
    ConfigError
        Naming the first bad option and its valid range.
    """
    problems = [
        ("work_side_px", options["work_side_px"] >= 128, "must be at least 128"),
        ("skin_hue_deg", 0.0 < options["skin_hue_deg"] <= 180.0, "must be in (0, 180]"),
        ("skin_chroma_ratio", 0.0 < options["skin_chroma_ratio"] < 1.0, "must be in (0, 1)"),
        ("min_score", 0.0 <= options["min_score"] <= 1.0, "must be in 0..1"),
        ("bright_skin_lightness", 0.0 <= options["bright_skin_lightness"] < 255.0, "must be in [0, 255) (0: off)"),
        ("colourless_score", 0.0 <= options["colourless_score"] <= 1.0, "must be in 0..1 (0: off)"),
        ("colourless_max_chroma", options["colourless_max_chroma"] >= 0.0, "must not be negative"),
        ("colourless_min_structure", options["colourless_min_structure"] >= 0.0, "must not be negative"),
        ("calibration_slope", 0.0 < options["calibration_slope"] <= 20.0, "must be in (0, 20] (it keeps the order)"),
        ("calibration_offset", -20.0 <= options["calibration_offset"] <= 20.0, "must be in [-20, 20]"),
        ("fill_kernel_frac", 0.0 <= options["fill_kernel_frac"] <= 0.5, "must be in [0, 0.5] (0: no fill pass)"),
        *(
            (key, 0.0 < options[key] <= 0.5, "must be in (0, 0.5]")
            for key in sorted(options)
            if key.endswith("_frac") and key != "fill_kernel_frac"
        ),
        *(
            (f"{stem}_low", options[f"{stem}_low"] <= options[f"{stem}_high"], f"must not exceed {stem}_high")
            for stem in (
                "stroke_length",
                "neutrality",
                "complexity",
                "backdrop",
                "greenness",
                "edge",
                "round_field",
                "shadow",
            )
        ),
    ]
    for key, valid, problem in problems:
        if not valid:
            raise ConfigError(f"option {key!r} of detector {name} {problem}", hint=f"default is {_OPTIONS[key]}")


def _reach(box: Box, gap: int) -> Box:
    """``box`` grown by ``gap`` pixels on every side."""
    return Box(box.left - gap, box.top - gap, box.right + gap, box.bottom + gap)


def _join(first: InkGroup, second: InkGroup) -> InkGroup:
    """Two groups as one: union box, summed strokes, the better score."""
    return InkGroup(
        box=first.box.union(second.box),
        stroke_length=first.stroke_length + second.stroke_length,
        strokes=first.strokes + second.strokes,
        junctions=first.junctions + second.junctions,
        neutrality=first.neutrality if first.score >= second.score else second.neutrality,
        backdrop=first.backdrop if first.score >= second.score else second.backdrop,
        density=max(first.density, second.density),
        score=max(first.score, second.score),
        evidence=max(first.evidence, second.evidence),
        features=first.features if first.score >= second.score else second.features,
    )


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear between."""
    if high <= low:
        return 1.0 if value >= high else 0.0
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def _odd(size: float) -> int:
    """The odd kernel size nearest ``size``, at least 3."""
    return max(3, round(size) | 1)


def _shrink(image: RGBImage, side: int) -> RGBImage:
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= side:
        return image
    factor = side / long_side
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _tone_to(image: RGBImage, lightness: float, target: float) -> RGBImage:
    """``image`` through the power-law tone curve that takes 8-bit ``lightness`` to ``target`` (both 1-254)."""
    exponent = np.log(target / 255.0) / np.log(min(max(lightness, 1.0), 254.0) / 255.0)
    curve = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** exponent), 0, 255).astype(np.uint8)
    toned: RGBImage = np.asarray(cv2.LUT(image, curve), np.uint8)
    return toned


def _skin_mask(
    image: RGBImage,
    *,
    hue_deg: float,
    chroma_ratio: float,
    lab: npt.NDArray[np.uint8] | None = None,
    min_chroma: float = float(_OPTIONS["min_skin_chroma"]),
) -> BoolMask | None:
    """This image's skin by its own hue and chroma, or ``None`` when it shows too little skin.

    Skin is a pixel whose CIELAB hue lies within ``hue_deg`` of the seed
    pixels' median hue and whose chroma is between ``chroma_ratio`` and
    ``1 / chroma_ratio`` times theirs. The chroma floor is what keeps white
    sheets, grey floors and walls out: they are near-neutral, skin never is.
    ``lab`` is the image in 8-bit OpenCV CIELAB when the caller already has it.
    A picture whose seed pixels' median chroma is under ``min_chroma`` has no skin.
    """
    seed = _seed_gamut(image)
    # The seed gamut assumes a neutral white balance; under cool light (shade, daylight
    # through a window, a phone's blue cast) skin falls below its red floor. Whichever
    # shows more seed pixels, the photo as taken or a grey-world balanced copy, is the
    # lighting the skin model is built in (only the mask comes from it: densities are
    # ratios within each channel, which a colour cast does not change).
    balanced = _grey_world(image)
    balanced_seed = _seed_gamut(balanced)
    if int(balanced_seed.sum()) > int(seed.sum()):
        image, seed, lab = balanced, balanced_seed, None
    if int(seed.sum()) < _MIN_SEED_PIXELS:
        return None
    planes = np.asarray(lab if lab is not None else cv2.cvtColor(image, cv2.COLOR_RGB2LAB), np.uint8)
    a_star = planes[..., 1].astype(np.float32) - 128.0  # 8-bit OpenCV Lab: a*, b* offset by 128
    b_star = planes[..., 2].astype(np.float32) - 128.0
    chroma = np.hypot(a_star, b_star)
    # skin hues span about -30..100 degrees: no wrap-around
    hue_centre = float(np.median(np.degrees(np.arctan2(b_star[seed], a_star[seed]))))
    chroma_centre = float(np.median(chroma[seed]))
    if chroma_centre < min_chroma:  # a grey or black-and-white picture: no skin colour to go on
        return None
    # Within hue_deg of the centre hue <=> the cosine of the angle to the centre direction is at
    # least cos(hue_deg): a dot product, no arctangent per pixel.
    centre = np.radians(hue_centre)
    along = a_star * np.float32(np.cos(centre)) + b_star * np.float32(np.sin(centre))
    mask: BoolMask = (
        (along >= np.float32(np.cos(np.radians(hue_deg))) * chroma)
        & (chroma >= chroma_ratio * chroma_centre)
        & (chroma <= chroma_centre / chroma_ratio)
        & (planes[..., 0] >= _SEED_MIN_Y)
    )
    return mask


def _seed_gamut(image: RGBImage) -> BoolMask:
    """Pixels in the broad YCrCb skin gamut: the seeds of the per-image skin model."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    luma, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    seed: BoolMask = (
        (cr >= _SEED_CR[0]) & (cr <= _SEED_CR[1]) & (cb >= _SEED_CB[0]) & (cb <= _SEED_CB[1]) & (luma >= _SEED_MIN_Y)
    )
    return seed


def _grey_world(image: RGBImage) -> RGBImage:
    """``image`` with each channel scaled so that the mean of its lit pixels is grey (green kept)."""
    sample = np.ascontiguousarray(image[::4, ::4])  # a mean needs no full resolution
    lit = (sample.max(axis=2) >= _SEED_MIN_Y).astype(np.uint8)
    means = np.array(cv2.mean(sample, mask=lit)[:3]) if lit.any() else np.full(3, 128.0)
    gains = means[1] / np.maximum(means, 1.0)
    balanced: RGBImage = np.asarray(cv2.transform(image, np.diag(gains)), np.uint8)  # saturates at 255
    return balanced


def _round_field(lightness: FloatImage) -> float:
    """How much the frame looks like a dermatoscope's: dark outside a centred disc, lit inside.

    The share of dark pixels outside the inscribed ellipse, counted only when
    the middle of the ellipse is almost free of them (a limb on a black cloth
    is dark inside the ellipse too).
    """
    height, width = lightness.shape
    ys, xs = np.ogrid[:height, :width]
    radius = ((ys - (height - 1) / 2) / (height / 2)) ** 2 + ((xs - (width - 1) / 2) / (width / 2)) ** 2
    core = radius <= 0.5
    level = 0.35 * float(np.median(lightness[core]))
    dark = lightness < level
    outside = radius >= 1.1
    if not outside.any() or float(dark[core].mean()) > 0.05:
        return 0.0
    return float(dark[outside].mean())


def _open_threads(mask: BoolMask) -> BoolMask:
    """``mask`` less one-pixel threads (hairs, JPEG ringing): a 2x2 opening."""
    opened: BoolMask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    return opened


def _off_frame(mask: BoolMask) -> BoolMask:
    """``mask`` without the components that touch the image border.

    A dark fill running into the frame is, far more often than a tattoo, the
    shadow or background beyond the limb that the skin hull closed over.
    """
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = np.ones(count, bool)
    keep[edge] = False
    keep[0] = False
    result: BoolMask = keep[labels]
    return result


def _inside_skin(skin: BoolMask, kernel: int) -> BoolMask:
    """Skin closed by a ``kernel`` disc with its holes filled: where ink may be.

    Computed at a quarter of the size (the kernel is large and the result
    coarse), then scaled back.
    """
    height, width = skin.shape
    shrink = 4 if min(height, width) >= 64 else 1
    small = cv2.resize(
        skin.astype(np.uint8) * 255, (max(1, width // shrink), max(1, height // shrink)), interpolation=cv2.INTER_AREA
    )
    size = _odd(kernel / shrink)
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    filled = ndimage.binary_fill_holes(closed >= 128).astype(np.uint8)
    inside: BoolMask = cv2.resize(filled, (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return inside


def _ink_density(
    image: RGBImage, kernel: int, *, exclude: BoolMask, shrink: int = 1
) -> tuple[FloatImage, FloatImage, FloatImage]:
    """Thin dark structures: mean optical density, red-to-blue density ratio, absorbed fraction per channel.

    The reference ("the skin that would be there") is a closing of the image
    with ``exclude`` (bright non-skin) blacked out first, so a white sheet
    never lends its brightness to the skin beside it. With ``shrink`` > 1 the
    closing runs on a copy that much smaller and is scaled back smoothly (for
    large kernels, where only the coarse skin matters).
    """
    source = image.copy()
    source[exclude] = 0
    height, width = image.shape[:2]
    if shrink > 1 and min(height, width) >= 16 * shrink:
        small = cv2.resize(source, (width // shrink, height // shrink), interpolation=cv2.INTER_AREA)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(kernel / shrink),) * 2)
        closed = cv2.resize(
            cv2.morphologyEx(small, cv2.MORPH_CLOSE, disc), (width, height), interpolation=cv2.INTER_LINEAR
        )
    else:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
        closed = cv2.morphologyEx(source, cv2.MORPH_CLOSE, disc)  # on uint8: several times faster than float
    pixels = image.astype(np.float32) + np.float32(4.0)  # +4 keeps log() finite on black
    reference = np.maximum(closed, image).astype(np.float32) + np.float32(4.0)
    transmitted = pixels / reference
    density = -np.log(transmitted)
    mean_density: FloatImage = np.asarray(cv2.transform(density, _CHANNEL_MEAN), np.float32)
    neutrality: FloatImage = (density[..., 0] + 0.02) / (density[..., 2] + 0.02)
    absorbed: FloatImage = 1.0 - transmitted
    return mean_density, neutrality, absorbed


def _skeleton(mask: BoolMask) -> BoolMask:
    """One-pixel-wide centre lines: Zhang-Suen thinning, pixel for pixel as OpenCV's ``ximgproc.thinning``.

    OpenCV scans the whole image twice per iteration; this scans only the
    pixels still on (a tenth of the image or less), each sub-iteration one
    vectorised look-up of its eight neighbours. Same lines, several times
    faster on the working copy. As in OpenCV, the image's outermost rows and
    columns are never thinned.
    """
    height, width = mask.shape
    padded = np.zeros((height + 2, width + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flat = padded.ravel()
    stride = width + 2
    # Neighbours p2..p9 of Zhang and Suen (1984): north, then clockwise; bit k of a code is p(k+2).
    offsets = (-stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1, -stride - 1)
    rows, columns = np.nonzero(mask[1:-1, 1:-1])
    index = (rows + 2) * stride + (columns + 2)
    changed = True
    while changed:
        changed = False
        for table in _THINNING_TABLES:
            code = np.zeros(index.size, np.uint8)
            for bit, offset in enumerate(offsets):
                code |= flat[index + offset] << bit
            delete = table[code]
            if delete.any():
                flat[index[delete]] = 0
                index = index[~delete]
                changed = True
    result: BoolMask = padded[1:-1, 1:-1] > 0
    return result


def _thinning_tables() -> tuple[BoolMask, BoolMask]:
    """Which 8-neighbour codes delete a pixel in Zhang-Suen's first and second sub-iteration."""
    first, second = np.zeros(256, bool), np.zeros(256, bool)
    for code in range(256):
        p2, _, p4, _, p6, _, p8, _ = bits = [(code >> bit) & 1 for bit in range(8)]
        crossings = sum(bits[k] == 0 and bits[(k + 1) % 8] == 1 for k in range(8))
        deletable = crossings == 1 and 2 <= sum(bits) <= 6
        first[code] = deletable and p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second[code] = deletable and p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


def _prune(skeleton: BoolMask, length: int) -> BoolMask:
    """Remove ``length`` pixels from every free end, so wobble spurs leave no junction behind.

    Closed loops survive untouched; a real branch only gets shorter.
    """
    pruned = skeleton.astype(np.uint8)
    ones = np.ones((3, 3), np.uint8)
    for _ in range(length):
        neighbours = cv2.filter2D(pruned, -1, ones, borderType=cv2.BORDER_CONSTANT)
        ends = (pruned > 0) & (neighbours <= 2)
        if not ends.any():
            break
        pruned[ends] = 0
    result: BoolMask = pruned > 0
    return result


def _junctions(skeleton: BoolMask) -> BoolMask:
    """One pixel per cluster of skeleton branch points.

    A branch point has a crossing number (background-to-line transitions
    walking round its 8 neighbours) of 3 or more; counting neighbours instead
    would call every staircase step of a diagonal line a junction.
    """
    line = skeleton.astype(np.uint8)
    # Neighbours clockwise from north, one bit each, so a lookup table gives the crossing number.
    weights = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)
    code = cv2.filter2D(line.astype(np.float32), -1, weights, borderType=cv2.BORDER_CONSTANT).astype(np.int32)
    branching = skeleton & (_CROSSING[code] >= 3)
    count, labels = cv2.connectedComponents(branching.astype(np.uint8), connectivity=8)
    first = np.zeros(skeleton.shape, bool)
    if count > 1:
        ys, xs = np.nonzero(branching)
        _, index = np.unique(labels[ys, xs], return_index=True)
        first[ys[index], xs[index]] = True
    return first


def _crossing_numbers() -> npt.NDArray[np.int32]:
    """Crossing number of every 8-neighbour bit pattern (bit 0 = north, clockwise)."""
    table = np.zeros(256, np.int32)
    for code in range(256):
        bits = [(code >> bit) & 1 for bit in range(8)]
        table[code] = sum(bits[i] == 0 and bits[(i + 1) % 8] == 1 for i in range(8))
    return table


_CROSSING = _crossing_numbers()
_THINNING_TABLES = _thinning_tables()
_CHANNEL_MEAN = np.full((1, 3), 1.0 / 3.0, np.float32)
