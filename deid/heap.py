"""A long-running worker's memory: freed buffers go back to the system, scratch memory after each run.

A worker decodes one photo after another and runs networks on images of
different sizes, so it allocates and frees buffers of one to a few tens of
megabytes all the time. glibc's allocator serves a block above its *mmap
threshold* from a fresh mapping and returns it to the system when freed; below
it, from the heap, where freed memory stays in the process. The threshold is
dynamic by default: each freed mapping raises it to that block's size (up to
32 MB), so after the first photo nearly every buffer comes from the heap, and
fragments of it stay resident. Measured on devdata (40 photos of varied sizes,
every detector, one process): resident memory grew by 960 MB with the dynamic
threshold and by 560 MB with it fixed at 1 MB, at the same speed.

:func:`bound_heap` fixes the threshold once per process. It is a no-op where
the C library is not glibc (macOS, musl). :func:`worker_environment` is what a
batch worker is started with (transparent huge pages), and
:func:`huge_pages_active` tells a process whether it was, which is when
:mod:`deid.detect.runtime` returns each network's scratch memory after a run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 1 << 20
"""Blocks of this size or more get their own mapping, returned to the system when freed."""

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def bound_heap() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES`; ``True`` if it took effect.

    Setting the threshold explicitly also switches its dynamic adjustment off.
    Safe to call more than once (only the first call acts).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not applied:
        logger.debug("mallopt(M_MMAP_THRESHOLD) refused; the heap keeps its dynamic threshold")
    return applied


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
"""Asks glibc to back its mappings with transparent huge pages (``madvise``), read at process start."""

_THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment variables to add for a worker process started from ``environ``.

    Workers run networks whose scratch memory is returned after every image
    (:func:`huge_pages_active`). With 4 kB pages, faulting 170 MB back in cost
    0.11 s a call. With huge pages, ``deid run`` on 12 MP photos (``benchmarks/
    throughput.py``, 2 workers) peaked at 2.22 GiB instead of 2.72 GiB: networks
    took about 0.2 s an image more, encoding 0.1 s less (its buffers reuse the
    returned pages), at the same images per second within that benchmark's
    noise. glibc reads the tunable only when a process starts, so it goes into
    the environment workers inherit.
    Tunables already set are kept.
    """
    current = environ.get("GLIBC_TUNABLES", "")
    if HUGE_PAGES_TUNABLE in current.split(":"):
        return {}
    return {"GLIBC_TUNABLES": f"{current}:{HUGE_PAGES_TUNABLE}" if current else HUGE_PAGES_TUNABLE}


@functools.cache
def huge_pages_active() -> bool:
    """Whether this process's large allocations get transparent huge pages.

    True when the process *started* with :data:`HUGE_PAGES_TUNABLE` (read from
    ``/proc/self/environ``, which later changes to ``os.environ`` do not touch)
    and the kernel grants huge pages on request (``always`` or ``madvise``).
    """
    try:
        started_with = Path("/proc/self/environ").read_bytes().split(b"\0")
        setting = _THP_SETTING.read_text()
    except OSError:  # not Linux
        return False
    prefix = b"GLIBC_TUNABLES="
    tunables = next((entry[len(prefix) :] for entry in started_with if entry.startswith(prefix)), b"")
    granted = "[always]" in setting or "[madvise]" in setting
    return granted and HUGE_PAGES_TUNABLE.encode() in tunables.split(b":")
