"""Hypothesis strategies shared by the suite."""

from __future__ import annotations

from hypothesis import strategies as st

from deid.types import Box, Region, RegionKind


@st.composite
def boxes(draw: st.DrawFn, *, width: int = 200, height: int = 150, allow_outside: bool = True) -> Box:
    """Boxes on a ``width x height`` image; may cross or touch its edges when ``allow_outside``."""
    slack = 40 if allow_outside else 0
    left = draw(st.integers(-slack, width + slack - 1))
    top = draw(st.integers(-slack, height + slack - 1))
    right = draw(st.integers(left + 1, width + slack))
    bottom = draw(st.integers(top + 1, height + slack))
    return Box(left, top, right, bottom)


@st.composite
def regions(draw: st.DrawFn, *, width: int = 200, height: int = 150) -> Region:
    """Regions of any kind with scores in [0, 1]."""
    kind = draw(st.sampled_from(list(RegionKind)))
    score = draw(st.floats(0.0, 1.0, allow_nan=False))
    return Region(kind, draw(boxes(width=width, height=height)), score, "test@1")
