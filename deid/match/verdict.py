"""One image against the public index, earlier releases and (optionally) the web: a verdict with evidence.

:func:`match_image` is what the pipeline calls per image. It fingerprints the
image, looks it up, verifies the closest candidates geometrically, and returns
a :class:`MatchResult` whose verdict is the most serious of its matches:

=============  ============================================================
public_copy    a public reference (index or web full match): exclude it
duplicate      an image of an earlier release: exclude it as a duplicate
review         a near miss, or a close hash that verification contradicts: hold it
none           nothing close
=============  ============================================================

Per candidate, with ``d`` its distance in bits::

    d <= max_distance_bits     verified, or no reference pixels to check  -> copy
    d <= max_distance_bits     rejected, or too plain to check            -> review (fail closed)
    d <= review_distance_bits  verified                                   -> copy
    d <= review_distance_bits  too plain, or no reference pixels          -> review
    d <= review_distance_bits  rejected                                   -> none

A plain image (a blank wall, a flat colour) hashes like every other plain
image, so a close hash without keypoints to confirm it is held, not excluded.

References the hashes miss are also looked up by local features
(``match.features``: ORB visual words, then descriptor partners; method
``orb:<partners>``, distance the partners' median bits of 256). A feature
candidate stands on geometry alone::

    public reference     verified -> copy; no reference pixels -> review; rejected, too plain -> none
    earlier release      verified, no reference pixels -> review; rejected, too plain -> none

Features only propose: a shortlisted reference that geometry rejects, or
that is too plain to check, was a guess and leaves no evidence (a plain
near-identical copy is still caught by its hashes).

A verified feature match to an earlier release is held, not excluded: a
contributor's new photo of the same lesion from nearly the same place maps
onto the old one too, and only a person can tell a re-upload from a
follow-up photo.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2

from deid.config import MatchSettings
from deid.errors import DeidError
from deid.match.fingerprint import Fingerprints, compute_fingerprints
from deid.match.protocol import MatchIndex
from deid.match.verify_geometry import (
    Keypoints,
    ReferenceLoader,
    Verification,
    VerificationStatus,
    keypoints_of,
    verify_copy,
)
from deid.match.web import ReverseImageSearch, WebMatch, WebMatchKind
from deid.types import Match, RGBImage

logger = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    """What matching concluded about an image (or one of its matches)."""

    PUBLIC_COPY = "public_copy"
    DUPLICATE = "duplicate"
    REVIEW = "review"
    NONE = "none"


_SEVERITY = {Verdict.PUBLIC_COPY: 3, Verdict.DUPLICATE: 2, Verdict.REVIEW: 1, Verdict.NONE: 0}


class MatchSource(enum.StrEnum):
    """Where a match was found."""

    PUBLIC = "public"
    RELEASE = "release"
    WEB = "web"


@dataclass(frozen=True, slots=True)
class MatchEvidence:
    """One candidate, its verdict and the evidence for it."""

    match: Match
    verdict: Verdict
    source: MatchSource
    verification: Verification | None = None
    web: WebMatch | None = None

    def to_json(self) -> dict[str, object]:
        """``{"reference", "distance", "method", "verified", "verdict", ...}`` for the CLI and ledger."""
        out: dict[str, object] = {
            "reference": self.match.reference,
            "distance": self.match.distance,
            "method": self.match.method,
            "verified": self.match.verified,
            "verdict": str(self.verdict),
            "source": str(self.source),
        }
        if self.verification is not None:
            out["verification"] = self.verification.to_json()
        if self.web is not None:
            out["web"] = self.web.to_json()
        return out


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The verdict on one image, its matches (most serious first) and its fingerprints."""

    verdict: Verdict
    matches: tuple[MatchEvidence, ...]
    fingerprints: Fingerprints

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per match that is not ``none``, naming the rule (for ``Outcome.reasons``)."""
        return tuple(
            f"match.{e.verdict}: {e.match.reference} at {e.match.distance:g} bits ({e.match.method}"
            + (f", {e.verification.status}" if e.verification else "")
            + ")"
            for e in self.matches
            if e.verdict is not Verdict.NONE
        )

    def to_json(self) -> dict[str, object]:
        """JSON form: verdict, matches and fingerprints (hex)."""
        return {
            "verdict": str(self.verdict),
            "matches": [e.to_json() for e in self.matches],
            "fingerprints": self.fingerprints.to_json(),
        }


FEATURE_METHOD = "orb"
"""Method prefix of candidates found by local features."""


def judge_feature(verification: Verification | None, copy: Verdict) -> Verdict:
    """The verdict for one local-feature candidate (see the module docstring)."""
    status = verification.status if verification is not None else VerificationStatus.UNAVAILABLE
    if status in (VerificationStatus.REJECTED, VerificationStatus.INCONCLUSIVE):
        return Verdict.NONE
    if status is VerificationStatus.VERIFIED and copy is Verdict.PUBLIC_COPY:
        return copy
    return Verdict.REVIEW


def judge(distance: float, verification: Verification | None, settings: MatchSettings, copy: Verdict) -> Verdict:
    """The verdict for one hash candidate at ``distance`` bits (see the module docstring)."""
    status = verification.status if verification is not None else VerificationStatus.UNAVAILABLE
    if distance <= settings.max_distance_bits:
        return copy if status in (VerificationStatus.VERIFIED, VerificationStatus.UNAVAILABLE) else Verdict.REVIEW
    if distance <= settings.review_distance_bits:
        if status is VerificationStatus.VERIFIED:
            return copy
        return Verdict.NONE if status is VerificationStatus.REJECTED else Verdict.REVIEW
    return Verdict.NONE


def _transform_of(method: str) -> str:
    """The query transform in a match method ``phash:<part>:<transform>~<window>`` (``orb:…``: none)."""
    if method.startswith(f"{FEATURE_METHOD}:"):
        return "identity"
    view = method.split("~", 1)[0]
    return view.rsplit(":", 1)[-1]


def _check(
    pixels: RGBImage,
    candidates: Sequence[Match],
    settings: MatchSettings,
    load_reference: ReferenceLoader | None,
    source: MatchSource,
    keypoints: dict[str, Keypoints],
) -> list[MatchEvidence]:
    """Verify and judge each candidate; ``keypoints`` caches the query's, per transform, across calls."""
    copy = Verdict.DUPLICATE if source is MatchSource.RELEASE else Verdict.PUBLIC_COPY
    # A candidate found by local features alone had no hash agreeing with it: it needs stronger geometry.
    strict = replace(
        settings,
        verify_min_inliers=settings.feature_min_inliers,
        verify_min_inlier_frac=settings.feature_min_inlier_frac,
    )
    out = []
    for match in candidates[: settings.max_candidates]:
        verification: Verification | None = None
        by_features = match.method.startswith(f"{FEATURE_METHOD}:")
        if settings.verify and load_reference is not None:
            transform = _transform_of(match.method)
            if transform not in keypoints:
                with contextlib.suppress(cv2.error):  # verify_copy then reports the failure itself
                    keypoints[transform] = keypoints_of(pixels, settings, transform=transform)
            try:
                reference = load_reference(match.reference)
                verification = verify_copy(
                    pixels,
                    reference,
                    strict if by_features else settings,
                    transform=transform,
                    query_keypoints=keypoints.get(transform),
                )
            except DeidError as error:
                verification = Verification(
                    VerificationStatus.UNAVAILABLE, note=f"reference unavailable: {error.message}"
                )
        if by_features:
            verdict = judge_feature(verification, copy)
        else:
            verdict = judge(match.distance, verification, settings, copy)
        verified = verification is not None and verification.is_verified
        out.append(MatchEvidence(replace(match, verified=verified), verdict, source, verification))
    return out


