"""Segment planning and range helpers of the persistent indexes."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deid.match.storage import concat_ranges, seal_segments


@given(commits=st.lists(st.integers(1, 5000), max_size=40), seal_at=st.integers(1, 4096))
def test_segments_tile_the_sealed_items_and_stay_logarithmic(commits: list[int], seal_at: int) -> None:
    segments: list[list[int]] = []
    total = 0
    for added in commits:
        total += added
        before = [list(s) for s in segments]
        rebuilt = seal_segments(segments, total, seal_at=seal_at)
        assert rebuilt == (segments != before)
        # Contiguous from 0; only the tail (fewer than seal_at items) is left unsealed.
        assert all(a[1] == b[0] for a, b in itertools.pairwise(segments))
        assert not segments or segments[0][0] == 0
        assert total - (segments[-1][1] if segments else 0) < seal_at
        # Binary counter: each segment is at least twice its newer neighbour, so there are O(log n) of them.
        sizes = [e - s for s, e in segments]
        assert all(older >= 2 * newer for older, newer in itertools.pairwise(sizes))
        assert len(segments) <= 2 + 2 * int(np.log2(max(total, 1)))


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), max_size=20))
def test_concat_ranges(pairs: list[tuple[int, int]]) -> None:
    lo = np.asarray([a for a, _ in pairs], dtype=np.int64)
    hi = lo + np.asarray([n for _, n in pairs], dtype=np.int64)
    expected = [i for a, b in zip(lo.tolist(), hi.tolist(), strict=True) for i in range(a, b)]
    assert concat_ranges(lo, hi).tolist() == expected
