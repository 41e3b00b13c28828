"""The worker's heap returns freed image-sized buffers to the system (deid.heap)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

# Run in a fresh interpreter: the allocator's thresholds are per process, and pytest's has
# already freed large blocks. Buffers of 4 MB are freed while 100 kB ones between them live
# on: from the heap, the freed space could not be trimmed and would stay resident.
_PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import psutil
    if sys.argv[1] == "bounded":
        from deid.heap import bound_heap
        assert bound_heap()
    process = psutil.Process()
    scratch = np.ones(8 << 20, np.uint8)  # freeing it raises glibc's dynamic threshold to 8 MB
    del scratch
    before = process.memory_info().rss
    large, small = [], []
    for _ in range(40):
        large.append(np.ones(4 << 20, np.uint8))
        small.append(np.ones(100 << 10, np.uint8))
    del large
    print((process.memory_info().rss - before) >> 20)
    """
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="the mmap threshold is a glibc setting",
)


def _resident_growth_mb(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_freed_image_buffers_leave_the_process_once_the_heap_is_bounded() -> None:
    unbounded = _resident_growth_mb("default")
    bounded = _resident_growth_mb("bounded")
    assert unbounded > 100, f"the probe no longer shows glibc's behaviour ({unbounded} MB kept): rewrite it"
    assert bounded < 20, f"{bounded} MB of freed 4 MB buffers stayed resident"


def test_bounding_twice_is_harmless() -> None:
    from deid.heap import bound_heap

    assert bound_heap() is bound_heap()
