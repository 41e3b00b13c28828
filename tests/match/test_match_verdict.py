"""match_image: verdicts from the index, earlier releases and web searches, with evidence."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deid.config import MatchSettings
from deid.match import (
    MatchSource,
    MemoryMatchIndex,
    Verdict,
    Verification,
    VerificationStatus,
    WebMatch,
    WebMatchKind,
    compute_fingerprints,
    match_image,
)
from deid.match.verdict import judge
from deid.types import RGBImage
from tests.match.conftest import loader

V, R, PLAIN, U = (
    VerificationStatus.VERIFIED,
    VerificationStatus.REJECTED,
    VerificationStatus.INCONCLUSIVE,
    VerificationStatus.UNAVAILABLE,
)


@pytest.mark.parametrize(
    ("distance", "status", "expected"),
    [
        pytest.param(0, V, Verdict.PUBLIC_COPY, id="close-verified"),
        pytest.param(8, U, Verdict.PUBLIC_COPY, id="close-unavailable"),
        pytest.param(8, PLAIN, Verdict.REVIEW, id="close-too-plain"),
        pytest.param(8, R, Verdict.REVIEW, id="close-rejected-fails-closed"),
        pytest.param(10, V, Verdict.PUBLIC_COPY, id="near-verified"),
        pytest.param(10, PLAIN, Verdict.REVIEW, id="near-too-plain"),
        pytest.param(10, U, Verdict.REVIEW, id="near-unavailable"),
        pytest.param(10, R, Verdict.NONE, id="near-rejected"),
        pytest.param(12, V, Verdict.NONE, id="far"),
    ],
)
def test_judge(distance: int, status: VerificationStatus, expected: Verdict, settings: MatchSettings) -> None:
    assert settings.max_distance_bits == 8 and settings.review_distance_bits == 11  # the table assumes the defaults
    assert judge(distance, Verification(status), settings, Verdict.PUBLIC_COPY) is expected


def test_public_copy_is_verified(
    public: MemoryMatchIndex, photos: dict[str, RGBImage], settings: MatchSettings
) -> None:
    copy = np.asarray(Image.fromarray(photos["coffee"]).resize((200, 133)).rotate(90, expand=True))
    result = match_image(copy, public, settings, load_reference=loader(photos))
    assert result.verdict is Verdict.PUBLIC_COPY
    best = result.matches[0]
    assert best.match.reference == "atlas/coffee.png" and best.match.verified and best.source is MatchSource.PUBLIC
    assert best.verification is not None and best.verification.inliers >= settings.verify_min_inliers
    assert result.reasons[0].startswith("match.public_copy: atlas/coffee.png")
    assert result.to_json()["verdict"] == "public_copy"


def test_unrelated_is_none(public: MemoryMatchIndex, photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    result = match_image(photos["chelsea"], public, settings, load_reference=loader(photos))
    assert result.verdict is Verdict.NONE and result.matches == () and result.reasons == ()


def test_released_duplicate(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    released = MemoryMatchIndex()
    released.add("release-1/x.png", compute_fingerprints(photos["chelsea"], settings))
    result = match_image(photos["chelsea"], None, settings, release_index=released)
    assert result.verdict is Verdict.DUPLICATE
    assert result.matches[0].source is MatchSource.RELEASE


def test_missing_reference_is_inconclusive_not_an_error(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    index = MemoryMatchIndex()
    index.add("gone/camera.png", compute_fingerprints(photos["astronaut"], settings))
    result = match_image(photos["astronaut"], index, settings, load_reference=loader({}))
    assert result.verdict is Verdict.PUBLIC_COPY  # identical hash: a copy even unverified
    assert result.matches[0].verification is not None
    assert result.matches[0].verification.status is VerificationStatus.UNAVAILABLE


class FakeWeb:
    name = "fake"

    def search(self, image: RGBImage) -> list[WebMatch]:
        return [
            WebMatch("https://example.org/a.jpg", WebMatchKind.PARTIAL, 0.4, "fake"),
            WebMatch("https://example.org/b.jpg", WebMatchKind.FULL, 0.9, "fake"),
        ]


def test_web_matches(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    result = match_image(photos["chelsea"], None, settings, web=[FakeWeb()])
    assert result.verdict is Verdict.PUBLIC_COPY
    assert [(e.verdict, e.source) for e in result.matches] == [
        (Verdict.PUBLIC_COPY, MatchSource.WEB),
        (Verdict.REVIEW, MatchSource.WEB),
    ]