def match_image(
    pixels: RGBImage,
    index: MatchIndex | None,
    settings: MatchSettings,
    *,
    release_index: MatchIndex | None = None,
    load_reference: ReferenceLoader | None = None,
    web: Sequence[ReverseImageSearch] = (),
    fingerprints: Fingerprints | None = None,
) -> MatchResult:
    """Decide whether an image is a public copy, a duplicate of a released image, a near miss, or new.

    Parameters
    ----------
    pixels
        The upright RGB image (a detection-size copy is enough).
    index
        The public reference index (``None`` when ``match.index_dir`` is empty).
    settings
        The ``[match]`` configuration.
    release_index
        Fingerprints of every earlier release; a hit is a ``duplicate``.
    load_reference
        Returns a reference's pixels by name, for geometric verification;
        ``None`` skips verification (every near miss is then held).
    web
        Web reverse-image searches (:func:`deid.match.web.build_web_searches`);
        a full match is a ``public_copy``, a partial or page match ``review``.
    fingerprints
        Precomputed fingerprints of ``pixels``, if any.

    Returns
    -------
    MatchResult
        The verdict, the evidence (most serious first) and the fingerprints
        (hex, for the ledger; add them to the release index once released).

    Raises
    ------
    InputError
        If ``pixels`` is not an ``H x W x 3`` ``uint8`` image.
    TransientError, DetectorError
        If a web search fails (the caller holds the image; transient ones may be retried).

    Examples
    --------
    >>> from deid.config import load_config
    >>> from deid.match import MemoryMatchIndex, compute_fingerprints
    >>> import numpy as np
    >>> settings = load_config().match
    >>> photo = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    >>> index = MemoryMatchIndex()
    >>> index.add("atlas/photo.png", compute_fingerprints(photo, settings))
    True
    >>> match_image(photo[:, ::-1], index, settings).verdict
    <Verdict.PUBLIC_COPY: 'public_copy'>
    """
    prints = fingerprints if fingerprints is not None else compute_fingerprints(pixels, settings)
    evidence: list[MatchEvidence] = []
    keypoints: dict[str, Keypoints] = {}  # the query's, per transform: made once, whatever the candidates
    for source, searched in ((MatchSource.PUBLIC, index), (MatchSource.RELEASE, release_index)):
        if searched is not None and len(searched):
            candidates = searched.query(prints, max_distance_bits=settings.review_distance_bits)
            by_hash = _check(pixels, candidates, settings, load_reference, source, keypoints)
            evidence.extend(by_hash)
            settled = any(e.verdict in (Verdict.PUBLIC_COPY, Verdict.DUPLICATE) for e in by_hash)
            if settings.features and not settled:
                # Crops and screenshots the windows miss. A reference the hashes found and geometry could not
                # confirm is checked again here, untransformed: a crop's hash may land on a mirrored window.
                seen = {e.match.reference for e in by_hash if e.verification is None or e.verification.is_verified}
                similar = searched.similar(
                    prints, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches
                )
                fresh = [match for match in similar if match.reference not in seen]
                checked = _check(pixels, fresh, settings, load_reference, source, keypoints)
                evidence.extend(e for e in checked if e.verdict is not Verdict.NONE)
    for search in web:
        for found in search.search(pixels):
            verdict = Verdict.PUBLIC_COPY if found.kind is WebMatchKind.FULL else Verdict.REVIEW
            match = Match(found.url, 0.0, f"web:{found.provider}:{found.kind}", verified=False)
            evidence.append(MatchEvidence(match, verdict, MatchSource.WEB, web=found))
    evidence.sort(key=lambda e: (-_SEVERITY[e.verdict], e.match.distance, e.match.reference))
    verdict = evidence[0].verdict if evidence else Verdict.NONE
    if verdict is not Verdict.NONE:
        logger.info("match verdict %s: %s", verdict, evidence[0].match.reference)
    return MatchResult(verdict, tuple(evidence), prints)
