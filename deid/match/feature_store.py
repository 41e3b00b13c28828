"""The local-feature tier of a persistent index: stored descriptors and an inverted file of visual words.

A :class:`~deid.match.DiskMatchIndex` keeps one :class:`FeatureStore` in its
``features/`` folder. Each reference keeps up to ``K``
(``match.reference_features``) ORB descriptors. A query is answered in two
steps, neither of which reads more than a shortlist of references:

1. **Shortlist**: the query's descriptors are turned into visual words
   (:mod:`deid.match.vocabulary`); the inverted file lists, per word, the
   references that have it. References are scored by the summed inverse
   document frequency of the words they share with the query (rarest words
   first, at most :data:`POSTINGS_BUDGET` postings), and the best
   ``shortlist`` are kept.
2. **Count**: for each shortlisted reference, :func:`deid.match.features.count_matches`
   counts the query descriptors with a clear partner among its stored ones;
   references with at least ``min_matches`` are candidates for geometric
   verification.

The vocabulary is trained on the index's own descriptors once it holds
:data:`TRAIN_MIN_REFERENCES` references, and trained again (every word list
rebuilt) each time the index has grown :data:`RETRAIN_GROWTH`-fold, until it
was trained on :data:`SETTLED_REFERENCES`; so a vocabulary fits the index, a
descriptor is re-assigned a handful of times at most, and growth past a few
hundred thousand references never re-assigns the store. Below
:data:`TRAIN_MIN_REFERENCES`, queries count matches against every reference.

Files in ``features/`` (little-endian)::

    descriptors.u8              K x 32 bytes per reference (fixed stride, zero padding)
    counts.u16                  descriptors actually stored per reference
    vocab-<g>/                  vocabulary of generation g (top.u8, leaves.u8, starts.i64)
    words-<g>.u32               the word of every stored descriptor under vocabulary g (fixed stride)
    post-<g>-<start>-<end>/     inverted file of references [start, end): owners.u32 sorted by word,
                                offsets.u64 (words + 1 entries)

The state (``per_reference``, ``references``, ``generation``, ``trained_on``,
``segments``) lives under ``"features"`` in the index's ``meta.json``, which is
replaced last, so an interrupted commit leaves the previous state intact.
References past the last segment are scanned from ``words-<g>.u32``; segments
merge like a binary counter, as the hash tables do.

Size per reference: ``K x 32`` bytes of descriptors (3 KB at K = 96; read only
for shortlisted references and when retraining), ``K x 4`` bytes of words and
``K x 4`` bytes of postings (the part a query reads), plus 8 bytes per word
per segment of offsets.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deid.match.features import FEATURE_BYTES, DescriptorMatches, Descriptors, count_matches_many
from deid.match.storage import append_durable, concat_ranges, fsync_dir, map_array, seal_segments, write_durable
from deid.match.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

TRAIN_MIN_REFERENCES = 64
"""References needed before a vocabulary is trained; smaller stores are searched exhaustively."""
RETRAIN_GROWTH = 8
"""The vocabulary is trained again whenever the store has grown this many times since the last training..."""
SETTLED_REFERENCES = 100_000
"""...until it was trained on this many references: by then its sample is full and its words are settled,
so a store of ten million references is never re-assigned whole."""
SEAL_REFERENCES = 512
"""References past the last segment are scanned; this many or more are sealed into a segment."""
TRAIN_SAMPLE = 1 << 20
"""At most this many descriptors train a vocabulary (as 0/1 floats: 256 MB while training)."""
POSTINGS_BUDGET = 300_000
"""Postings a query reads at most (its rarest words first): bounds query time at any store size.

Measured at one million references (24 devdata photos under six transformations): a budget of
100,000 gives an 8 ms feature query that finds 75 % of 30 % crops by features alone; 300,000
gives 10 ms and 92 %; no budget gives 35 ms and 100 % (the window hashes find most of the rest)."""
SHORTLIST_DESCRIPTORS = 300
"""The query's strongest descriptors whose words choose the shortlist (at one million references,
300 of 500 found every 30 % crop in 8 ms where all 500 found 92 % in 10 ms)."""
BUCKETS = 1 << 18
"""Score buckets of the shortlist (a power of two): 2 MB of scores, whatever the store's size."""
_NO_WORD = np.uint32(0xFFFFFFFF)
_ASSIGN_CHUNK = 1 << 15  # references per chunk when assigning words to the whole store


