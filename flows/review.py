"""The ``review`` flow: apply what reviewers decided on the page or the CLI.

Steps: load config -> queue anything newly held (and the audit sample) ->
apply every decided item (re-render from the original with the reviewer's
boxes through staging, verify, stage, record) -> report counts. The page only
records decisions; this flow is what changes staged/ and the ledger.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from deid.config import Config, load_config
from deid.ledger import Ledger, ledger_url
from deid.review.apply import ApplySummary, apply_decisions, sync_queue
from deid.review.store import ReviewStore
from deid.workspace import Workspace
from flows.common import retry_if_transient, surface_deid_logs

RETRIES = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


class ReviewParameters(BaseModel):
    """Parameters of a review run."""

    workspace: str = Field(default="workspace", description="private workspace folder")
    config_path: str | None = Field(default=None, description="deid.toml overlaid on the defaults")
    db: str = Field(default="", description="ledger SQLAlchemy URL (default: the workspace's ledger)")


def _open(params: ReviewParameters, config: Config) -> tuple[Workspace, Ledger, ReviewStore]:
    workspace = Workspace(Path(params.workspace).resolve())
    ledger = Ledger(params.db or ledger_url(workspace.root, config.ledger.url))
    return workspace, ledger, ReviewStore(ledger.engine)


@task(name="sync-queue", **RETRIES)
def sync_task(params: ReviewParameters, config: Config) -> int:
    """Queue newly held items and the audit sample."""
    _, ledger, store = _open(params, config)
    return sync_queue(ledger, store, config)


@task(name="apply-decisions", **RETRIES)
def apply_task(params: ReviewParameters, config: Config) -> ApplySummary:
    """Apply every decided, not yet applied, review decision."""
    surface_deid_logs()
    workspace, ledger, store = _open(params, config)
    return apply_decisions(workspace, ledger, store, config)


@flow(name="review", log_prints=True)
def review(params: ReviewParameters) -> ApplySummary:
    """Apply review decisions to the workspace."""
    surface_deid_logs()
    config = load_config(params.config_path)
    sync_task(params, config)
    summary = apply_task(params, config)
    print(f"review applied: {summary.to_json()['counts']}")
    return summary


def run_review(*, workspace: str, config_path: str | None = None, db: str = "") -> ApplySummary:
    """Run the flow from code or the CLI."""
    return review(ReviewParameters(workspace=workspace, config_path=config_path, db=db))
