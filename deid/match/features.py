"""Local features: ORB keypoint descriptors, and how many of a query's find a partner in a reference.

Window pHashes (:mod:`deid.match.fingerprint`) need the copy to line up with
a window to within a few per cent; a crop of a third of the picture, or a
photo shrunk into a screenshot, does not. Local features do: a crop keeps most
of the reference's corners, at the same relative places, whatever was cut
away. Each reference keeps its strongest ``match.reference_features``
descriptors; a query brings ``match.query_features``. The index shortlists
references that share visual words with the query
(:mod:`deid.match.vocabulary`, :mod:`deid.match.feature_store`), then
:func:`count_matches` counts, per shortlisted reference, the query descriptors
whose nearest reference descriptor is close and clearly nearer than the
second nearest (Lowe's ratio test). Geometric verification
(:mod:`deid.match.verify_geometry`) then decides.

Descriptors are 256-bit ORB (OpenCV), packed as 32 bytes, strongest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import faiss
import numpy as np
import numpy.typing as npt

from deid.config import default_config
from deid.types import RGBImage

FEATURE_BYTES = 32
"""Bytes of one ORB descriptor."""
MAX_MATCH_BITS = 40
"""A partner further than this many bits (of 256) is no partner.

Measured on the devdata copies (crops, screenshots, resizes, JPEG 30) against
the other 23 originals, with the ratio test: a true reference has p5 25
partners, an unrelated one at most 5; at 64 bits unrelated ones reach 32."""
_MIN_SIDE_PX = 64  # ORB ignores a 31 px border and halves its pyramid: a thinner image yields nothing
_SOFT_FAST_THRESHOLD = 7  # a plain or soft image is searched again with finer corners (OpenCV's default is 20)

Descriptors = npt.NDArray[np.uint8]

# Small exact searches dominate here; OpenMP's thread start-up costs more than it saves
# (measured: 0.2 ms per 500 x 96 search on one thread, 7 ms on two).
faiss.omp_set_num_threads(1)


def extract_features(pixels: RGBImage, *, side_px: int, count: int) -> Descriptors:
    """The ``count`` strongest ORB descriptors of an image scaled to ``side_px`` on its long side.

    Parameters
    ----------
    pixels
        ``H x W x 3`` ``uint8`` RGB.
    side_px
        Long side the image is scaled to first, so descriptors of a copy at
        another size describe the same neighbourhoods.
    count
        At most this many descriptors.

    Returns
    -------
    numpy.ndarray
        ``n x 32`` ``uint8``, strongest (by corner response) first; ``n`` is 0
        for a flat image.

    Examples
    --------
    >>> image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    >>> extract_features(image, side_px=256, count=50).shape
    (50, 32)
    """
    try:
        gray = gray_at(pixels, side_px)
        if min(gray.shape) < _MIN_SIDE_PX:  # a sliver: ORB's pyramid and border leave nothing to describe
            return np.zeros((0, FEATURE_BYTES), dtype=np.uint8)
        points, descriptors = orb(gray, count, retry_below=count // 4)
    except cv2.error:  # OpenCV refuses some degenerate images; they have nothing to match on
        return np.zeros((0, FEATURE_BYTES), dtype=np.uint8)
    if descriptors is None or not len(points):
        return np.zeros((0, FEATURE_BYTES), dtype=np.uint8)
    order = np.argsort([-point.response for point in points], kind="stable")[:count]
    return np.ascontiguousarray(np.asarray(descriptors, dtype=np.uint8)[order])


def gray_at(pixels: RGBImage, side_px: int) -> npt.NDArray[np.uint8]:
    """A grey copy of an RGB image scaled to ``side_px`` on its long side (area-averaged when shrinking)."""
    gray = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    scale = side_px / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(gray, size, interpolation=interpolation), dtype=np.uint8)


def orb(gray: npt.NDArray[np.uint8], count: int, *, retry_below: int) -> tuple[Any, Any]:
    """ORB keypoints and descriptors (OpenCV's, unsorted) of a grey image.

    A plain or soft image (a small copy scaled up) with fewer than
    ``retry_below`` corners is searched again with a finer corner threshold.

    Raises
    ------
    cv2.error
        If OpenCV refuses the image.
    """
    points, descriptors = cv2.ORB.create(nfeatures=count).detectAndCompute(gray, None)  # type: ignore[call-overload]
    if len(points) < retry_below:
        finer = cv2.ORB.create(nfeatures=count, fastThreshold=_SOFT_FAST_THRESHOLD)
        points, descriptors = finer.detectAndCompute(gray, None)  # type: ignore[call-overload]
    return points, descriptors


@dataclass(frozen=True, slots=True)
class DescriptorMatches:
    """How well a query's descriptors find partners in one reference.

    Attributes
    ----------
    matches
        Query descriptors whose nearest reference descriptor passes the ratio
        test and lies within :data:`MAX_MATCH_BITS`.
    median_bits
        Median Hamming distance (of 256 bits) of those partners; 256 when none.
    """

    matches: int
    median_bits: float


def count_matches(query: Descriptors, reference: Descriptors) -> DescriptorMatches:
    """Count the query descriptors with a clear partner among the reference's.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    >>> count_matches(reference[:30], reference).matches
    30
    >>> count_matches(rng.integers(0, 256, (30, 32), dtype=np.uint8), reference).matches
    0
    """
    return count_matches_many(query, [reference])[0]


def count_matches_many(
    query: Descriptors, references: Sequence[Descriptors], *, ratio: float | None = None
) -> list[DescriptorMatches]:
    """:func:`count_matches` of ``query`` against each of ``references``, in one search.

    A partner counts when it lies within :data:`MAX_MATCH_BITS` and is nearer
    than ``ratio`` (``match.lowe_ratio``; the configured default when ``None``)
    times the second-nearest descriptor *of the same
    reference*; each reference descriptor partners one query descriptor at
    most (its closest). One exact range search over all references' stacked
    descriptors finds every pair within ``MAX_MATCH_BITS / ratio`` bits, which
    is all the ratio test can need: a second-nearest further than that never
    spoils a partner within ``MAX_MATCH_BITS``.
    """
    lowe = ratio if ratio is not None else default_config().match.lowe_ratio
    counts = np.asarray([len(r) for r in references], dtype=np.int64)
    if not len(query) or not counts.sum():
        return [DescriptorMatches(0, 256.0) for _ in references]
    owner_of = np.repeat(np.arange(len(references), dtype=np.int64), counts)
    index = faiss.IndexBinaryFlat(FEATURE_BYTES * 8)
    index.add(np.ascontiguousarray(np.concatenate([r for r in references if len(r)]), dtype=np.uint8))
    radius = int(MAX_MATCH_BITS / lowe) + 1  # faiss keeps distances strictly below the radius
    limits, distances, hits = index.range_search(np.ascontiguousarray(query, dtype=np.uint8), radius)
    if not hits.size:
        return [DescriptorMatches(0, 256.0) for _ in references]
    queries = np.repeat(np.arange(len(query), dtype=np.int64), np.diff(limits.astype(np.int64)))
    owners = owner_of[hits]
    bits = distances.astype(np.float64)
    # Per (query descriptor, reference): the nearest and the second nearest.
    order = np.lexsort((bits, owners, queries))
    queries, owners, bits, hits = queries[order], owners[order], bits[order], hits[order]
    group = queries * len(references) + owners
    first = np.ones(group.size, dtype=bool)
    first[1:] = group[1:] != group[:-1]
    starts = np.flatnonzero(first)
    second = np.full(starts.size, np.inf)
    has_second = np.zeros(starts.size, dtype=bool)
    has_second[:-1] = np.diff(starts) > 1
    has_second[-1] = group.size - starts[-1] > 1
    second[has_second] = bits[starts[has_second] + 1]
    best, best_owner, best_hit = bits[starts], owners[starts], hits[starts]
    good = (best <= MAX_MATCH_BITS) & (best < lowe * second)
    best, best_owner, best_hit = best[good], best_owner[good], best_hit[good]
    # Each reference descriptor partners one query descriptor at most (its closest).
    order = np.lexsort((best, best_hit))
    best, best_owner, best_hit = best[order], best_owner[order], best_hit[order]
    unique = np.ones(best_hit.size, dtype=bool)
    unique[1:] = best_hit[1:] != best_hit[:-1]
    best, best_owner = best[unique], best_owner[unique]
    out = []
    for owner in range(len(references)):
        matched = best[best_owner == owner]
        out.append(DescriptorMatches(int(matched.size), float(np.median(matched)) if matched.size else 256.0))
    return out


def pack(descriptors: Descriptors) -> bytes:
    """Descriptors as bytes (``n x 32`` row-major)."""
    return np.ascontiguousarray(descriptors, dtype=np.uint8).tobytes()


def unpack(data: bytes) -> Descriptors:
    """Inverse of :func:`pack`.

    Raises
    ------
    ValueError
        If the length is not a multiple of 32 bytes.
    """
    if len(data) % FEATURE_BYTES:
        raise ValueError(f"{len(data)} bytes is not a whole number of {FEATURE_BYTES}-byte descriptors")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, FEATURE_BYTES)
