"""Indexes: add/query, the disk index's persistence and interrupt safety, and memory == disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from deid.config import MatchSettings
from deid.errors import InputError, LedgerError
from deid.match import DiskMatchIndex, Fingerprints, MatchIndex, MemoryMatchIndex, compute_fingerprints
from deid.match.index import popcount64
from deid.types import Fingerprint, RGBImage


def prints_of(codes: list[int], views: list[int] | None = None) -> Fingerprints:
    """Fingerprints with the given window codes (and view codes, default the same)."""
    windows = tuple(Fingerprint(f"phash:w{i}", f"{c:016x}") for i, c in enumerate(codes))
    query = tuple(
        Fingerprint(f"phash:full:v{i}", f"{c:016x}") for i, c in enumerate(views if views is not None else codes)
    )
    return Fingerprints(1, 1, (), windows, query)


def flip_bits(code: int, count: int, rng: np.random.Generator) -> int:
    for bit in rng.choice(64, size=count, replace=False):
        code ^= 1 << int(bit)
    return code


def test_popcount_matches_python() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, 1000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    assert popcount64(values).tolist() == [int(v).bit_count() for v in values.tolist()]


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_add_query_and_no_op_readd(
    backend: str, tmp_path: Path, photos: dict[str, RGBImage], settings: MatchSettings
) -> None:
    index: MatchIndex = MemoryMatchIndex() if backend == "memory" else DiskMatchIndex(tmp_path / "index")
    assert isinstance(index, MatchIndex)
    for name, pixels in photos.items():
        assert index.add(f"refs/{name}.png", compute_fingerprints(pixels, settings))
    assert not index.add("refs/coffee.png", compute_fingerprints(photos["coffee"], settings))
    assert len(index) == len(photos)
    mirrored = compute_fingerprints(np.ascontiguousarray(photos["chelsea"][:, ::-1]), settings)
    found = index.query(mirrored, max_distance_bits=settings.max_distance_bits)
    assert [m.reference for m in found] == ["refs/chelsea.png"]
    assert found[0].method.startswith("phash:full:flip") and found[0].distance <= 4


def test_persistence_and_reopen(tmp_path: Path, photos: dict[str, RGBImage], settings: MatchSettings) -> None:
    with DiskMatchIndex(tmp_path / "index", commit_every=2) as index:
        for name, pixels in photos.items():
            index.add(name, compute_fingerprints(pixels, settings))
    reopened = DiskMatchIndex(tmp_path / "index", readonly=True)
    assert len(reopened) == len(photos)
    assert sorted(reopened.references()) == sorted(photos)
    assert "astronaut" in reopened and "nobody" not in reopened
    found = reopened.query(compute_fingerprints(photos["rocket"], settings), max_distance_bits=0)
    assert found[0].reference == "rocket" and found[0].distance == 0
    with pytest.raises(LedgerError):
        reopened.add("x", compute_fingerprints(photos["rocket"], settings))
    stats = reopened.stats()
    assert (
        stats.references == len(photos) and stats.bytes > 0 and stats.bytes_per_reference == stats.bytes / len(photos)
    )


def test_partial_append_is_ignored_on_reopen(tmp_path: Path) -> None:
    """Bytes past the committed length (a crash mid-append) are ignored, then cut off by the next commit."""
    directory = tmp_path / "index"
    with DiskMatchIndex(directory) as index:
        index.add("a", prints_of([1, 2]))
    for name in ("codes.u64", "owners.u32", "slots.u8", "names.txt", "name_ends.u64", "name_keys.u64"):
        with open(directory / name, "ab") as handle:
            handle.write(b"\x07" * 13)
    reopened = DiskMatchIndex(directory)
    assert len(reopened) == 1 and list(reopened.references()) == ["a"]
    assert [m.reference for m in reopened.query(prints_of([1]), max_distance_bits=0)] == ["a"]
    assert reopened.add("b", prints_of([3]))
    reopened.commit()
    assert not reopened.add("b", prints_of([3])) and "b" in reopened  # found among names committed since opening
    again = DiskMatchIndex(directory, readonly=True)
    assert list(again.references()) == ["a", "b"]
    assert (directory / "codes.u64").stat().st_size == 3 * 8
    assert [m.reference for m in again.query(prints_of([3]), max_distance_bits=0)] == ["b"]


def test_interrupted_commit_leaves_the_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the data files are written but before meta.json is replaced loses only that commit."""
    directory = tmp_path / "index"
    with DiskMatchIndex(directory) as index:
        index.add("a", prints_of([1]))
    index = DiskMatchIndex(directory)
    index.add("b", prints_of([2]))

    def crash(self: DiskMatchIndex, meta: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(DiskMatchIndex, "_write_meta", crash)
    with pytest.raises(KeyboardInterrupt):
        index.commit()
    monkeypatch.undo()
    rerun = DiskMatchIndex(directory)
    assert list(rerun.references()) == ["a"]
    assert rerun.add("b", prints_of([2])) and not rerun.add("a", prints_of([1]))
    rerun.close()
    assert list(DiskMatchIndex(directory, readonly=True).references()) == ["a", "b"]


def test_error_inside_with_block_drops_buffered_references(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), DiskMatchIndex(tmp_path / "index") as index:
        index.add("a", prints_of([1]))
        raise RuntimeError("boom")
    assert len(DiskMatchIndex(tmp_path / "index", readonly=True)) == 0


def test_refuses_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "stuff.txt").write_text("hello")
    with pytest.raises(LedgerError):
        DiskMatchIndex(tmp_path)
    with pytest.raises(LedgerError):
        DiskMatchIndex(tmp_path / "missing", readonly=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(LedgerError):
        DiskMatchIndex(tmp_path / "other")


def test_truncated_file_is_an_error(tmp_path: Path) -> None:
    with DiskMatchIndex(tmp_path / "index") as index:
        index.add("a", prints_of([1, 2, 3]))
    (tmp_path / "index" / "codes.u64").write_bytes(b"")
    with pytest.raises(LedgerError, match="shorter"):
        DiskMatchIndex(tmp_path / "index")


def test_bad_input() -> None:
    index = MemoryMatchIndex()
    with pytest.raises(InputError):
        index.add("a", Fingerprints(1, 1, (), (Fingerprint("phash:w", "zz"),), ()))
    with pytest.raises(InputError):
        index.query(prints_of([1]), max_distance_bits=99)
    index.add("b", prints_of([5]))
    assert index.query(Fingerprints(1, 1, (), (), ()), max_distance_bits=4) == []  # a flat image matches nothing


@given(seed=st.integers(0, 2**32 - 1), radius=st.integers(0, 14))
@hypothesis_settings(max_examples=12, deadline=None)
def test_memory_and_disk_give_the_same_answers(
    seed: int, radius: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Many small commits (several segments and a scanned tail) answer exactly as a full scan does."""
    rng = np.random.default_rng(seed)
    memory = MemoryMatchIndex()
    disk = DiskMatchIndex(tmp_path_factory.mktemp("index"), commit_every=int(rng.integers(50, 400)))
    centres = [int(c) for c in rng.integers(0, 2**63, 40, dtype=np.int64)]
    for i in range(1500):
        centre = centres[i % len(centres)]
        codes = [flip_bits(centre, int(rng.integers(0, 20)), rng) for _ in range(3)]
        memory.add(f"r{i}", prints_of(codes))
        disk.add(f"r{i}", prints_of(codes))
    disk.commit()
    assert len(disk._meta["segments"]) >= 1  # the test exercises segment tables, not only the scan
    for centre in centres[:10]:
        query = prints_of([centre], [flip_bits(centre, int(rng.integers(0, 6)), rng), centre])
        assert disk.query(query, max_distance_bits=radius) == memory.query(query, max_distance_bits=radius)
