"""The flows' shared helpers: only transient faults are retried, bad input never."""

from __future__ import annotations

import pytest

from deid.errors import InputError, TransientError
from flows.common import retry_transient


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