def initial_state(per_reference: int) -> dict[str, Any]:
    """The ``"features"`` state of an empty store keeping ``per_reference`` descriptors per reference."""
    return {"per_reference": per_reference, "references": 0, "generation": None, "trained_on": 0, "segments": []}


class _Postings:
    """The inverted file of references ``[start, end)``: for each word, the references that have it."""

    def __init__(self, directory: Path, start: int, end: int, words: int) -> None:
        self.start, self.end = start, end
        self.offsets = map_array(directory / "offsets.u64", np.dtype("<u8"), words + 1).astype(np.int64)
        self.owners = map_array(directory / "owners.u32", np.dtype("<u4"), int(self.offsets[-1]))

    @staticmethod
    def build(directory: Path, words: npt.NDArray[np.uint32], start: int, per_reference: int, vocabulary: int) -> None:
        """Write the inverted file for ``words`` (``(end - start) x K``, row-major) atomically."""
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        owners = np.repeat(np.arange(start, start + words.size // per_reference, dtype=np.uint32), per_reference)
        valid = words != _NO_WORD
        owners, kept = owners[valid], words[valid]
        order = np.argsort(kept, kind="stable")
        offsets = np.searchsorted(kept[order], np.arange(vocabulary + 1, dtype=np.uint32), side="left")
        write_durable(staging / "owners.u32", owners[order].astype("<u4").tobytes())
        write_durable(staging / "offsets.u64", offsets.astype("<u8").tobytes())
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)

    def lookup(self, words: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(owner, word) of every posting of ``words``."""
        lo, hi = self.offsets[words], self.offsets[words + 1]
        hits = concat_ranges(lo, hi)
        return self.owners[hits].astype(np.int64), np.repeat(words, hi - lo)


class FeatureStore:
    """Stored descriptors of every reference and the visual-word inverted file over them.

    Parameters
    ----------
    directory
        The ``features/`` folder (created when missing, unless ``readonly``).
    state
        The committed ``"features"`` state from the index's ``meta.json``.
    """

    def __init__(self, directory: Path, state: dict[str, Any], *, readonly: bool = False) -> None:
        self.directory = directory
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        self._pending: list[Descriptors] = []
        self.load(state)

    @property
    def per_reference(self) -> int:
        """Descriptors kept per reference (``K``)."""
        return int(self.state["per_reference"])

    def load(self, state: dict[str, Any]) -> None:
        """Map the files of a committed ``state``."""
        self.state = dict(state)
        count, per = int(state["references"]), self.per_reference
        self._descriptors = map_array(self.directory / "descriptors.u8", np.dtype("u1"), count * per * FEATURE_BYTES)
        self._descriptors = self._descriptors.reshape(count, per, FEATURE_BYTES)
        self._counts = map_array(self.directory / "counts.u16", np.dtype("<u2"), count)
        generation = state["generation"]
        self.vocabulary: Vocabulary | None = None
        self._postings: list[_Postings] = []
        if generation is None:
            return
        self.vocabulary = Vocabulary.load(self.directory / f"vocab-{generation}")
        self._words = map_array(self.directory / f"words-{generation}.u32", np.dtype("<u4"), count * per)
        self._postings = [
            _Postings(self._postings_dir(generation, s, e), s, e, self.vocabulary.words) for s, e in state["segments"]
        ]
        self._tail_start = self._postings[-1].end if self._postings else 0
        frequency = np.zeros(self.vocabulary.words, dtype=np.int64)
        for postings in self._postings:
            frequency += np.diff(postings.offsets)
        tail = self._words[self._tail_start * per :]
        frequency += np.bincount(tail[tail != _NO_WORD].astype(np.int64), minlength=self.vocabulary.words)
        self._frequency = frequency
        # Inverse document frequency: a word most references have says little.
        self._idf = np.log1p(max(count, 1) / (1.0 + frequency))

    def _postings_dir(self, generation: int, start: int, end: int) -> Path:
        return self.directory / f"post-{generation}-{start}-{end}"

    # -- adding --

    def stage(self, descriptors: Descriptors) -> None:
        """Buffer the next reference's descriptors (the strongest ``K`` are kept)."""
        self._pending.append(np.ascontiguousarray(descriptors[: self.per_reference], dtype=np.uint8))

    @property
    def pending(self) -> int:
        """References staged and not yet committed."""
        return len(self._pending)

    def discard(self) -> None:
        """Drop the staged references (the index stays at its last commit)."""
        self._pending.clear()

    def commit(self) -> dict[str, Any]:
        """Write the staged references, (re)train and index them; return the new state for ``meta.json``.

        The caller writes the state into ``meta.json`` and then calls
        :meth:`load` and :meth:`remove_stale`.

        Raises
        ------
        OSError
            If a file cannot be written (nothing committed is touched).
        """
        state = dict(self.state)
        before, per = int(state["references"]), self.per_reference
        block = np.zeros((len(self._pending), per, FEATURE_BYTES), dtype=np.uint8)
        counts = np.zeros(len(self._pending), dtype="<u2")
        for row, descriptors in enumerate(self._pending):
            block[row, : len(descriptors)] = descriptors
            counts[row] = len(descriptors)
        append_durable(self.directory / "descriptors.u8", before * per * FEATURE_BYTES, block.tobytes())
        append_durable(self.directory / "counts.u16", before * 2, counts.tobytes())
        total = before + len(self._pending)
        descriptors_all = map_array(self.directory / "descriptors.u8", np.dtype("u1"), total * per * FEATURE_BYTES)
        descriptors_all = descriptors_all.reshape(total, per, FEATURE_BYTES)
        counts_all = map_array(self.directory / "counts.u16", np.dtype("<u2"), total)
        generation = state["generation"]
        trained_on = int(state["trained_on"])
        retrain = total >= TRAIN_MIN_REFERENCES and (
            generation is None or (trained_on < SETTLED_REFERENCES and total >= RETRAIN_GROWTH * trained_on)
        )
        if retrain:
            generation = 1 if generation is None else int(generation) + 1
            vocabulary = self._train(descriptors_all, counts_all, seed=generation)
            folder = self.directory / f"vocab-{generation}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            vocabulary.save(folder)
            words = np.concatenate(
                [
                    _words_of(vocabulary, descriptors_all[s : s + _ASSIGN_CHUNK], counts_all[s : s + _ASSIGN_CHUNK])
                    for s in range(0, total, _ASSIGN_CHUNK)
                ]
            )
            write_durable(self.directory / f"words-{generation}.u32", words.astype("<u4").tobytes())
            state.update(generation=generation, trained_on=total, segments=[])
            logger.info("match index features: vocabulary %d trained on %d references", generation, total)
        elif generation is not None:
            assert self.vocabulary is not None  # loaded with the generation
            words = _words_of(self.vocabulary, block, counts)
            append_durable(self.directory / f"words-{generation}.u32", before * per * 4, words.astype("<u4").tobytes())
            vocabulary = self.vocabulary
        if generation is not None:
            state["segments"] = self._plan_segments(
                [list(s) for s in state["segments"]], total, int(generation), vocabulary.words
            )
        fsync_dir(self.directory)
        state["references"] = total
        self._pending.clear()
        return state

    @staticmethod
    def _train(descriptors: npt.NDArray[np.uint8], counts: npt.NDArray[np.uint16], *, seed: int) -> Vocabulary:
        """A vocabulary from a sample of at most :data:`TRAIN_SAMPLE` stored descriptors."""
        rng = np.random.default_rng(seed)
        references = len(counts)
        average = max(1.0, float(np.mean(counts)))
        chosen = np.sort(rng.choice(references, size=min(references, math.ceil(TRAIN_SAMPLE / average)), replace=False))
        rows = descriptors[chosen]
        valid = np.arange(rows.shape[1])[None, :] < counts[chosen][:, None]
        sample = np.ascontiguousarray(rows[valid])
        if len(sample) < 2:  # every reference is plain: one word for everything
            sample = np.zeros((2, FEATURE_BYTES), dtype=np.uint8)
        return Vocabulary.train(sample, seed=seed)

    def _plan_segments(self, segments: list[list[int]], total: int, generation: int, words: int) -> list[list[int]]:
        """Seal the tail into a segment when big enough, merge like a binary counter, build the newest."""
        if not seal_segments(segments, total, seal_at=SEAL_REFERENCES):
            return segments
        start, end = segments[-1]
        per = self.per_reference
        words_all = map_array(self.directory / f"words-{generation}.u32", np.dtype("<u4"), end * per)
        _Postings.build(self._postings_dir(generation, start, end), words_all[start * per :], start, per, words)
        return segments

    def remove_stale(self) -> None:
        """Delete vocabularies, word lists and inverted files the committed state no longer uses."""
        generation = self.state["generation"]
        live = set()
        if generation is not None:
            live = {f"vocab-{generation}", f"words-{generation}.u32"} | {
                self._postings_dir(int(generation), s, e).name for s, e in self.state["segments"]
            }
        for path in self.directory.iterdir():
            if path.name.startswith(("vocab-", "words-", "post-")) and path.name not in live:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    # -- searching --

    def descriptors(self, owner: int) -> Descriptors:
        """The stored descriptors of reference ``owner``."""
        return self._descriptors[owner, : int(self._counts[owner])]

    def search(self, query: Descriptors, *, shortlist: int, min_matches: int) -> list[tuple[int, DescriptorMatches]]:
        """References sharing at least ``min_matches`` clear descriptor partners with ``query``, most first.

        Only committed references are searched.
        """
        references = int(self.state["references"])
        if not references or not len(query):
            return []
        if self.vocabulary is None:
            candidates: Sequence[int] = range(references)
        else:
            candidates = self._shortlist(query, shortlist)
        counted = count_matches_many(query, [self.descriptors(int(owner)) for owner in candidates])
        found = [(int(owner), c) for owner, c in zip(candidates, counted, strict=True) if c.matches >= min_matches]
        found.sort(key=lambda item: (-item[1].matches, item[1].median_bits, item[0]))
        return found

    def _shortlist(self, query: Descriptors, shortlist: int) -> list[int]:
        """The ``shortlist`` references whose shared words weigh most."""
        assert self.vocabulary is not None
        per = self.per_reference
        # The strongest corners are the most repeatable: their words choose; every descriptor then counts.
        words = np.unique(self.vocabulary.assign(query[:SHORTLIST_DESCRIPTORS]))
        # Rarest words first, until the postings budget is spent: a rare word says most, and the
        # budget bounds the work however large the store grows.
        words = words[np.argsort(self._frequency[words], kind="stable")]
        within = np.cumsum(self._frequency[words]) <= POSTINGS_BUDGET
        within[0] = True
        words = np.sort(words[within])
        owners_parts, words_parts = [], []
        for postings in self._postings:
            owners, hit_words = postings.lookup(words)
            owners_parts.append(owners)
            words_parts.append(hit_words)
        tail = self._words[self._tail_start * per :]
        if tail.size:  # the newest references, not yet in a segment, are scanned
            positions = np.flatnonzero(np.isin(tail, words.astype(np.uint32)))
            owners_parts.append(self._tail_start + positions // per)
            words_parts.append(tail[positions].astype(np.int64))
        if not owners_parts:
            return []
        owners = np.concatenate(owners_parts)
        if not owners.size:
            return []
        weights = self._idf[np.concatenate(words_parts)]
        # Scores are summed in a fixed number of buckets (reference number modulo BUCKETS, which stays in
        # cache) rather than one slot per reference (which grows with the store). A bucket scores at least
        # as much as any reference in it, so the best references lie in the best buckets; those few
        # buckets' references are then scored exactly. A word a reference holds twice counts twice.
        buckets = owners & (BUCKETS - 1)
        bucket_scores = np.bincount(buckets, weights=weights, minlength=BUCKETS)
        keep = min(BUCKETS, 10 * shortlist)
        best_buckets = np.argpartition(-bucket_scores, keep - 1)[:keep]
        chosen = np.zeros(BUCKETS, dtype=bool)
        chosen[best_buckets[bucket_scores[best_buckets] > 0]] = True
        inside = chosen[buckets]
        present, slot = np.unique(owners[inside], return_inverse=True)
        scores = np.bincount(slot, weights=weights[inside], minlength=present.size)
        order = np.argsort(-scores, kind="stable")[:shortlist]
        ranked: list[int] = present[order].tolist()
        return ranked


def _words_of(vocabulary: Vocabulary, block: npt.NDArray[np.uint8], counts: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """Words of a ``n x K x 32`` block of references (``_NO_WORD`` for padding), row-major."""
    per = block.shape[1]
    valid = (np.arange(per)[None, :] < np.asarray(counts)[:, None]).ravel()
    words = np.full(block.shape[0] * per, _NO_WORD, dtype=np.uint32)
    words[valid] = vocabulary.assign(np.ascontiguousarray(block.reshape(-1, FEATURE_BYTES)[valid])).astype(np.uint32)
    return words
