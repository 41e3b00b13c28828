"""Local features: ORB descriptors, the vocabulary, the on-disk inverted file, and what they find."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from deid.config import MatchSettings
from deid.errors import InputError, LedgerError
from deid.match import DiskMatchIndex, MemoryMatchIndex, Verdict, compute_fingerprints, match_image
from deid.match.feature_store import RETRAIN_GROWTH, TRAIN_MIN_REFERENCES, FeatureStore
from deid.match.features import count_matches, count_matches_many, extract_features, pack, unpack
from deid.match.fingerprint import Fingerprints
from deid.match.vocabulary import Vocabulary
from deid.types import RGBImage
from tests.match.conftest import loader


def crop_away(pixels: RGBImage, *, removed_frac: float, left_frac: float, top_frac: float) -> RGBImage:
    """A crop keeping ``1 - removed_frac`` of the area, placed at the given fractions of the slack."""
    height, width = pixels.shape[:2]
    side = (1.0 - removed_frac) ** 0.5
    h, w = round(height * side), round(width * side)
    top, left = round((height - h) * top_frac), round((width - w) * left_frac)
    return np.ascontiguousarray(pixels[top : top + h, left : left + w])


@pytest.fixture(scope="module")
def pool(photos: dict[str, RGBImage], settings: MatchSettings) -> np.ndarray:
    """Real descriptors of photos other than the astronaut, for synthetic references."""
    parts = [
        extract_features(photos[name], side_px=settings.feature_side_px, count=settings.query_features)
        for name in ("coffee", "chelsea", "rocket", "camera")
    ]
    return np.concatenate(parts)


def synthetic(pool: np.ndarray, count: int, per_reference: int, seed: int) -> np.ndarray:
    """``count`` references of real-looking descriptors: pool rows with about 6 % of their bits flipped."""
    rng = np.random.default_rng(seed)
    rows = pool[rng.integers(0, len(pool), count * per_reference)]
    flips = np.packbits(rng.random((count * per_reference, 256)) < 0.06, axis=1)
    return (rows ^ flips).reshape(count, per_reference, 32)


def add_synthetic(index: DiskMatchIndex, pool: np.ndarray, count: int, *, first: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, (count, 4), dtype=np.int64).astype(np.uint64)
    names = [f"synthetic/{first + i:05d}" for i in range(count)]
    index.add_codes(names, codes, descriptors=synthetic(pool, count, index_per_reference(index), seed))


def index_per_reference(index: DiskMatchIndex) -> int:
    return int(json.loads((index.directory / "meta.json").read_text())["features"]["per_reference"])


# --- descriptors ---------------------------------------------------------------------------------


def test_descriptors_are_strongest_first_and_capped(photos: dict[str, RGBImage]) -> None:
    descriptors = extract_features(photos["astronaut"], side_px=512, count=200)
    assert descriptors.shape == (200, 32) and descriptors.dtype == np.uint8
    # The strongest 50 of a request for 200 are the first 50 of it (a reference keeps a prefix).
    assert count_matches(extract_features(photos["astronaut"], side_px=512, count=50), descriptors).matches >= 45


def test_flat_image_has_no_descriptors() -> None:
    assert extract_features(np.full((300, 400, 3), 128, np.uint8), side_px=512, count=100).shape == (0, 32)


@pytest.mark.parametrize("shape", [(1, 4000), (3, 6000), (6000, 3), (1, 1), (40, 40), (70, 9000)])
def test_slivers_and_specks_have_no_descriptors_and_no_error(shape: tuple[int, int], settings: MatchSettings) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    prints = compute_fingerprints(pixels, settings)
    assert prints.descriptors.shape[1] == 32
    assert extract_features(pixels, side_px=512, count=100).shape[1] == 32


def test_crop_keeps_partners_an_unrelated_photo_lacks(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    reference = extract_features(photos["astronaut"], side_px=512, count=settings.reference_features)
    crop = crop_away(photos["astronaut"], removed_frac=0.3, left_frac=1.0, top_frac=0.0)
    crop_partners = count_matches(extract_features(crop, side_px=512, count=settings.query_features), reference)
    assert crop_partners.matches >= 2 * settings.feature_min_matches
    for other in ("coffee", "rocket", "camera"):
        unrelated = extract_features(photos[other], side_px=512, count=settings.query_features)
        assert count_matches(unrelated, reference).matches < crop_partners.matches / 3


@given(st.binary(max_size=32 * 6).map(lambda b: b[: len(b) - len(b) % 32]))
def test_pack_round_trip(data: bytes) -> None:
    assert pack(unpack(data)) == data


def test_unpack_refuses_partial_descriptor() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        unpack(b"\x00" * 33)


# --- vocabulary ----------------------------------------------------------------------------------


def test_vocabulary_round_trip_and_stable_words(pool: np.ndarray, tmp_path: Path) -> None:
    vocabulary = Vocabulary.train(pool, seed=3)
    assert 16 <= vocabulary.words <= len(pool) // 2
    words = vocabulary.assign(pool)
    assert words.min() >= 0 and words.max() < vocabulary.words
    vocabulary.save(tmp_path)
    again = Vocabulary.load(tmp_path)
    assert np.array_equal(again.assign(pool), words)


def test_near_descriptors_mostly_share_a_word(pool: np.ndarray) -> None:
    vocabulary = Vocabulary.train(pool, seed=1)
    rng = np.random.default_rng(0)
    noisy = pool ^ np.packbits(rng.random((len(pool), 256)) < 0.03, axis=1)
    assert np.mean(vocabulary.assign(noisy) == vocabulary.assign(pool)) > 0.5


def test_vocabulary_files_must_fit(pool: np.ndarray, tmp_path: Path) -> None:
    Vocabulary.train(pool[:500]).save(tmp_path)
    (tmp_path / "starts.i64").write_bytes(np.asarray([0, 1], dtype="<i8").tobytes())
    with pytest.raises(ValueError, match="do not fit"):
        Vocabulary.load(tmp_path)


# --- fingerprints --------------------------------------------------------------------------------


def test_fingerprint_features_round_trip(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    prints = compute_fingerprints(photos["coffee"], settings)
    assert settings.reference_features < len(prints.descriptors) <= settings.query_features
    stored = prints.for_reference(settings.reference_features)
    again = Fingerprints.from_json(json.loads(stored.dumps()))
    assert np.array_equal(again.descriptors, prints.descriptors[: settings.reference_features])
    # Fingerprints recorded before features existed still load, with none.
    old = prints.to_json()
    del old["features"]
    assert Fingerprints.from_json(old).features == b""


def test_fingerprint_features_reject_garbage(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    data = compute_fingerprints(photos["coffee"], settings).to_json()
    for bad in ("not base64!", "AAAA", 7):
        with pytest.raises(InputError, match="fingerprint"):
            Fingerprints.from_json({**data, "features": bad})


def test_features_off(photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    assert compute_fingerprints(photos["coffee"], replace(settings, features=False)).features == b""


# --- the indexes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("references", [8, 3 * TRAIN_MIN_REFERENCES], ids=["exhaustive", "vocabulary"])
def test_disk_index_finds_a_crop_by_features(
    references: int, photos: dict[str, RGBImage], pool: np.ndarray, settings: MatchSettings, tmp_path: Path
) -> None:
    with DiskMatchIndex(tmp_path / "index") as index:
        add_synthetic(index, pool, references // 2, first=0, seed=1)
        index.add("atlas/astronaut.png", compute_fingerprints(photos["astronaut"], settings))
        add_synthetic(index, pool, references - references // 2, first=references // 2, seed=2)
    index = DiskMatchIndex(tmp_path / "index", readonly=True)
    assert (index.directory / "features" / "vocab-1").is_dir() is (references + 1 >= TRAIN_MIN_REFERENCES)
    crop = crop_away(photos["astronaut"], removed_frac=0.3, left_frac=0.0, top_frac=1.0)
    prints = compute_fingerprints(crop, settings)
    found = index.similar(prints, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches)
    assert [m.reference for m in found] == ["atlas/astronaut.png"]
    assert found[0].method.startswith("orb:") and int(found[0].method[4:]) >= settings.feature_min_matches
    unrelated = compute_fingerprints(photos["chelsea"], settings)
    near = index.similar(unrelated, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches)
    assert "atlas/astronaut.png" not in [m.reference for m in near]


def test_memory_and_disk_agree(photos: dict[str, RGBImage], settings: MatchSettings, tmp_path: Path) -> None:
    memory = MemoryMatchIndex()
    with DiskMatchIndex(tmp_path / "index") as disk:
        for name in ("astronaut", "coffee", "rocket"):
            prints = compute_fingerprints(photos[name], settings).for_reference(settings.reference_features)
            memory.add(f"atlas/{name}.png", prints)
            disk.add(f"atlas/{name}.png", prints)
    crop = compute_fingerprints(crop_away(photos["coffee"], removed_frac=0.3, left_frac=0.5, top_frac=0.5), settings)
    kwargs = {"shortlist": settings.feature_shortlist, "min_matches": settings.feature_min_matches}
    assert memory.similar(crop, **kwargs) == disk.similar(crop, **kwargs)
    assert [m.reference for m in disk.similar(crop, **kwargs)][:1] == ["atlas/coffee.png"]


def test_vocabulary_is_retrained_as_the_index_grows(
    photos: dict[str, RGBImage], pool: np.ndarray, settings: MatchSettings, tmp_path: Path
) -> None:
    folder = tmp_path / "index"
    with DiskMatchIndex(folder) as index:
        index.add("atlas/astronaut.png", compute_fingerprints(photos["astronaut"], settings))
        add_synthetic(index, pool, TRAIN_MIN_REFERENCES, first=0, seed=1)
    state = json.loads((folder / "meta.json").read_text())["features"]
    assert state["generation"] == 1 and state["trained_on"] == TRAIN_MIN_REFERENCES + 1
    with DiskMatchIndex(folder) as index:
        add_synthetic(index, pool, RETRAIN_GROWTH * (TRAIN_MIN_REFERENCES + 1), first=10_000, seed=2)
    state = json.loads((folder / "meta.json").read_text())["features"]
    assert state["generation"] == 2 and state["segments"], state
    names = {p.name for p in (folder / "features").iterdir()}
    assert "vocab-1" not in names and "words-1.u32" not in names  # the old generation is gone
    index = DiskMatchIndex(folder, readonly=True)
    crop = compute_fingerprints(crop_away(photos["astronaut"], removed_frac=0.3, left_frac=0.3, top_frac=0.7), settings)
    found = index.similar(crop, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches)
    assert found and found[0].reference == "atlas/astronaut.png"


def test_interrupted_commit_leaves_the_last_one(
    photos: dict[str, RGBImage],
    pool: np.ndarray,
    settings: MatchSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "index"
    with DiskMatchIndex(folder) as index:
        add_synthetic(index, pool, TRAIN_MIN_REFERENCES, first=0, seed=1)
    before = (folder / "meta.json").read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FeatureStore, "_plan_segments", crash)
    index = DiskMatchIndex(folder)
    index.add("atlas/astronaut.png", compute_fingerprints(photos["astronaut"], settings))
    add_synthetic_error = None
    try:
        add_synthetic(index, pool, 600, first=1000, seed=3)
    except LedgerError as error:
        add_synthetic_error = error
    assert add_synthetic_error is not None and "No space" in add_synthetic_error.message
    assert (folder / "meta.json").read_bytes() == before  # nothing committed
    monkeypatch.undo()
    # A fresh open ignores the bytes the failed commit wrote past the committed lengths.
    with DiskMatchIndex(folder) as index:
        assert "atlas/astronaut.png" not in index
        index.add("atlas/astronaut.png", compute_fingerprints(photos["astronaut"], settings))
    index = DiskMatchIndex(folder, readonly=True)
    corner = crop_away(photos["astronaut"], removed_frac=0.25, left_frac=0.0, top_frac=0.0)
    crop = compute_fingerprints(corner, settings)
    found = index.similar(crop, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches)
    assert [m.reference for m in found][:1] == ["atlas/astronaut.png"]


# --- verdicts ------------------------------------------------------------------------------------


@hypothesis_settings(max_examples=6)
@given(left=st.floats(0, 1), top=st.floats(0, 1), removed=st.floats(0.2, 0.35))
def test_a_crop_is_a_verified_public_copy(
    left: float,
    top: float,
    removed: float,
    photos: dict[str, RGBImage],
    public: MemoryMatchIndex,
    settings: MatchSettings,
) -> None:
    crop = crop_away(photos["astronaut"], removed_frac=removed, left_frac=left, top_frac=top)
    result = match_image(crop, public, settings, load_reference=loader(photos))
    assert result.verdict is Verdict.PUBLIC_COPY
    assert result.matches[0].match.reference == "atlas/astronaut.png" and result.matches[0].match.verified


def test_without_features_the_off_centre_crop_is_missed(
    photos: dict[str, RGBImage], public: MemoryMatchIndex, settings: MatchSettings
) -> None:
    crop = crop_away(photos["astronaut"], removed_frac=0.35, left_frac=1.0, top_frac=0.0)
    with_features = match_image(crop, public, settings, load_reference=loader(photos))
    assert with_features.verdict is Verdict.PUBLIC_COPY and with_features.matches[0].match.method.startswith("orb:")
    without = match_image(crop, public, replace(settings, features=False), load_reference=loader(photos))
    assert without.verdict is Verdict.NONE


def test_feature_match_to_an_earlier_release_is_held_not_excluded(
    photos: dict[str, RGBImage], public: MemoryMatchIndex, settings: MatchSettings
) -> None:
    crop = crop_away(photos["astronaut"], removed_frac=0.35, left_frac=1.0, top_frac=0.0)
    result = match_image(crop, None, settings, release_index=public, load_reference=loader(photos))
    assert result.verdict is Verdict.REVIEW
    assert result.matches[0].match.method.startswith("orb:") and result.matches[0].match.verified


def test_unverifiable_feature_candidate_is_held(
    photos: dict[str, RGBImage], public: MemoryMatchIndex, settings: MatchSettings
) -> None:
    crop = crop_away(photos["astronaut"], removed_frac=0.35, left_frac=1.0, top_frac=0.0)
    assert match_image(crop, public, settings).verdict is Verdict.REVIEW  # no reference pixels to check


def test_unrelated_photo_leaves_no_feature_evidence(
    photos: dict[str, RGBImage], public: MemoryMatchIndex, settings: MatchSettings
) -> None:
    result = match_image(photos["chelsea"], public, settings, load_reference=loader(photos))
    assert result.verdict is Verdict.NONE and result.matches == ()


def test_count_matches_many_agrees_with_one_at_a_time(photos: dict[str, RGBImage], pool: np.ndarray) -> None:
    query = extract_features(photos["astronaut"][50:400, 80:450], side_px=512, count=300)
    references = [
        extract_features(photos["astronaut"], side_px=512, count=96),
        np.empty((0, 32), dtype=np.uint8),
        pool[:96],
        np.random.default_rng(0).integers(0, 256, (50, 32), dtype=np.uint8),  # nothing within reach
    ]
    together = count_matches_many(query, references)
    assert together == [count_matches(query, reference) for reference in references]
    assert together[0].matches >= 10 and together[1].matches == together[3].matches == 0
    assert count_matches_many(query[:0], references) == [count_matches(query[:0], r) for r in references]
