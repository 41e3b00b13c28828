"""A visual vocabulary for ORB descriptors: a two-level tree of binary cluster centres.

A *word* is a leaf of the tree. Similar descriptors (the same corner in a copy
and in its original) mostly fall into the same word, so an inverted file from
word to references (:mod:`deid.match.feature_store`) finds the references
that share many words with a query without looking at any other reference
(Sivic and Zisserman's "Video Google", 2003; Nistér and Stewénius's vocabulary
tree, 2006).

The tree is trained on the index's own descriptors: k-means on their bits
(faiss, on 0/1 floats), each centre rounded back to bits. The top level has
about the square root of the word count; each top cluster is split again in
proportion to its size, so dense regions of descriptor space get more words.
A descriptor is assigned by its nearest top centre, then its nearest leaf
below it (two small exact Hamming searches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from deid.match.features import FEATURE_BYTES, Descriptors
from deid.match.storage import write_durable

MAX_WORDS = 1 << 18
"""Upper bound on the vocabulary size."""
POINTS_PER_WORD = 4
"""Training descriptors per word: the vocabulary grows with the index it is trained on.

Fine words keep a small index discriminative: a query brings 500 descriptors, and with
32 per word an index of 200 references would have fewer words than the query has."""
_MAX_BRANCHES = 512
_ITERATIONS = 12
_POINTS_PER_CENTRE = 256
_BITS = FEATURE_BYTES * 8


def _binary_kmeans(descriptors: Descriptors, clusters: int, seed: int) -> Descriptors:
    """``clusters`` binary centres of ``descriptors`` (k-means on bits, centres rounded)."""
    if len(descriptors) > clusters * _POINTS_PER_CENTRE:  # what k-means would sample anyway, before unpacking
        rng = np.random.default_rng(seed)
        descriptors = descriptors[np.sort(rng.choice(len(descriptors), clusters * _POINTS_PER_CENTRE, replace=False))]
    bits = np.unpackbits(descriptors, axis=1).astype(np.float32)
    kmeans = faiss.Kmeans(
        _BITS,
        clusters,
        niter=_ITERATIONS,
        seed=seed,
        min_points_per_centroid=1,
        max_points_per_centroid=_POINTS_PER_CENTRE,
    )
    kmeans.train(np.ascontiguousarray(bits))
    centres: npt.NDArray[np.float32] = np.asarray(kmeans.centroids, dtype=np.float32)
    return np.packbits(centres > 0.5, axis=1).astype(np.uint8)


def _flat(centres: Descriptors) -> faiss.IndexBinaryFlat:
    index = faiss.IndexBinaryFlat(_BITS)
    index.add(np.ascontiguousarray(centres, dtype=np.uint8))
    return index


@dataclass(frozen=True)
class Vocabulary:
    """A two-level vocabulary tree.

    Attributes
    ----------
    top
        ``B x 32`` top-level centres.
    leaves
        ``W x 32`` leaf centres (the words), grouped by top centre.
    starts
        ``B + 1`` offsets: the leaves of top centre ``b`` are ``leaves[starts[b]:starts[b + 1]]``.
    """

    top: Descriptors
    leaves: Descriptors
    starts: npt.NDArray[np.int64]
    _indexes: list[Any] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The tree is an inverted-file index: top centres quantise, each lists its own leaves, and one
        # search with one probe finds a descriptor's leaf (a Python loop over branches cost 3x more).
        quantizer = _flat(self.top)
        tree = faiss.IndexBinaryIVF(quantizer, _BITS, len(self.top))
        tree.is_trained = True
        tree.nprobe = 1
        for b in range(len(self.top)):
            start, end = int(self.starts[b]), int(self.starts[b + 1])
            codes = np.ascontiguousarray(self.leaves[start:end])
            ids = np.arange(start, end, dtype=np.int64)
            tree.invlists.add_entries(b, end - start, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
        tree.ntotal = len(self.leaves)
        self._indexes.extend((quantizer, tree))  # the quantiser must outlive the tree that points at it

    @property
    def words(self) -> int:
        """Number of words (leaves)."""
        return len(self.leaves)

    @classmethod
    def train(cls, descriptors: Descriptors, *, seed: int = 0, max_words: int = MAX_WORDS) -> Vocabulary:
        """Train on ``descriptors`` (``n x 32`` ``uint8``, ``n >= 2``); about ``n / 4`` words.

        Raises
        ------
        ValueError
            If fewer than two descriptors are given.

        Examples
        --------
        >>> data = np.random.default_rng(0).integers(0, 256, (2000, 32), dtype=np.uint8)
        >>> vocabulary = Vocabulary.train(data)
        >>> 100 <= vocabulary.words <= 500
        True
        """
        if len(descriptors) < 2:
            raise ValueError("a vocabulary needs at least two descriptors")
        words = min(max_words, max(4, len(descriptors) // POINTS_PER_WORD))
        branches = min(_MAX_BRANCHES, max(2, round(math.sqrt(words))), len(descriptors))
        top = _binary_kmeans(descriptors, branches, seed)
        _, nearest = _flat(top).search(np.ascontiguousarray(descriptors), 1)
        groups: list[Descriptors] = []
        for b in range(branches):
            members = descriptors[nearest[:, 0] == b]
            per_group = min(_MAX_BRANCHES, round(len(members) * words / len(descriptors)))
            if per_group >= 2 and len(members) >= 2 * per_group:
                groups.append(_binary_kmeans(members, per_group, seed + 1 + b))
            else:
                groups.append(top[b : b + 1])
        starts = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
        return cls(top, np.concatenate(groups), starts)

    def assign(self, descriptors: Descriptors) -> npt.NDArray[np.int64]:
        """The word of each descriptor (``n`` ints in ``0..words-1``)."""
        if not len(descriptors):
            return np.empty(0, dtype=np.int64)
        _, leaf = self._indexes[1].search(np.ascontiguousarray(descriptors, dtype=np.uint8), 1)
        words: npt.NDArray[np.int64] = leaf[:, 0].astype(np.int64)
        return words

    def save(self, directory: Path) -> None:
        """Write ``top.u8``, ``leaves.u8`` and ``starts.i64`` into ``directory`` (which must exist)."""
        write_durable(directory / "top.u8", self.top.tobytes())
        write_durable(directory / "leaves.u8", self.leaves.tobytes())
        write_durable(directory / "starts.i64", self.starts.astype("<i8").tobytes())

    @classmethod
    def load(cls, directory: Path) -> Vocabulary:
        """Read what :meth:`save` wrote.

        Raises
        ------
        OSError
            If a file is missing.
        ValueError
            If the files do not fit together.
        """
        top = np.fromfile(directory / "top.u8", dtype=np.uint8).reshape(-1, FEATURE_BYTES)
        leaves = np.fromfile(directory / "leaves.u8", dtype=np.uint8).reshape(-1, FEATURE_BYTES)
        starts = np.fromfile(directory / "starts.i64", dtype="<i8").astype(np.int64)
        if starts.size != len(top) + 1 or starts[-1] != len(leaves) or np.any(np.diff(starts) < 1):
            raise ValueError("vocabulary files do not fit together")
        return cls(top, leaves, starts)
