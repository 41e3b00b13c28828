"""A worker's memory (deid.heap): freed image-sized buffers go back to the system; workers start with huge pages."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deid.heap import HUGE_PAGES_TUNABLE, huge_pages_active, worker_environment

_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

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


def test_the_worker_environment_adds_huge_pages_and_keeps_other_tunables() -> None:
    assert worker_environment({}) == {"GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}
    merged = worker_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert merged == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{HUGE_PAGES_TUNABLE}"}
    assert worker_environment(merged) == {}, "already there: nothing to add"


# A network's scratch memory after two runs on a 960 x 736 input, in a fresh process: kept
# (OpenVINO holds it for the next call) unless the process started with huge pages, when it is
# returned after every run at no cost.
_NETWORK_PROBE = textwrap.dedent(
    """
    from importlib import resources
    from pathlib import Path
    import numpy as np
    import psutil
    from deid.detect.runtime import load_network
    from deid.heap import huge_pages_active
    model = Path(str(resources.files("rapidocr").joinpath("models", "PP-OCRv6_det_small.onnx")))
    network = load_network(model)
    process = psutil.Process()
    before = process.memory_info().rss
    frame = np.random.default_rng(0).random((1, 3, 960, 736), dtype=np.float32)
    for _ in range(2):
        (heat,) = network.run(None, {network.input_names[0]: frame})
    assert heat.shape[-2:] == (960, 736)
    print(huge_pages_active(), (process.memory_info().rss - before) >> 20)
    """
)


def _network_probe(environment: dict[str, str]) -> tuple[bool, int]:
    env = {**os.environ, **environment}
    if not environment:
        env.pop("GLIBC_TUNABLES", None)
    done = subprocess.run([sys.executable, "-c", _NETWORK_PROBE], capture_output=True, text=True, check=True, env=env)
    active, kept = done.stdout.split()[-2:]
    return active == "True", int(kept)


@pytest.mark.skipif(not _THP.exists() or "[never]" in _THP.read_text(), reason="the kernel grants no huge pages")
def test_a_worker_started_with_huge_pages_returns_network_scratch_memory_after_each_run() -> None:
    active, kept = _network_probe(worker_environment({}))
    plain_active, plain_kept = _network_probe({})
    assert active, "a process started with the worker environment did not see huge pages as active"
    assert not plain_active
    assert plain_kept > 150, f"without huge pages the probe kept only {plain_kept} MB: rewrite it"
    assert kept < plain_kept - 100, f"{kept} MB of scratch memory stayed after the runs ({plain_kept} MB without)"


def test_changing_this_process_environment_does_not_count_as_huge_pages() -> None:
    # glibc read its tunables when pytest started; setting them now changes nothing.
    assert huge_pages_active() is ("glibc.malloc.hugetlb=1" in Path("/proc/self/environ").read_text(errors="replace"))


def test_bounding_twice_is_harmless() -> None:
    from deid.heap import bound_heap

    assert bound_heap() is bound_heap()
