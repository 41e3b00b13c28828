"""The ``deidentify`` flow: one batch of contributions from input folder to staged output.

Steps: load config -> ingest (originals kept, ledger rows) -> process every
image (on :class:`deid.workers.ImageWorkers`, its task waiting on a thread; on
a Dask worker with ``cluster``), recording each result as soon as it is done ->
finish (duplicates, cases.csv, manifest). One ledger is opened per flow run
and closed at its end; workers never touch it. Held is not failed: a held
image is a normal result and the run stays green. The ledger makes reruns
no-ops, so no Prefect result cache is used (it cannot know whether a staged
file still exists).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from deid.batch import BatchSummary, finish_batch
from deid.config import Config, load_config
from deid.ingest import CaseSelection, ImageTask, IngestResult, ingest_batch
from deid.ledger import Ledger
from deid.pipeline import ImageResult, process_image, record_image_result
from deid.progress import BatchProgress
from deid.workers import ImageWorkers, started_ahead, workers_for
from deid.workspace import Workspace, lock_workspace, open_ledger
from flows.common import (
    retry_if_transient,
    retry_transient,
    shared_api_server,
    surface_deid_logs,
    worker_processes_environment,
)

RETRIES = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": retry_if_transient, "cache_policy": NO_CACHE}


class RunParameters(BaseModel):
    """Parameters of a batch run (validated, and shown as a form in the Prefect UI)."""

    input_dir: str = Field(description="folder with cases.csv and images/")
    workspace: str = Field(default="workspace", description="private workspace folder")
    config_path: str | None = Field(default=None, description="deid.toml overlaid on the defaults")
    cluster: str | None = Field(default=None, description="Dask scheduler address, or 'local' for a local cluster")
    only: list[str] = Field(default_factory=list, description="process only these contribution ids")
    since: str | None = Field(default=None, description="process only contributions submitted on or after this date")
    workers: int = Field(default=2, ge=1, le=64, description="worker processes for a local run")


@task(name="load-config", cache_policy=NO_CACHE)
def load_config_task(config_path: str | None) -> Config:
    """Load and validate the configuration (a ConfigError fails the run at once)."""
    return load_config(config_path)


@task(name="ingest", **RETRIES)
def ingest_task(
    input_dir: str, workspace: Workspace, ledger: Ledger, config: Config, selection: CaseSelection
) -> IngestResult:
    """Keep originals, register contributions and images."""
    return ingest_batch(input_dir, workspace, ledger, config, selection=selection)


@task(name="process-image", **RETRIES)
def process_task(image: ImageTask, config: Config, workspace: Workspace) -> ImageResult:
    """Detect, decide, render, encode and verify one image (here, on a Dask worker)."""
    surface_deid_logs()
    return process_image(image, config, workspace)


@task(name="process-image", **RETRIES)
def process_on_workers_task(image: ImageTask, workspace: Workspace, workers: ImageWorkers) -> ImageResult:
    """Detect, decide, render, encode and verify one image on the run's worker processes (waits on a thread)."""
    surface_deid_logs()
    return workers.process(image, workspace)


@task(name="finish-batch", **RETRIES)
def finish_task(
    workspace: Workspace, ledger: Ledger, config: Config, ingest: IngestResult, stages: list[tuple[str, float]]
) -> BatchSummary:
    """Collapse duplicates, write staged cases.csv and manifest.json."""
    return finish_batch(workspace, ledger, config, ingest, stage_seconds=stages)


IN_FLIGHT_PER_WORKER = 3
"""Images submitted ahead per worker: enough to keep each busy, few enough that memory does not grow with the batch."""
CLUSTER_WORKERS = 64
"""Workers assumed for the window on a Dask cluster (its size is not known here)."""


Submit = Callable[[ImageTask], PrefectFuture[ImageResult]]


