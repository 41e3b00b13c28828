"""Geometric verification of a candidate copy: OpenCV ORB keypoints and a RANSAC homography.

Hashes find candidates; this module checks them. Both images are scaled to the
same long side (``match.verify_side_px``), ORB keypoints are matched with
Lowe's ratio test, and a homography is fitted with RANSAC. A copy, a crop, a
resize or a re-encode of the reference maps onto it by one homography with
many inliers; an unrelated image does not. The verdict and its evidence come
back as a :class:`Verification` record, never as a bare boolean.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from deid.config import InputSettings, MatchSettings
from deid.match.features import gray_at, orb
from deid.match.fingerprint import TRANSFORMS
from deid.types import RGBImage

logger = logging.getLogger(__name__)

ReferenceLoader = Callable[[str], RGBImage]
"""Returns the pixels of an indexed reference by the name it was indexed under.

Raises :class:`~deid.errors.DeidError` when the reference cannot be had."""

_RANSAC_REPROJECTION_PX = 5.0
_MIN_AREA_FRAC = 0.05  # the query's outline must cover 5 %..2000 % of the reference
_MAX_AREA_FRAC = 20.0


class VerificationStatus(enum.StrEnum):
    """What geometric verification concluded."""

    VERIFIED = "verified"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"  # the images are too plain for keypoints to say anything
    UNAVAILABLE = "unavailable"  # no reference pixels (or verification is off): the hash alone decides


@dataclass(frozen=True, slots=True)
class Verification:
    """Evidence from matching keypoints between a query and one reference.

    Attributes
    ----------
    status
        Verified, rejected, or inconclusive (too few keypoints, or no reference pixels).
    inliers
        Matches consistent with the fitted homography.
    good_matches
        Matches that passed the ratio test.
    keypoints
        Keypoints found on the query and on the reference.
    note
        Why, in words (for a reviewer).
    """

    status: VerificationStatus
    inliers: int = 0
    good_matches: int = 0
    keypoints: tuple[int, int] = (0, 0)
    note: str = ""

    @property
    def is_verified(self) -> bool:
        """True when the homography check passed."""
        return self.status is VerificationStatus.VERIFIED

    def to_json(self) -> dict[str, object]:
        """JSON form for the ledger and the CLI."""
        return {
            "status": str(self.status),
            "inliers": self.inliers,
            "good_matches": self.good_matches,
            "keypoints": list(self.keypoints),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Keypoints:
    """ORB keypoints of one image as verification sees it: scaled to ``match.verify_side_px``.

    Made once per query and transform by :func:`keypoints_of`, and reused for every candidate.
    """

    shape: tuple[int, ...]
    points: Any
    descriptors: Any


def keypoints_of(pixels: RGBImage, settings: MatchSettings, *, transform: str = "identity") -> Keypoints:
    """The keypoints of ``pixels`` after ``transform`` (a name from :data:`~deid.match.fingerprint.TRANSFORMS`).

    Raises
    ------
    KeyError
        If ``transform`` is not a known name.
    cv2.error
        If OpenCV refuses the image.
    """
    oriented = np.ascontiguousarray(TRANSFORMS[transform](pixels), dtype=np.uint8)
    gray = gray_at(oriented, settings.verify_side_px)
    points, descriptors = orb(gray, settings.verify_features, retry_below=settings.verify_min_keypoints)
    return Keypoints(gray.shape, points, descriptors)


def verify_copy(
    query: RGBImage,
    reference: RGBImage,
    settings: MatchSettings,
    *,
    transform: str = "identity",
    query_keypoints: Keypoints | None = None,
) -> Verification:
    """Check geometrically whether ``query`` shows (part of) ``reference``.

    Parameters
    ----------
    query, reference
        Upright RGB images (any size; both are scaled to ``match.verify_side_px``).
    settings
        The ``[match]`` configuration (features, inlier thresholds).
    transform
        A name from :data:`deid.match.fingerprint.TRANSFORMS` applied to the
        query first: the flip or rotation under which its hash matched. ORB is
        rotation-invariant but not mirror-invariant, so this matters for mirrors.
    query_keypoints
        :func:`keypoints_of` the query under ``transform``, when already made
        (several candidates of one query share them).

    Returns
    -------
    Verification
        ``VERIFIED`` when at least ``match.verify_min_inliers`` matches, and at
        least ``match.verify_min_inlier_frac`` of the good ones, fit one
        homography that maps the query's outline to a plausible quadrilateral;
        ``INCONCLUSIVE`` when either image has too few keypoints; ``REJECTED`` otherwise.

    Raises
    ------
    KeyError
        If ``transform`` is not a known name.

    Examples
    --------
    >>> from skimage import data  # doctest: +SKIP
    >>> verify_copy(data.astronaut()[50:400, 80:450], data.astronaut(), settings).status  # doctest: +SKIP
    <VerificationStatus.VERIFIED: 'verified'>
    """
    try:
        mine = query_keypoints if query_keypoints is not None else keypoints_of(query, settings, transform=transform)
        theirs = keypoints_of(reference, settings)
    except cv2.error as error:
        return Verification(VerificationStatus.INCONCLUSIVE, note=f"ORB failed: {error}")
    query_points, query_descriptors = mine.points, mine.descriptors
    reference_points, reference_descriptors = theirs.points, theirs.descriptors
    counts = (len(query_points), len(reference_points))
    if min(counts) < settings.verify_min_keypoints or query_descriptors is None or reference_descriptors is None:
        return Verification(VerificationStatus.INCONCLUSIVE, keypoints=counts, note="too few keypoints to verify")
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query_descriptors, reference_descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < settings.lowe_ratio * p[1].distance]
    if len(good) < 4:
        return Verification(VerificationStatus.REJECTED, 0, len(good), counts, "no consistent keypoint matches")
    source = np.asarray([query_points[m.queryIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    target = np.asarray([reference_points[m.trainIdx].pt for m in good], dtype=np.float32).reshape(-1, 1, 2)
    try:
        homography, mask = cv2.findHomography(source, target, cv2.RANSAC, _RANSAC_REPROJECTION_PX)
    except cv2.error as error:
        return Verification(VerificationStatus.REJECTED, 0, len(good), counts, f"no homography: {error}")
    if homography is None or mask is None:
        return Verification(VerificationStatus.REJECTED, 0, len(good), counts, "no homography fits")
    inliers = int(mask.sum())
    fraction = inliers / len(good)
    if (
        inliers >= settings.verify_min_inliers
        and fraction >= settings.verify_min_inlier_frac
        and _is_plausible(homography, mine.shape, theirs.shape)
    ):
        return Verification(
            VerificationStatus.VERIFIED, inliers, len(good), counts, f"{inliers} inliers ({fraction:.0%})"
        )
    return Verification(
        VerificationStatus.REJECTED, inliers, len(good), counts, f"only {inliers} inliers ({fraction:.0%})"
    )


def _is_plausible(homography: npt.NDArray[Any], query_shape: tuple[int, ...], reference_shape: tuple[int, ...]) -> bool:
    """A copy maps the query's outline to a convex, unfolded quadrilateral of sensible size.

    A crop covers part of the reference; a padded screenshot covers more than
    all of it; many inliers packed on a sliver (repeated texture) or a folded
    mapping (negative determinant) are no copy.
    """
    if float(np.linalg.det(homography[:2, :2])) <= 0:
        return False
    height, width = query_shape[:2]
    corners = np.asarray([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64).reshape(-1, 1, 2)
    try:
        mapped = cv2.perspectiveTransform(corners, homography).reshape(-1, 2).astype(np.float32)
    except cv2.error:
        return False
    if not np.isfinite(mapped).all() or not cv2.isContourConvex(mapped):
        return False
    area_frac = float(cv2.contourArea(mapped)) / float(reference_shape[0] * reference_shape[1])
    return _MIN_AREA_FRAC <= area_frac <= _MAX_AREA_FRAC


def file_reference_loader(settings: InputSettings) -> ReferenceLoader:
    """A :data:`ReferenceLoader` that reads a reference from the path it was indexed under.

    Raises
    ------
    InputError
        (from the returned loader) if the file is missing or unreadable.
    """
    from deid.io import load_image  # io pulls in Pillow plugins; only needed when verifying from files

    def load(reference: str) -> RGBImage:
        return load_image(reference, settings).pixels

    return load
