"""Session fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from deid.config import Config, load_config  # does not import prefect, so it may precede the settings below

# Property tests are judged on their properties, not their speed: a 2-core CI machine running
# model-heavy tests alongside must not fail an example for taking over 200 ms.
settings.register_profile("deid", deadline=None, print_blob=True)
settings.load_profile("deid")

# Prefect reads its logging settings when it is first imported: make deid's
# logger an extra logger before any test module imports prefect.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "deid")
# Library calls made outside a flow (most tests) log normally, without asking Prefect for a run.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

REPO = Path(__file__).resolve().parents[1]
DEVDATA = Path(os.environ.get("DEID_DEVDATA", REPO.parent / "shared" / "devdata"))


@pytest.fixture(scope="session")
def config() -> Config:
    """The shipped default configuration."""
    return load_config()


@pytest.fixture(scope="session")
def devdata() -> Path:
    """../shared/devdata, or skip: a clone outside the workplace does not have it."""
    if not DEVDATA.is_dir():
        pytest.skip(f"devdata not found at {DEVDATA} (set DEID_DEVDATA); CI always has it")
    return DEVDATA


@pytest.fixture
def clean_environ() -> Iterator[None]:
    """Restore os.environ after a test that changes it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the flow tests last.

    They share one Prefect test server whose background threads (event and log
    workers) live until the session ends and touch global state such as the
    ``random`` module; Hypothesis rightly fails a test whose generation sees that
    state change. With the flows last, no other test shares the process with them.
    """
    flows = REPO / "tests" / "flows"
    items.sort(key=lambda item: Path(str(item.fspath)).is_relative_to(flows))
