"""The local batch's worker processes: same results as in-process, logs come home, a dead worker loses nothing."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from deid.config import Config, load_config
from deid.ingest import ImageTask, ingest_batch
from deid.pipeline import process_image
from deid.types import Status
from deid.workers import WORKER_DIED, ImageWorkers, started_ahead, workers_for
from deid.workspace import Workspace, open_ledger
from tests.sample_batches import sample_subset

FACES_ONLY = Path(__file__).with_name("policies") / "faces_only.toml"
CHOSEN = ("c02", "c06", "c14")  # a face to redact, a corrupt file with a plain rash, two views


def _batch(root: Path, config: Config) -> tuple[Workspace, list[ImageTask]]:
    workspace = Workspace(root / "ws").create()
    ledger = open_ledger(workspace, config)
    try:
        ingest = ingest_batch(sample_subset(root / "batch", CHOSEN), workspace, ledger, config)
    finally:
        ledger.close()
    return workspace, list(ingest.tasks)


def _workers_of(parent: psutil.Process) -> list[psutil.Process]:
    return [child for child in parent.children() if "--multiprocessing-fork" in " ".join(child.cmdline())]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(FACES_ONLY)


def test_images_processed_on_worker_processes_match_in_process_results_and_their_logs_come_home(
    tmp_path: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    workspace, tasks = _batch(tmp_path / "workers", config)
    here_workspace, here_tasks = _batch(tmp_path / "here", config)
    with caplog.at_level(logging.INFO, logger="deid"), ImageWorkers(config, processes=2) as workers:
        with ThreadPoolExecutor(4) as threads:
            results = list(threads.map(lambda task: workers.process(task, workspace), tasks))
        worker_pids = {child.pid for child in _workers_of(psutil.Process())}
        lines = [record for record in caplog.records if record.getMessage().startswith("processed image")]
    expected = [process_image(task, config, here_workspace) for task in here_tasks]
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    for got, want in zip(results, expected, strict=True):
        assert (got.status, got.output_sha256, got.regions) == (want.status, want.output_sha256, want.regions)
    assert {result.status for result in results} >= {Status.OK, Status.HELD}, "the corrupt file is held"
    assert {record.getMessage().split()[2] for record in lines} >= {task.image_id for task in tasks}, (
        "every worker's 'processed image' line reached this process's loggers"
    )
    assert all(record.process in worker_pids for record in lines), "those lines were made in the workers"
    assert not _workers_of(psutil.Process()), "the worker processes stop with the block"


def _kill_workers_while(stop: threading.Event, parent: psutil.Process) -> None:
    while not stop.is_set():
        for child in _workers_of(parent):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.02)


def test_an_image_whose_worker_keeps_dying_is_held_and_the_next_one_is_processed(
    tmp_path: Path, config: Config
) -> None:
    workspace, tasks = _batch(tmp_path, config)
    face = next(task for task in tasks if task.original_name == "c02_astronaut.jpg")
    with ImageWorkers(config, processes=1) as workers:
        stop = threading.Event()
        killer = threading.Thread(target=_kill_workers_while, args=(stop, psutil.Process()), daemon=True)
        killer.start()
        try:
            doomed = workers.process(face, workspace)
        finally:
            stop.set()
            killer.join()
        after = workers.process(face, workspace)
    assert doomed.status is Status.HELD and doomed.reasons[0].startswith(WORKER_DIED), "never lost, never released"
    assert doomed.output_sha256 is None, "nothing was staged for it"
    assert after.status is Status.OK and after.output_sha256, "a fresh worker processes the next image"


def test_an_image_in_flight_when_its_worker_is_killed_once_is_processed_again(tmp_path: Path, config: Config) -> None:
    workspace, tasks = _batch(tmp_path, config)
    face = next(task for task in tasks if task.original_name == "c02_astronaut.jpg")
    with ImageWorkers(config, processes=1) as workers:
        (worker,) = _workers_of(psutil.Process())
        pending = ThreadPoolExecutor(1).submit(workers.process, face, workspace)
        time.sleep(0.5)  # the worker is loading its models or processing the image
        worker.kill()
        result = pending.result(timeout=300)
    assert result.status is Status.OK and result.output_sha256, "the second try on a fresh worker succeeded"


def test_workers_started_ahead_serve_one_run_of_their_configuration_and_stop_with_their_block(
    tmp_path: Path, config: Config
) -> None:
    workspace, tasks = _batch(tmp_path, config)
    with started_ahead(config, processes=1) as ahead:
        (early,) = _workers_of(psutil.Process())
        with workers_for(config, processes=1) as taken:
            assert taken is ahead, "the run takes the workers started for it"
            assert taken.process(tasks[0], workspace).image_id == tasks[0].image_id
        with workers_for(config, processes=1) as second:
            assert second is not ahead, "workers started ahead serve one run only"
        with workers_for(load_config(), processes=1) as other:
            assert other is not ahead, "a run with another configuration starts its own"
        assert early.is_running(), "the block, not the run, stops them"
    assert not _workers_of(psutil.Process())
