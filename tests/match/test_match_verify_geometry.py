"""Geometric verification: a true crop is verified, an unrelated photo is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.config import MatchSettings
from deid.match import VerificationStatus, verify_copy
from deid.types import RGBImage


def test_true_crop_is_verified(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    reference = photos["astronaut"]
    crop = np.ascontiguousarray(reference[40:430, 60:470])
    result = verify_copy(crop, reference, settings)
    assert result.status is VerificationStatus.VERIFIED, result
    assert result.inliers >= settings.verify_min_inliers
    assert result.to_json()["status"] == "verified"


def test_mirrored_copy_is_verified_with_its_transform(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    """ORB is not mirror-invariant; the transform under which the hash matched undoes the mirror."""
    reference = photos["chelsea"]
    mirrored = np.ascontiguousarray(reference[:, ::-1])
    assert verify_copy(mirrored, reference, settings, transform="flip").is_verified


def test_unrelated_photo_is_rejected(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    result = verify_copy(photos["coffee"], photos["astronaut"], settings)
    assert result.status is VerificationStatus.REJECTED, result
    assert not result.is_verified


def test_plain_image_is_inconclusive(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    flat = np.full((200, 300, 3), 128, dtype=np.uint8)
    assert verify_copy(flat, photos["astronaut"], settings).status is VerificationStatus.INCONCLUSIVE


@pytest.mark.devdata
def test_real_public_photos(devdata: Path, settings: MatchSettings) -> None:
    """A resized, re-encoded crop of a devdata photo is verified against it and rejected against another."""
    files = sorted((devdata / "neardup").glob("*.jpg"))
    original = np.asarray(Image.open(files[0]).convert("RGB"))
    other = np.asarray(Image.open(files[5]).convert("RGB"))
    height, width = original.shape[:2]
    crop = Image.fromarray(original[height // 8 :, : width * 7 // 8]).resize((width // 2, height // 2))
    copy = np.asarray(crop)
    assert verify_copy(copy, original, settings).is_verified
    assert not verify_copy(copy, other, settings).is_verified
