"""The flows' shared helpers: only transient faults are retried, bad input never."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from deid.errors import InputError, TransientError
from deid.heap import HUGE_PAGES_TUNABLE, huge_pages_active
from flows.common import retry_transient, worker_processes_environment


def test_a_transient_fault_is_retried_until_it_passes() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("database is busy")
        return "recorded"

    assert retry_transient(flaky, retries=2, delay_s=0) == "recorded"
    assert len(calls) == 3


def test_a_transient_fault_that_persists_is_raised_after_the_retries() -> None:
    calls: list[int] = []

    def busy() -> None:
        calls.append(1)
        raise TransientError("database is busy")

    with pytest.raises(TransientError):
        retry_transient(busy, retries=2, delay_s=0)
    assert len(calls) == 3


def test_bad_input_is_never_retried() -> None:
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise InputError("unreadable row")

    with pytest.raises(InputError):
        retry_transient(bad, retries=2, delay_s=0)
    assert calls == [1]


def _started_with_huge_pages() -> bool:
    return huge_pages_active()


def test_worker_processes_started_by_a_run_get_huge_pages_and_the_environment_is_restored() -> None:
    before = os.environ.get("GLIBC_TUNABLES")
    with worker_processes_environment():
        assert HUGE_PAGES_TUNABLE in os.environ["GLIBC_TUNABLES"]
        # ProcessPoolTaskRunner starts its workers by spawning, as here.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            seen = pool.apply(_started_with_huge_pages)
    assert os.environ.get("GLIBC_TUNABLES") == before
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[never]" not in thp.read_text():
        assert seen, "a worker spawned inside the block did not start with huge pages"
