"""Durable, memory-mapped files for the persistent indexes, and lookups in them.

Every index file is append-only or written whole into a staging place and
renamed; the commit record (``meta.json``) is replaced last. These helpers
write and map such files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def map_array(path: Path, dtype: np.dtype[Any], count: int) -> npt.NDArray[Any]:
    """Memory-map the first ``count`` items of ``path`` (an empty array when ``count`` is 0)."""
    if count == 0:
        return np.empty(0, dtype=dtype)
    # A plain ndarray view of the map: indexing a np.memmap wraps every result, which costs more than the gather.
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=(count,)))


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def append_durable(path: Path, committed: int, data: bytes) -> None:
    """Append ``data`` at byte ``committed`` of ``path``, first cutting off whatever lies past it; fsync."""
    with open(path, "ab") as handle:
        # Whatever an interrupted run wrote past the committed length goes first.
        handle.truncate(committed)
        handle.seek(committed)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (new and renamed files) durable, where the filesystem allows it."""
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def concat_ranges(lo: I64, hi: I64) -> I64:
    """Concatenate ``arange(lo[i], hi[i])`` for every ``i``, vectorised."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    starts: I64 = np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
    return (starts + np.arange(total, dtype=np.int64)).astype(np.int64)


def seal_segments(segments: list[list[int]], total: int, *, seal_at: int) -> bool:
    """Plan the segments (``[start, end)`` ranges) after items up to ``total`` are committed, in place.

    The unsealed tail becomes a segment once it holds ``seal_at`` items; then
    the newest segment merges into its older neighbour while it is over half
    that one's size, like a binary counter, so every item is rebuilt
    ``O(log n)`` times in all.

    Returns
    -------
    bool
        True when the last segment is new (merged or sealed) and must be built.
    """
    tail_start = segments[-1][1] if segments else 0
    if total - tail_start < seal_at:
        return False
    segments.append([tail_start, total])
    while len(segments) >= 2 and (segments[-1][1] - segments[-1][0]) * 2 > segments[-2][1] - segments[-2][0]:
        last = segments.pop()
        segments[-1] = [segments[-1][0], last[1]]
    return True
