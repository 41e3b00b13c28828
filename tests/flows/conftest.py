"""Flow tests share one temporary Prefect server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import prefect  # noqa: F401 - configure Prefect's logging now, on the real streams, not inside a capsys test
import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A local Prefect API on a throwaway SQLite database (started once, ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