def _in_window(tasks: Sequence[ImageTask], submit: Submit, *, window: int) -> Iterator[ImageResult]:
    """Results as images finish, with at most ``window`` submitted and not yet collected.

    Submitting a whole batch at once (``map``) keeps every future and its result
    in this process until the batch ends, so its memory grew with the batch
    (about 100 MB per 1,000 images); a window keeps it flat.
    """
    waiting = deque(tasks)
    in_flight: list[PrefectFuture[ImageResult]] = []
    while waiting or in_flight:
        while waiting and len(in_flight) < window:
            in_flight.append(submit(waiting.popleft()))
        finished = next(as_completed(in_flight))  # the first of those in flight to finish
        in_flight.remove(finished)
        yield finished.result()


# Locally, images run on worker processes (not threads contending for the GIL), each loading its
# models once; the task runner's threads only wait for them, one per image in flight.
@flow(name="deidentify", task_runner=ThreadPoolTaskRunner(max_workers=IN_FLIGHT_PER_WORKER * 2), log_prints=True)
def deidentify(params: RunParameters) -> BatchSummary:
    """De-identify one batch of contributions into the workspace's staged folder (one run per workspace)."""
    surface_deid_logs()
    config = load_config_task(params.config_path)
    workspace = Workspace(Path(params.workspace).resolve()).create()
    with lock_workspace(workspace):
        ledger = open_ledger(workspace, config)
        try:
            selection = CaseSelection(frozenset(params.only), params.since)
            ingest = ingest_task(params.input_dir, workspace, ledger, config, selection)
            progress = BatchProgress(total=len(ingest.tasks))
            window = IN_FLIGHT_PER_WORKER * (CLUSTER_WORKERS if params.cluster else max(1, params.workers))
            local = not params.cluster and ingest.tasks  # a rerun with nothing to do starts no worker
            with workers_for(config, processes=params.workers) if local else nullcontext() as workers:
                submit = _submitter(config, workspace, workers)
                for result in _in_window(ingest.tasks, submit, window=window):
                    # A plain call, not a task: a task run per image costs the API server and this process
                    # about 0.15 s of CPU an image; transient ledger errors are retried the same way.
                    retry_transient(lambda result=result: record_image_result(ledger, result), retries=2, delay_s=2)
                    progress.advance(dict(result.stages))
            return finish_task(workspace, ledger, config, ingest, list(progress.stage_seconds.items()))
        finally:
            ledger.close()


def _submitter(config: Config, workspace: Workspace, workers: ImageWorkers | None) -> Submit:
    """How one image is submitted: to the run's worker processes, or (on a cluster) as a task of its own."""
    if workers is not None:
        return lambda image: process_on_workers_task.submit(image, workspace=workspace, workers=workers)
    return lambda image: process_task.submit(image, config=config, workspace=workspace)


def run_batch(
    *,
    input_dir: str,
    workspace: str,
    config_path: str | None = None,
    cluster: str | None = None,
    only: list[str] | None = None,
    since: str | None = None,
    workers: int = 2,
) -> BatchSummary:
    """Run the flow from code or the CLI, on two worker processes or on a Dask cluster."""
    params = RunParameters(
        input_dir=input_dir,
        workspace=workspace,
        config_path=config_path,
        cluster=cluster,
        only=list(only or []),
        since=since,
        workers=workers,
    )
    runnable = deidentify
    if workers != 2:
        runnable = deidentify.with_options(task_runner=ThreadPoolTaskRunner(max_workers=IN_FLIGHT_PER_WORKER * workers))
    if cluster:
        from prefect_dask import DaskTaskRunner

        local = {"cluster_kwargs": {"n_workers": 2, "threads_per_worker": 1, "processes": True}}
        runner = DaskTaskRunner(**local) if cluster == "local" else DaskTaskRunner(address=cluster)
        runnable = deidentify.with_options(task_runner=runner)
    # A local run's workers start first and load their models while Prefect starts (4-5 s of a 13-s start).
    ahead = nullcontext() if cluster else started_ahead(load_config(config_path), processes=workers)
    with worker_processes_environment(), ahead, shared_api_server():
        return runnable(params)
