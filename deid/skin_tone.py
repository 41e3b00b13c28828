"""Estimated skin tone of an image: Individual Typology Angle (ITA) from CIELAB.

The data card shows the distribution of skin tones even where the self-reported
Fitzpatrick type is missing. This is an **estimate** from pixel colours, not a
label: lighting, white balance and the condition itself move it, and it is
labelled as an estimate wherever it is shown.

Method
------
1. **Skin pixels.** Without an explicit ``mask``, a pixel counts as skin when
   its BT.601 full-range chroma lies in the box of Chai and Ngan (1999)
   (``[skin]`` in the configuration: ``77 <= Cb <= 127`` and ``133 <= Cr <= 173``
   by default), and its luma is in ``20 <= Y <= 250`` (drops deep shadow and
   specular highlights). The
   redaction fill colour (exactly ``fill_rgb``) is never skin, so redacted
   boxes do not count even when the fill happens to be skin-coloured.
2. **CIELAB.** sRGB is linearised, converted to XYZ and then to CIE L*a*b*
   under the D65 white point.
3. **ITA** per pixel, ``atan2(L* - 50, b*)`` in degrees (the classical
   ``arctan((L* - 50) / b*)`` for ``b* > 0``, defined everywhere), and the
   image's value is the median over skin pixels (robust to shadows, highlights
   and small lesions).
4. **Band**, after Chardon et al. (1991) and Del Bino & Bernerd (2013):
   very light > 55°, light 41-55°, intermediate 28-41°, tan 10-28°,
   brown -30-10°, dark < -30°.

When fewer than ``min_skin_fraction`` of the pixels (or fewer than
``min_skin_pixels``) are skin, the result is ``UNDETERMINED`` with no angle.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from deid.config import SkinSettings, default_config
from deid.errors import InputError
from deid.types import RGBImage

METHOD = "ita-cielab-d65+ycbcr-chai-ngan/v1"
ITA_BANDS: tuple[tuple[float, str], ...] = (
    (55.0, "very_light"),
    (41.0, "light"),
    (28.0, "intermediate"),
    (10.0, "tan"),
    (-30.0, "brown"),
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)


class SkinToneBand(enum.StrEnum):
    """ITA skin tone bands (Chardon et al. 1991)."""

    VERY_LIGHT = "very_light"
    LIGHT = "light"
    INTERMEDIATE = "intermediate"
    TAN = "tan"
    BROWN = "brown"
    DARK = "dark"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True, slots=True)
class SkinToneEstimate:
    """An estimated skin tone: never a label, always shown as an estimate.

    ``ita_degrees`` is ``None`` when too little skin was found, and ``band`` is
    then ``UNDETERMINED``; ``skin_fraction`` is the share of pixels used.
    """

    ita_degrees: float | None
    band: SkinToneBand
    skin_fraction: float
    method: str = METHOD
    is_estimate: bool = True

    def to_json(self) -> dict[str, object]:
        """JSON form for reports and the data card."""
        return {
            "ita_degrees": None if self.ita_degrees is None else round(self.ita_degrees, 2),
            "band": str(self.band),
            "skin_fraction": round(self.skin_fraction, 4),
            "method": self.method,
            "is_estimate": self.is_estimate,
        }


def band_for_ita(ita_degrees: float) -> SkinToneBand:
    """Map an ITA angle to its band.

    Examples
    --------
    >>> band_for_ita(60.0), band_for_ita(30.0), band_for_ita(-45.0)
    (<SkinToneBand.VERY_LIGHT: 'very_light'>, <SkinToneBand.INTERMEDIATE: 'intermediate'>, <SkinToneBand.DARK: 'dark'>)
    """
    for lower, name in ITA_BANDS:
        if ita_degrees > lower:
            return SkinToneBand(name)
    return SkinToneBand.DARK


def rgb_to_lab(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Convert ``... x 3`` sRGB ``uint8`` values to CIE L*a*b* (D65).

    Raises
    ------
    InputError
        If the last axis is not of length 3.
    """
    if pixels.shape[-1:] != (3,):
        raise InputError(f"expected RGB values with a last axis of 3, got shape {pixels.shape}")
    rgb = pixels.astype(np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T / _D65_WHITE
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > epsilon, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def skin_mask(
    pixels: RGBImage, *, fill_rgb: Sequence[int] | None = (0, 0, 0), skin: SkinSettings | None = None
) -> npt.NDArray[np.bool_]:
    """Pixels that look like skin by the documented YCbCr rule, minus redaction fill.

    Parameters
    ----------
    pixels
        ``H x W x 3`` ``uint8`` RGB image.
    fill_rgb
        The redaction fill colour (``policy.fill_rgb``); exact matches are
        never skin. ``None`` disables the exclusion.
    skin
        The ``[skin]`` colour box; the shipped default when ``None``.

    Returns
    -------
    numpy.ndarray
        ``H x W`` boolean mask.

    Raises
    ------
    InputError
        If ``pixels`` is not ``H x W x 3``.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InputError(f"expected an H x W x 3 image, got shape {pixels.shape}")
    rgb = pixels.astype(np.float32)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    cb = 128 - 0.168736 * red - 0.331264 * green + 0.5 * blue
    cr = 128 + 0.5 * red - 0.418688 * green - 0.081312 * blue
    box = skin or default_config().skin
    mask: npt.NDArray[np.bool_] = _within(cb, box.cb_range) & _within(cr, box.cr_range) & _within(luma, box.luma_range)
    if fill_rgb is not None:
        mask &= ~np.all(pixels == np.asarray(fill_rgb, dtype=np.uint8), axis=-1)
    return mask


def estimate_skin_tone(
    pixels: RGBImage,
    mask: npt.NDArray[np.bool_] | None = None,
    *,
    fill_rgb: Sequence[int] | None = (0, 0, 0),
    min_skin_fraction: float = 0.02,
    min_skin_pixels: int = 64,
    max_pixels: int = 1_000_000,
    skin: SkinSettings | None = None,
) -> SkinToneEstimate:
    """Estimate an image's skin tone as an ITA angle and band.

    Parameters
    ----------
    pixels
        ``H x W x 3`` ``uint8`` RGB image (redacted or not).
    mask
        Optional ``H x W`` boolean mask of skin (for example from a person
        segmenter); the redaction fill is still excluded. Without it the
        YCbCr rule of :func:`skin_mask` decides.
    fill_rgb
        Redaction fill colour, never counted as skin.
    min_skin_fraction, min_skin_pixels
        Below either, the band is ``UNDETERMINED``.
    max_pixels
        Larger images are sampled on a regular grid down to about this many
        pixels first (the median barely moves; the time does).
    skin
        The ``[skin]`` colour box for :func:`skin_mask`; the shipped default when ``None``.

    Returns
    -------
    SkinToneEstimate
        The median ITA over skin pixels, its band, the skin fraction and the method.

    Raises
    ------
    InputError
        If ``pixels`` is not ``H x W x 3`` ``uint8`` or ``mask`` has another shape.

    Examples
    --------
    >>> patch = np.full((32, 32, 3), (141, 85, 36), dtype=np.uint8)
    >>> estimate = estimate_skin_tone(patch)
    >>> estimate.band, round(estimate.ita_degrees), estimate.is_estimate
    (<SkinToneBand.BROWN: 'brown'>, -13, True)
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InputError(f"expected an H x W x 3 uint8 image, got {pixels.dtype} {pixels.shape}")
    if mask is not None and mask.shape != pixels.shape[:2]:
        raise InputError(f"mask shape {mask.shape} does not match image {pixels.shape[:2]}")
    step = max(1, math.isqrt(pixels.shape[0] * pixels.shape[1] // max(1, max_pixels)))
    sample = pixels[::step, ::step]
    if mask is None:
        chosen = skin_mask(sample, fill_rgb=fill_rgb, skin=skin)
    else:
        chosen = mask[::step, ::step].astype(bool)
        if fill_rgb is not None:
            chosen = chosen & ~np.all(sample == np.asarray(fill_rgb, dtype=np.uint8), axis=-1)
    total = chosen.size
    count = int(chosen.sum())
    fraction = count / total if total else 0.0
    if count < min_skin_pixels or fraction < min_skin_fraction:
        return SkinToneEstimate(None, SkinToneBand.UNDETERMINED, fraction)
    lab = rgb_to_lab(sample[chosen])
    ita = np.degrees(np.arctan2(lab[:, 0] - 50.0, lab[:, 2]))
    angle = float(np.median(ita))
    return SkinToneEstimate(angle, band_for_ita(angle), fraction)


def _within(values: npt.NDArray[np.float32], low_high: Sequence[int]) -> npt.NDArray[np.bool_]:
    within: npt.NDArray[np.bool_] = (values >= low_high[0]) & (values <= low_high[1])
    return within
