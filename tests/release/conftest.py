"""One workspace built by the real pipeline from sample_data per session; each test gets a copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deid.batch import finish_batch
from deid.config import Config, load_config
from deid.ingest import ingest_batch
from deid.ledger import Ledger
from deid.pipeline import process_image, record_image_result
from deid.workspace import Workspace, open_ledger

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CONFIG = Path(__file__).with_name("release.toml")


@dataclass
class Built:
    """A copy of the session's workspace, its ledger and configuration, and where a release may go."""

    root: Path
    config: Config
    workspace: Workspace
    ledger: Ledger
    out: Path


@pytest.fixture(scope="session")
def release_config() -> Config:
    return load_config(CONFIG)


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory, release_config: Config) -> Path:
    """sample_data through ingest, every image, and the batch step (no Prefect: library calls)."""
    root = tmp_path_factory.mktemp("release-workspace") / "workspace"
    workspace = Workspace(root).create()
    ledger = open_ledger(workspace, release_config)
    ingest = ingest_batch(SAMPLE, workspace, ledger, release_config)
    for task in ingest.tasks:
        record_image_result(ledger, process_image(task, release_config, workspace))
    finish_batch(workspace, ledger, release_config, ingest)
    ledger.close()
    return root


@pytest.fixture
def built(built_workspace: Path, tmp_path: Path, release_config: Config) -> Iterator[Built]:
    root = tmp_path / "workspace"
    shutil.copytree(built_workspace, root)
    workspace = Workspace(root)
    ledger = open_ledger(workspace, release_config)
    yield Built(tmp_path, release_config, workspace, ledger, tmp_path / "release")
    ledger.close()


@dataclass
class Published:
    """A workspace from which release 1.0.0 was published (left-out pending items), and that release."""

    workspace_root: Path
    out: Path


@pytest.fixture(scope="session")
def published(built_workspace: Path, tmp_path_factory: pytest.TempPathFactory, release_config: Config) -> Published:
    from deid.release import build_release

    base = tmp_path_factory.mktemp("published")
    root = base / "workspace"
    shutil.copytree(built_workspace, root)
    workspace = Workspace(root)
    ledger = open_ledger(workspace, release_config)
    build_release(
        workspace, ledger, release_config, out=base / "release-1.0.0", version="1.0.0", leave_pending_out=True
    )
    ledger.close()
    return Published(root, base / "release-1.0.0")


@pytest.fixture
def after_first(published: Published, tmp_path: Path, release_config: Config) -> Iterator[Built]:
    """A copy of the workspace after 1.0.0 was published."""
    root = tmp_path / "workspace"
    shutil.copytree(published.workspace_root, root)
    workspace = Workspace(root)
    ledger = open_ledger(workspace, release_config)
    yield Built(tmp_path, release_config, workspace, ledger, tmp_path / "release-1.1.0")
    ledger.close()
