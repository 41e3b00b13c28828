"""The ``deidentify`` flow: one batch of contributions from input folder to staged output.

Steps: load config -> ingest (originals kept, ledger rows) -> process every
image (fanned out on the task runner: threads here, a Dask cluster with
``cluster``) -> record each result -> finish (duplicates, cases.csv, manifest).
Held is not failed: a held image is a normal result and the run stays green.
The ledger makes reruns no-ops, so no Prefect result cache is used (it cannot
know whether a staged file still exists).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from deid.config import Config, load_config
from deid.pipeline import (
    BatchSummary,
    ImageResult,
    ImageTask,
    IngestResult,
    Workspace,
    finish_batch,
    ingest_batch,
    open_ledger,
    process_image,
    record_image_result,
)
from flows.common import retry_if_transient, surface_deid_logs

RETRIES = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


class RunParameters(BaseModel):
    """Parameters of a batch run (validated, and shown as a form in the Prefect UI)."""

    input_dir: str = Field(description="folder with cases.csv and images/")
    workspace: str = Field(default="workspace", description="private workspace folder")
    config_path: str | None = Field(default=None, description="deid.toml overlaid on the defaults")
    cluster: str | None = Field(default=None, description="Dask scheduler address, or 'local' for a local cluster")


@task(name="load-config", cache_policy=NO_CACHE)
def load_config_task(config_path: str | None) -> Config:
    """Load and validate the configuration (a ConfigError fails the run at once)."""
    return load_config(config_path)


@task(name="ingest", **RETRIES)
def ingest_task(input_dir: str, workspace: Workspace, config: Config) -> IngestResult:
    """Keep originals, register contributions and images."""
    return ingest_batch(input_dir, workspace, open_ledger(workspace, config), config)


@task(name="process-image", **RETRIES)
def process_task(image: ImageTask, config: Config, workspace: Workspace) -> ImageResult:
    """Detect, decide, render, encode and verify one image."""
    surface_deid_logs()
    return process_image(image, config, workspace)


@task(name="record-result", **RETRIES)
def record_task(result: ImageResult, workspace: Workspace, config: Config) -> None:
    """Store one result in the ledger."""
    record_image_result(open_ledger(workspace, config), result)


@task(name="finish-batch", **RETRIES)
def finish_task(input_dir: str, workspace: Workspace, config: Config, ingest: IngestResult) -> BatchSummary:
    """Collapse duplicates, write staged cases.csv and manifest.json."""
    return finish_batch(input_dir, workspace, open_ledger(workspace, config), config, ingest)


@flow(name="deidentify", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def deidentify(params: RunParameters) -> BatchSummary:
    """De-identify one batch of contributions into the workspace's staged folder."""
    surface_deid_logs()
    config = load_config_task(params.config_path)
    workspace = Workspace(Path(params.workspace).resolve()).create()
    ingest = ingest_task(params.input_dir, workspace, config)
    results = process_task.map(ingest.tasks, config=unmapped(config), workspace=unmapped(workspace)).result()
    for result in results:
        record_task(result, workspace, config)
    return finish_task(params.input_dir, workspace, config, ingest)


def run_batch(
    *, input_dir: str, workspace: str, config_path: str | None = None, cluster: str | None = None
) -> BatchSummary:
    """Run the flow from code or the CLI, on threads or on a Dask cluster."""
    params = RunParameters(input_dir=input_dir, workspace=workspace, config_path=config_path, cluster=cluster)
    runnable = deidentify
    if cluster:
        from prefect_dask import DaskTaskRunner

        local = {"cluster_kwargs": {"n_workers": 2, "threads_per_worker": 1, "processes": True}}
        runner = DaskTaskRunner(**local) if cluster == "local" else DaskTaskRunner(address=cluster)
        runnable = deidentify.with_options(task_runner=runner)
    return runnable(params)
