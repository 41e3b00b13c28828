"""Evidence: what the image and the case say about how likely a region is to identify someone.

One job: lower a region's calibrated probability when the evidence deid
already has makes it implausible, never raise it, and never touch a region
a detector is confident about. Two sources:

* the pixels: :func:`skin_fraction` (a "person" that is all skin is a
  close-up of a limb, not a body in a setting), used by the detectors;
* the case: the self-reported body parts. A ``sensitive_body`` box on a case
  whose every reported part is a foot, a nail or a hand is implausible;
  :func:`weigh_by_body_parts` lowers it (the policy calls it). Faces are never
  weighed by the case: a face that looks like a face counts whatever the
  case says.

Lowering is Bayesian: the region's odds are multiplied by a likelihood
ratio below 1, so an uncertain region falls out of the review band while a
region scoring at least ``keep_above`` is left as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from deid.config import BodyPartEvidence
from deid.crop import estimate_skin_mask
from deid.types import Box, Region, RegionKind, RGBImage


def lower_odds(score: float, likelihood_ratio: float, *, keep_above: float) -> float:
    """``score`` with its odds multiplied by ``likelihood_ratio`` (<= 1), unless it is at least ``keep_above``.

    Examples
    --------
    >>> round(lower_odds(0.5, 0.25, keep_above=0.8), 2)
    0.2
    >>> lower_odds(0.9, 0.25, keep_above=0.8)
    0.9
    """
    if score >= keep_above or likelihood_ratio >= 1.0:
        return score
    if score <= 0.0:
        return 0.0
    odds = score / (1.0 - score) if score < 1.0 else float("inf")
    lowered = odds * likelihood_ratio
    return float(lowered / (1.0 + lowered))


def skin_fraction(image: RGBImage, box: Box | None = None) -> float:
    """Share of skin-coloured pixels in ``image`` (inside ``box`` when given, in ``image`` pixels)."""
    mask = estimate_skin_mask(image)
    if box is not None:
        sy, sx = mask.shape[0] / image.shape[0], mask.shape[1] / image.shape[1]
        top, bottom = int(box.top * sy), max(int(box.top * sy) + 1, int(np.ceil(box.bottom * sy)))
        left, right = int(box.left * sx), max(int(box.left * sx) + 1, int(np.ceil(box.right * sx)))
        mask = mask[top:bottom, left:right]
    return float(mask.mean()) if mask.size else 0.0


def is_implausible_for(kind: RegionKind, body_parts: Iterable[str], evidence: BodyPartEvidence) -> bool:
    """True when every self-reported body part rules out a region of ``kind``.

    Only ``sensitive_body`` is weighed: a nail, a foot or a hand photographed
    on its own does not show an intimate area. No reported part is no evidence.
    """
    if kind is not RegionKind.SENSITIVE_BODY:
        return False
    parts = [part.strip().lower() for part in body_parts if part.strip()]
    if not parts:
        return False
    words = tuple(word.lower() for word in evidence.not_intimate_parts)
    return all(any(word in part for word in words) for part in parts)


def weigh_by_body_parts(
    regions: Sequence[Region], body_parts: Iterable[str], evidence: BodyPartEvidence
) -> list[Region]:
    """Regions with implausible ones (see :func:`is_implausible_for`) lowered by ``evidence.likelihood_ratio``.

    A region scoring at least ``evidence.keep_above`` is never lowered, and
    the note says when one was.
    """
    parts = tuple(body_parts)
    weighed: list[Region] = []
    for region in regions:
        if not is_implausible_for(region.kind, parts, evidence):
            weighed.append(region)
            continue
        score = lower_odds(region.score, evidence.likelihood_ratio, keep_above=evidence.keep_above)
        if score == region.score:
            weighed.append(region)
            continue
        why = f"lowered from {region.score:.2f}: the case reports only body parts that show no intimate area"
        weighed.append(replace(region, score=score, note=f"{region.note}; {why}" if region.note else why))
    return weighed


__all__ = ["is_implausible_for", "lower_odds", "skin_fraction", "weigh_by_body_parts"]
