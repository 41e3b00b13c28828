"""Fingerprint indexes: an in-memory one and a persistent one built for ten million references.

Both implement :class:`deid.match.MatchIndex` and give the same answers: every
reference with a window within ``max_distance_bits`` of one of the query's
views, best distance first. A reference is indexed under several 64-bit
pHashes (its *windows*, see :mod:`deid.match.fingerprint`); each is an *entry*.

:class:`MemoryMatchIndex` scans every entry (fine for a batch).

:class:`DiskMatchIndex` keeps append-only, memory-mapped arrays in a folder
and answers with **multi-index hashing** (Norouzi et al., 2012): each 64-bit
code is cut into three substrings of 21, 21 and 22 bits; by the pigeonhole
principle a code within ``r`` bits of the query agrees with it to within
``r // 3`` bits on at least one substring, so the index looks up only the
substring values within that radius in three sorted tables and checks the
full distance of those candidates alone. The search is exact: it returns the
same references as a full scan. Tables are built per *segment* (a
contiguous range of entries), segments merge like a binary counter (a log-
structured merge), and the newest entries not yet in a segment are scanned.

Files in the index folder (all little-endian)::

    meta.json              the commit record: counts, segments, window names (written atomically)
    codes.u64              one pHash per entry
    owners.u32             the reference number of each entry
    slots.u8               which window (meta "windows") each entry is
    names.txt              reference names, each ending in a newline
    name_ends.u64          end offset of each name in names.txt
    name_keys.u64          a 64-bit hash of each name, for the "already indexed?" check
    seg-<start>-<end>/     per substring j: sub<j>.ids.u32 and sub<j>.codes.u64 sorted by the
                           substring, and sub<j>.offsets.u32 (big segments) or sub<j>.keys.u32

Appends go past the committed length first and ``meta.json`` is replaced
(write, fsync, rename) last, so an interrupted run leaves the index as it was
at the previous commit: the bytes past the committed lengths are ignored on
reopen and cut off before the next append. Re-adding a reference already
indexed is a no-op, so rerunning an interrupted ``deid index add`` finishes it.

Local features live in ``features/`` (:mod:`deid.match.feature_store`) and
are committed with the hashes, under the same ``meta.json``; :meth:`DiskMatchIndex.similar`
searches them.

Size per reference, with the default 14-15 windows: 8 (code) + 4 (owner) +
1 (slot) + 3 x (4 + 8) (tables) = 49 bytes per entry, about 700 bytes per
reference plus its name, plus 32 MB of offsets per big segment (measured:
744 bytes per reference at one million references). The local features add
96 x (32 + 4 + 4) bytes (descriptors, words, postings) and 2 bytes of count:
about 3.9 KB per reference, 4.6 KB in all (measured at one million), so ten
million references take 46 GB of disk. All of it is memory-mapped, so
resident memory is what queries touch: the postings of a query's words, the
descriptors of 20 shortlisted references, and the hash tables' runs. The sorted copies
of the codes cost 24 bytes per entry and halve query time: a lookup reads
one contiguous run per substring value instead of two random gathers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from deid.errors import InputError, LedgerError
from deid.match.feature_store import FeatureStore, initial_state
from deid.match.features import DescriptorMatches, count_matches_many
from deid.match.fingerprint import Fingerprints
from deid.match.storage import append_durable, concat_ranges, fsync_dir, map_array, seal_segments, write_durable
from deid.types import Match

logger = logging.getLogger(__name__)

FORMAT = "deid-match-index"
VERSION = 2
SUBSTRING_BITS = (21, 21, 22)
"""Bits of each multi-index-hashing substring, most significant first."""
SEAL_ENTRIES = 4096
"""Entries past the last segment are scanned; this many or more are sealed into a segment."""
OFFSETS_MIN_ENTRIES = 1 << 18
"""Segments this big look substrings up in a direct offsets table (32 MB) instead of binary search."""

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


# --- bit helpers -------------------------------------------------------------------------------


def popcount64(values: U64) -> I64:
    """Set bits of each ``uint64`` (SWAR; numpy 1.26 has no ``bitwise_count``)."""
    x = values.astype(np.uint64, copy=True)
    x -= (x >> np.uint64(1)) & np.uint64(0x5555555555555555)
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    with np.errstate(over="ignore"):
        x = (x * np.uint64(0x0101010101010101)) >> np.uint64(56)
    return x.astype(np.int64)


def substrings(codes: U64) -> list[npt.NDArray[np.uint32]]:
    """The three multi-index-hashing substrings of each code."""
    out = []
    shift = 64
    for bits in SUBSTRING_BITS:
        shift -= bits
        out.append(((codes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.uint32))
    return out


@cache
def _flip_masks(bits: int, radius: int) -> npt.NDArray[np.uint32]:
    """Every ``bits``-bit mask with at most ``radius`` bits set (the Hamming ball's offsets)."""
    masks = [0]
    for count in range(1, min(radius, bits) + 1):
        for positions in itertools.combinations(range(bits), count):
            masks.append(sum(1 << p for p in positions))
    return np.asarray(masks, dtype=np.uint32)


def codes_of(fingerprints: Iterable[str]) -> U64:
    """Hex pHashes as ``uint64``.

    Raises
    ------
    InputError
        If a value is not 16 hex digits.
    """
    values = []
    for hex_value in fingerprints:
        if len(hex_value) != 16:
            raise InputError(f"expected a 64-bit hash (16 hex digits), got {hex_value!r}")
        try:
            values.append(int(hex_value, 16))
        except ValueError as error:
            raise InputError(f"not a hex hash: {hex_value!r}") from error
    return np.asarray(values, dtype=np.uint64)


def name_key(reference: str) -> int:
    """A 64-bit hash of a reference name (blake2b), for membership checks."""
    return int.from_bytes(hashlib.blake2b(reference.encode("utf-8"), digest_size=8).digest(), "little")


def best_per_owner(owners: I64, distances: I64, slots: I64, views: I64) -> list[tuple[int, int, int, int]]:
    """For each owner, its smallest distance (ties: lowest slot, then lowest view)."""
    if owners.size == 0:
        return []
    order = np.lexsort((views, slots, distances, owners))
    owners, distances, slots, views = owners[order], distances[order], slots[order], views[order]
    first = np.ones(owners.size, dtype=bool)
    first[1:] = owners[1:] != owners[:-1]
    return list(
        zip(
            owners[first].tolist(),
            distances[first].tolist(),
            slots[first].tolist(),
            views[first].tolist(),
            strict=True,
        )
    )


def _to_matches(
    rows: list[tuple[int, int, int, int]],
    name_of: Any,
    window_names: Sequence[str],
    view_names: Sequence[str],
) -> list[Match]:
    matches = [
        Match(
            reference=name_of(owner),
            distance=float(distance),
            method=f"{view_names[view]}~{window_names[slot].split(':', 1)[-1]}",
            verified=False,
        )
        for owner, distance, slot, view in rows
    ]
    matches.sort(key=lambda m: (m.distance, m.reference))
    return matches


def _feature_matches(found: list[tuple[str, DescriptorMatches]]) -> list[Match]:
    """Feature candidates as :class:`Match` records: ``distance`` is the partners' median bits (of 256)."""
    return [
        Match(reference=name, distance=counted.median_bits, method=f"orb:{counted.matches}", verified=False)
        for name, counted in found
    ]


def _query_arrays(fingerprints: Fingerprints) -> tuple[U64, list[str]]:
    # A flat image has no informative views: it matches nothing.
    views = [f for f in fingerprints.views if f.method.startswith("phash:")]
    return codes_of(f.hex for f in views), [f.method for f in views]


def _check_radius(max_distance_bits: int) -> None:
    if not 0 <= max_distance_bits <= 32:
        raise InputError(f"max_distance_bits={max_distance_bits} is out of range", hint="use 0..32")


# --- in memory ---------------------------------------------------------------------------------


@dataclass
class MemoryMatchIndex:
    """A :class:`~deid.match.MatchIndex` held in memory; queries scan every entry.

    For a batch, tests and duplicate clustering. Same answers as :class:`DiskMatchIndex`.

    Examples
    --------
    >>> index = MemoryMatchIndex()
    >>> len(index)
    0
    """

    _names: list[str] = field(default_factory=list)
    _known: dict[str, int] = field(default_factory=dict)
    _codes: list[int] = field(default_factory=list)
    _owners: list[int] = field(default_factory=list)
    _slots: list[int] = field(default_factory=list)
    _windows: list[str] = field(default_factory=list)
    _descriptors: list[npt.NDArray[np.uint8]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, reference: object) -> bool:
        return reference in self._known

    def add(self, reference: str, fingerprints: Fingerprints) -> bool:
        """Index ``reference`` under its windows; ``False`` (and nothing done) if already indexed.

        Raises
        ------
        InputError
            If a window is not a 64-bit hex hash.
        """
        if reference in self._known:
            return False
        codes = codes_of(f.hex for f in fingerprints.windows)
        owner = len(self._names)
        self._names.append(reference)
        self._known[reference] = owner
        self._descriptors.append(fingerprints.descriptors)
        for window, code in zip(fingerprints.windows, codes.tolist(), strict=True):
            if window.method not in self._windows:
                self._windows.append(window.method)
            self._codes.append(int(code))
            self._owners.append(owner)
            self._slots.append(self._windows.index(window.method))
        return True

    def query(self, fingerprints: Fingerprints, *, max_distance_bits: int) -> list[Match]:
        """References with a window within ``max_distance_bits`` of a query view, closest first.

        Raises
        ------
        InputError
            If the fingerprints have no views or the radius is out of range.
        """
        _check_radius(max_distance_bits)
        query, view_names = _query_arrays(fingerprints)
        if not self._codes or not query.size:
            return []
        codes = np.asarray(self._codes, dtype=np.uint64)
        distances = popcount64(codes[None, :] ^ query[:, None])
        view_idx, entry_idx = np.nonzero(distances <= max_distance_bits)
        rows = best_per_owner(
            np.asarray(self._owners, dtype=np.int64)[entry_idx],
            distances[view_idx, entry_idx],
            np.asarray(self._slots, dtype=np.int64)[entry_idx],
            view_idx.astype(np.int64),
        )
        return _to_matches(rows, self._names.__getitem__, self._windows, view_names)

    def similar(self, fingerprints: Fingerprints, *, shortlist: int, min_matches: int) -> list[Match]:
        """References sharing at least ``min_matches`` clear ORB descriptor partners with the query, most first.

        Every reference is compared (``shortlist`` is ignored: a batch is small).
        """
        counted = count_matches_many(fingerprints.descriptors, self._descriptors)
        found = [(name, c) for name, c in zip(self._names, counted, strict=True) if c.matches >= min_matches]
        found.sort(key=lambda item: (-item[1].matches, item[1].median_bits, item[0]))
        return _feature_matches(found)


# --- on disk -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexStats:
    """Size of a persistent index."""

    references: int
    entries: int
    segments: int
    bytes: int
    features_per_reference: int = 0
    vocabulary_words: int = 0
    feature_segments: int = 0

    @property
    def bytes_per_reference(self) -> float:
        """Bytes on disk per reference (0 when empty)."""
        return self.bytes / self.references if self.references else 0.0

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid index stats``."""
        return {
            "references": self.references,
            "entries": self.entries,
            "segments": self.segments,
            "bytes": self.bytes,
            "bytes_per_reference": round(self.bytes_per_reference, 1),
            "features_per_reference": self.features_per_reference,
            "vocabulary_words": self.vocabulary_words,
            "feature_segments": self.feature_segments,
        }


_FILES: dict[str, np.dtype[Any]] = {
    "codes.u64": np.dtype("<u8"),
    "owners.u32": np.dtype("<u4"),
    "slots.u8": np.dtype("u1"),
    "name_ends.u64": np.dtype("<u8"),
    "name_keys.u64": np.dtype("<u8"),
}


class _Segment:
    """Multi-index-hashing tables over entries ``[start, end)``.

    Per substring, ``ids`` lists the segment's entries sorted by that
    substring and ``codes`` their full codes in the same order, so the
    candidates of one substring value are checked from one contiguous run of
    memory and only the survivors are looked up. A big segment also stores
    ``offsets`` (where each possible substring value starts: 2**bits + 1
    values, looked up directly); a small one stores the sorted ``keys`` instead
    and binary-searches them.
    """

    def __init__(self, directory: Path, start: int, end: int) -> None:
        self.start, self.end = start, end
        size = end - start
        self.ids = [map_array(directory / f"sub{j}.ids.u32", np.dtype("<u4"), size) for j in range(3)]
        self.codes = [map_array(directory / f"sub{j}.codes.u64", np.dtype("<u8"), size) for j in range(3)]
        self.offsets: list[npt.NDArray[Any]] = []
        self.keys: list[npt.NDArray[Any]] = []
        if size >= OFFSETS_MIN_ENTRIES:
            self.offsets = [
                map_array(directory / f"sub{j}.offsets.u32", np.dtype("<u4"), (1 << bits) + 1)
                for j, bits in enumerate(SUBSTRING_BITS)
            ]
        else:
            self.keys = [map_array(directory / f"sub{j}.keys.u32", np.dtype("<u4"), size) for j in range(3)]

    @staticmethod
    def build(directory: Path, codes: U64) -> None:
        """Write the tables for ``codes`` into a new folder, atomically."""
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for j, keys in enumerate(substrings(codes)):
            order = np.argsort(keys, kind="stable").astype("<u4")
            sorted_keys = keys[order]
            write_durable(staging / f"sub{j}.ids.u32", order.tobytes())
            write_durable(staging / f"sub{j}.codes.u64", codes[order].astype("<u8").tobytes())
            if codes.size >= OFFSETS_MIN_ENTRIES:
                values = np.arange((1 << SUBSTRING_BITS[j]) + 1, dtype=np.int64)
                offsets = np.searchsorted(sorted_keys, values, side="left").astype("<u4")
                write_durable(staging / f"sub{j}.offsets.u32", offsets.tobytes())
            else:
                write_durable(staging / f"sub{j}.keys.u32", sorted_keys.astype("<u4").tobytes())
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)

    def search(self, query: U64, query_subs: list[npt.NDArray[np.uint32]], radius: int) -> tuple[I64, I64, I64]:
        """(view, entry, distance) of every entry within ``radius`` bits of a view (a pair may repeat)."""
        views_out: list[I64] = []
        entries_out: list[I64] = []
        distances_out: list[I64] = []
        sub_radius = radius // len(SUBSTRING_BITS)
        for j, bits in enumerate(SUBSTRING_BITS):
            masks = _flip_masks(bits, sub_radius)
            needles = (query_subs[j][:, None] ^ masks[None, :]).ravel()
            needle_view = np.repeat(np.arange(query_subs[j].size, dtype=np.int64), masks.size)
            if self.offsets:
                lo = self.offsets[j][needles].astype(np.int64)
                hi = self.offsets[j][needles.astype(np.int64) + 1].astype(np.int64)
            else:
                lo = np.searchsorted(self.keys[j], needles, side="left").astype(np.int64)
                hi = np.searchsorted(self.keys[j], needles, side="right").astype(np.int64)
            hits = concat_ranges(lo, hi)
            if not hits.size:
                continue
            views = np.repeat(needle_view, hi - lo)
            distances = popcount64(self.codes[j][hits] ^ query[views])
            keep = distances <= radius
            views_out.append(views[keep])
            entries_out.append(self.ids[j][hits[keep]].astype(np.int64) + self.start)
            distances_out.append(distances[keep])
        if not entries_out:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(views_out), np.concatenate(entries_out), np.concatenate(distances_out)


class DiskMatchIndex:
    """A persistent :class:`~deid.match.MatchIndex` in a folder; see the module docstring.

    ``add`` buffers references and commits every ``commit_every`` of them, on
    :meth:`commit`, before a query, and on :meth:`close` (or leaving a ``with``
    block normally). Open it with ``readonly=True`` to query only.

    Parameters
    ----------
    directory
        The index folder; created when missing (unless ``readonly``).
    commit_every
        References buffered before an automatic commit (``match.commit_every``).
    readonly
        Refuse ``add``; never touch the files.

    Raises
    ------
    LedgerError
        If the folder holds something that is not a deid match index, a newer
        format, or files shorter than the commit record says.

    Examples
    --------
    >>> with DiskMatchIndex("public-index") as index:  # doctest: +SKIP
    ...     index.add("atlas/img001.jpg", compute_fingerprints(pixels, settings))
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        commit_every: int = 1000,
        readonly: bool = False,
        reference_features: int = 96,
    ) -> None:
        self.directory = Path(directory)
        self.commit_every = max(1, commit_every)
        self.readonly = readonly
        meta_path = self.directory / "meta.json"
        if not meta_path.exists():
            if readonly:
                raise LedgerError("no match index here", path=self.directory, hint="build one with `deid index add`")
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LedgerError(f"cannot create index folder: {error.strerror}", path=self.directory) from error
            if any(self.directory.iterdir()):
                raise LedgerError(
                    "folder is not empty and holds no match index", path=self.directory, hint="choose an empty folder"
                )
            self._meta: dict[str, Any] = {
                "format": FORMAT,
                "version": VERSION,
                "references": 0,
                "entries": 0,
                "names_bytes": 0,
                "segments": [],
                "windows": [],
                "features": initial_state(reference_features),
            }
            self._write_meta(self._meta)
        else:
            try:
                self._meta = json.loads(meta_path.read_text("utf-8"))
            except (OSError, ValueError) as error:
                raise LedgerError(f"cannot read index meta.json: {error}", path=meta_path) from error
            if self._meta.get("format") != FORMAT or self._meta.get("version") != VERSION:
                raise LedgerError(
                    "not a deid match index of a known version",
                    path=meta_path,
                    hint=f"this deid reads version {VERSION}; rebuild it with `deid index add` into a new folder",
                )
        self._pending_names: list[str] = []
        self._pending_codes: list[int] = []
        self._pending_owners: list[int] = []
        self._pending_slots: list[int] = []
        self._pending_keys: dict[int, list[int]] = {}
        self._features = FeatureStore(self.directory / "features", self._meta["features"], readonly=readonly)
        self._load()

    # -- opening and committing --

    def _load(self, *, sort_names: bool = True) -> None:
        """Map the committed files; ``sort_names=False`` keeps the name lookup (commit adds to it)."""
        meta = self._meta
        entries, references = int(meta["entries"]), int(meta["references"])
        for name, dtype in _FILES.items():
            path = self.directory / name
            need = (entries if name in ("codes.u64", "owners.u32", "slots.u8") else references) * dtype.itemsize
            size = path.stat().st_size if path.exists() else 0
            if size < need:
                raise LedgerError(
                    f"{name} is shorter than the committed length", path=path, hint="restore the index from a backup"
                )
        names_path = self.directory / "names.txt"
        if (names_path.stat().st_size if names_path.exists() else 0) < int(meta["names_bytes"]):
            raise LedgerError("names.txt is shorter than the committed length", path=names_path)
        self._codes: npt.NDArray[np.uint64] = map_array(self.directory / "codes.u64", _FILES["codes.u64"], entries)
        self._owners = map_array(self.directory / "owners.u32", _FILES["owners.u32"], entries)
        self._slots = map_array(self.directory / "slots.u8", _FILES["slots.u8"], entries)
        self._name_ends = map_array(self.directory / "name_ends.u64", _FILES["name_ends.u64"], references)
        self._names = map_array(names_path, np.dtype("u1"), int(meta["names_bytes"]))
        if sort_names:
            keys = np.asarray(map_array(self.directory / "name_keys.u64", _FILES["name_keys.u64"], references))
            self._key_order = np.argsort(keys, kind="stable")
            self._sorted_keys = keys[self._key_order]
            # Names committed since the sort: looked up here, so a commit costs O(new), not a re-sort.
            self._recent_keys: dict[int, list[int]] = {}
        self._segments = [_Segment(self._segment_dir(s, e), s, e) for s, e in meta["segments"]]
        self._tail_start = self._segments[-1].end if self._segments else 0

    def _segment_dir(self, start: int, end: int) -> Path:
        return self.directory / f"seg-{start}-{end}"

    def _write_meta(self, meta: dict[str, Any]) -> None:
        path = self.directory / "meta.json"
        staging = path.with_suffix(".json.tmp")
        write_durable(staging, json.dumps(meta, indent=1).encode("utf-8"))
        os.replace(staging, path)
        fsync_dir(self.directory)

    def commit(self) -> None:
        """Make every buffered reference durable and searchable.

        Raises
        ------
        LedgerError
            If the files cannot be written; the index stays at its previous commit.
        """
        if not self._pending_names:
            return
        meta = dict(self._meta)
        names_blob = b"".join(name.encode("utf-8") + b"\n" for name in self._pending_names)
        ends = int(meta["names_bytes"]) + np.cumsum([len(n.encode("utf-8")) + 1 for n in self._pending_names])
        appends = {
            "codes.u64": (int(meta["entries"]) * 8, np.asarray(self._pending_codes, dtype="<u8").tobytes()),
            "owners.u32": (int(meta["entries"]) * 4, np.asarray(self._pending_owners, dtype="<u4").tobytes()),
            "slots.u8": (int(meta["entries"]), np.asarray(self._pending_slots, dtype="u1").tobytes()),
            "names.txt": (int(meta["names_bytes"]), names_blob),
            "name_ends.u64": (int(meta["references"]) * 8, ends.astype("<u8").tobytes()),
            "name_keys.u64": (
                int(meta["references"]) * 8,
                np.asarray([name_key(n) for n in self._pending_names], dtype="<u8").tobytes(),
            ),
        }
        try:
            for name, (committed, data) in appends.items():
                append_durable(self.directory / name, committed, data)
            meta["entries"] = int(meta["entries"]) + len(self._pending_codes)
            meta["references"] = int(meta["references"]) + len(self._pending_names)
            meta["names_bytes"] = int(meta["names_bytes"]) + len(names_blob)
            meta["segments"] = self._plan_segments([list(s) for s in meta["segments"]], int(meta["entries"]))
            meta["features"] = self._features.commit()
            self._write_meta(meta)
        except OSError as error:
            raise LedgerError(f"cannot write the match index: {error.strerror}", path=self.directory) from error
        first_owner = int(self._meta["references"])
        self._meta = meta
        for offset, name in enumerate(self._pending_names):
            self._recent_keys.setdefault(name_key(name), []).append(first_owner + offset)
        self._pending_names.clear()
        self._pending_codes.clear()
        self._pending_owners.clear()
        self._pending_slots.clear()
        self._pending_keys.clear()
        self._remove_stale_segments()
        self._features.load(meta["features"])
        self._features.remove_stale()
        self._load(sort_names=len(self._recent_keys) > max(1 << 20, self._sorted_keys.size // 4))
        logger.info("match index %s: %d references, %d entries", self.directory, meta["references"], meta["entries"])

    def _plan_segments(self, segments: list[list[int]], entries: int) -> list[list[int]]:
        """Seal the tail into a segment when big enough, then merge equal-ish neighbours; builds tables."""
        if not seal_segments(segments, entries, seal_at=SEAL_ENTRIES):
            return segments
        start, end = segments[-1]
        codes = np.fromfile(self.directory / "codes.u64", dtype="<u8", count=end)[start:end]
        _Segment.build(self._segment_dir(start, end), codes.astype(np.uint64))
        fsync_dir(self.directory)
        return segments

    def _remove_stale_segments(self) -> None:
        live = {self._segment_dir(s, e).name for s, e in self._meta["segments"]}
        for path in self.directory.glob("seg-*"):
            if path.name not in live:
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Commit buffered references (unless read-only)."""
        if not self.readonly:
            self.commit()

    def __enter__(self) -> DiskMatchIndex:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        # On an error the buffered references are dropped: the index stays at its last commit.
        if kind is None:
            self.close()
        else:
            self._features.discard()

    # -- the MatchIndex protocol --

    def __len__(self) -> int:
        return int(self._meta["references"]) + len(self._pending_names)

    def __contains__(self, reference: object) -> bool:
        if not isinstance(reference, str):
            return False
        return self._committed_owner(reference) is not None or reference in self._pending_names

    def _committed_owner(self, reference: str) -> int | None:
        key = name_key(reference)
        lo = int(np.searchsorted(self._sorted_keys, np.uint64(key), side="left"))
        hi = int(np.searchsorted(self._sorted_keys, np.uint64(key), side="right"))
        owners = [int(self._key_order[position]) for position in range(lo, hi)] + self._recent_keys.get(key, [])
        for owner in owners:
            if self.name(owner) == reference:
                return owner
        return None

    def name(self, owner: int) -> str:
        """The name reference number ``owner`` was indexed under."""
        committed = int(self._meta["references"])
        if owner >= committed:
            return self._pending_names[owner - committed]
        start = int(self._name_ends[owner - 1]) if owner else 0
        return bytes(self._names[start : int(self._name_ends[owner]) - 1]).decode("utf-8")

    def add(self, reference: str, fingerprints: Fingerprints) -> bool:
        """Buffer ``reference`` for indexing; ``False`` (and nothing done) if already indexed.

        Raises
        ------
        LedgerError
            If the index is read-only or an automatic commit fails.
        InputError
            If the name holds a newline or a window is not a 64-bit hex hash.
        """
        if self.readonly:
            raise LedgerError("index opened read-only", path=self.directory)
        if "\n" in reference:
            raise InputError("a reference name cannot hold a newline", path=reference)
        key = name_key(reference)
        if self._committed_owner(reference) is not None or any(
            self._pending_names[i] == reference for i in self._pending_keys.get(key, [])
        ):
            return False
        codes = codes_of(f.hex for f in fingerprints.windows)
        owner = len(self)
        windows: list[str] = self._meta["windows"]
        for window, code in zip(fingerprints.windows, codes.tolist(), strict=True):
            if window.method not in windows:
                if len(windows) >= 255:
                    raise InputError(
                        "too many distinct window kinds for one index", hint="keep match settings fixed per index"
                    )
                windows.append(window.method)
            self._pending_codes.append(int(code))
            self._pending_owners.append(owner)
            self._pending_slots.append(windows.index(window.method))
        self._pending_keys.setdefault(key, []).append(len(self._pending_names))
        self._pending_names.append(reference)
        self._features.stage(fingerprints.descriptors)
        if len(self._pending_names) >= self.commit_every:
            self.commit()
        return True

    def add_codes(
        self,
        names: Sequence[str],
        codes: npt.NDArray[np.uint64],
        window_prefix: str = "phash:bulk",
        *,
        descriptors: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        """Bulk-add references from raw codes, one row of windows each, without the name check.

        For imports of precomputed hashes and for benchmarks; commits at once.

        Parameters
        ----------
        names
            One name per row; the caller guarantees they are new.
        codes
            ``len(names) x windows`` (or ``len(names)``) 64-bit pHashes.
        window_prefix
            Window ``k`` is recorded as ``<window_prefix><k>``.
        descriptors
            ``len(names) x n x 32`` ORB descriptors, strongest first; none when omitted.

        Raises
        ------
        LedgerError
            If the index is read-only or the commit fails.
        """
        if self.readonly:
            raise LedgerError("index opened read-only", path=self.directory)
        self.commit()
        rows = codes.reshape(len(names), -1).astype(np.uint64)
        windows: list[str] = self._meta["windows"]
        slots = []
        for k in range(rows.shape[1]):
            if f"{window_prefix}{k}" not in windows:
                windows.append(f"{window_prefix}{k}")
            slots.append(windows.index(f"{window_prefix}{k}"))
        first = len(self)
        self._pending_names.extend(names)
        self._pending_codes.extend(rows.ravel().tolist())
        self._pending_owners.extend(np.repeat(np.arange(first, first + len(names)), rows.shape[1]).tolist())
        self._pending_slots.extend(slots * len(names))
        for row in range(len(names)):
            self._features.stage(descriptors[row] if descriptors is not None else np.empty((0, 32), dtype=np.uint8))
        self.commit()

    def query(self, fingerprints: Fingerprints, *, max_distance_bits: int) -> list[Match]:
        """References with a window within ``max_distance_bits`` of a query view, closest first.

        Raises
        ------
        InputError
            If the fingerprints have no views or the radius is out of range.
        LedgerError
            If buffered references cannot be committed first.
        """
        _check_radius(max_distance_bits)
        if not self.readonly:
            self.commit()
        query, view_names = _query_arrays(fingerprints)
        if not query.size:
            return []
        views, entries, distances = self._search(query, max_distance_bits)
        # A pair found through two substrings counts once.
        pair, first = np.unique(entries * query.size + views, return_index=True)
        entries, views, distances = pair // query.size, pair % query.size, distances[first]
        rows = best_per_owner(
            np.asarray(self._owners[entries], dtype=np.int64),
            distances,
            np.asarray(self._slots[entries], dtype=np.int64),
            views,
        )
        return _to_matches(rows, self.name, self._meta["windows"], view_names)

    def similar(self, fingerprints: Fingerprints, *, shortlist: int, min_matches: int) -> list[Match]:
        """References sharing at least ``min_matches`` clear ORB descriptor partners with the query, most first.

        The ``shortlist`` references sharing the most visual words are compared
        (see :mod:`deid.match.feature_store`); nothing else is read.

        Raises
        ------
        LedgerError
            If buffered references cannot be committed first.
        """
        if not self.readonly:
            self.commit()
        found = self._features.search(fingerprints.descriptors, shortlist=shortlist, min_matches=min_matches)
        return _feature_matches([(self.name(owner), counted) for owner, counted in found])

    def _search(self, query: U64, radius: int) -> tuple[I64, I64, I64]:
        parts = [segment.search(query, substrings(query), radius) for segment in self._segments]
        tail = np.arange(self._tail_start, int(self._meta["entries"]), dtype=np.int64)
        if tail.size:  # the newest entries, not yet in a segment, are scanned
            views = np.repeat(np.arange(query.size, dtype=np.int64), tail.size)
            entries = np.tile(tail, query.size)
            distances = popcount64(np.asarray(self._codes[entries], dtype=np.uint64) ^ query[views])
            keep = distances <= radius
            parts.append((views[keep], entries[keep], distances[keep]))
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    # -- reporting --

    def stats(self) -> IndexStats:
        """Counts and bytes on disk (committed state)."""
        total = sum(path.stat().st_size for path in self.directory.rglob("*") if path.is_file())
        return IndexStats(
            references=int(self._meta["references"]),
            entries=int(self._meta["entries"]),
            segments=len(self._meta["segments"]),
            bytes=total,
            features_per_reference=self._features.per_reference,
            vocabulary_words=self._features.vocabulary.words if self._features.vocabulary is not None else 0,
            feature_segments=len(self._features.state["segments"]),
        )

    def references(self) -> Iterator[str]:
        """Every committed reference name, in the order added."""
        for owner in range(int(self._meta["references"])):
            yield self.name(owner)
