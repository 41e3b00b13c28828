"""The worker processes of a local batch: each loads its models once and processes one image at a time.

A local ``deid run`` spreads images over processes, not threads: detection
holds the GIL through long stretches of numpy and OpenCV glue. The workers are
plain processes started by spawning (a fork would copy the running API server
and its threads), and they run deid only: the per-image work and nothing of the
orchestration. Whoever orchestrates (the ``deidentify`` flow, one thread per
image in flight) calls :meth:`ImageWorkers.process`, which blocks until the
image is done and returns the same :class:`~deid.pipeline.ImageResult` that
:func:`~deid.pipeline.process_image` would have returned in-process.

Images go to a worker as an :class:`~deid.ingest.ImageTask` (a path, never
pixels); the configuration is sent once, when a worker starts, and the worker
builds its detectors then, while the first images are being submitted.

The ``deid`` log records a worker makes while processing an image come back
with its result and are handed to this process's loggers, so they reach
whatever this process logs to (the terminal, Prefect's run logs) as if the
image had been processed here. Their messages are formatted in the worker;
like every deid log line they name ledger ids, never contributor data.

A worker that dies (killed, out of memory, a crash in a native library) takes
the images in flight on the pool with it. The pool is then started again and
each of those images is tried once more; an image whose second try dies too is
held with the reason ``worker_died``, so nothing is lost and the rest of the
batch goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from types import TracebackType

from deid.config import Config
from deid.detect import detectors_for
from deid.errors import DeidError
from deid.ingest import ImageTask
from deid.pipeline import ImageResult, process_image
from deid.types import Outcome
from deid.workspace import Workspace

logger = logging.getLogger(__name__)

ATTEMPTS = 2
"""Tries per image when its worker process dies under it (the second on a fresh pool)."""

WORKER_DIED = "worker_died"
"""Reason code of an image held because its worker process died on every try."""

_config: Config | None = None
"""The configuration of the worker process this module runs in (set by :func:`_start_worker`)."""


_Shipped = tuple[ImageResult, list[logging.LogRecord]]
"""What a worker sends back for one image: its result and its log records."""


class _Collected(logging.Handler):
    """Keeps the records of one image, made picklable (message formatted, traceback as text)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        shipped = logging.makeLogRecord(record.__dict__)
        try:
            shipped.msg = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: ship its format string, as logging would show it
            shipped.msg = str(record.msg)
        shipped.args = None
        if record.exc_info:
            shipped.exc_text = logging.Formatter().formatException(record.exc_info)
        shipped.exc_info = None
        self.records.append(shipped)


def _start_worker(config: Config) -> None:
    """Runs once in each worker process as it starts: keep the configuration, build the detectors."""
    global _config
    _config = config
    logging.getLogger("deid").setLevel(logging.INFO)
    try:
        detectors_for(config)
    except DeidError as error:
        # Not fatal here: every image then fails to build them again and is held naming the error.
        logger.warning("worker %d could not build its detectors: %s", os.getpid(), error.code)


def _process_in_worker(task: ImageTask, workspace: Workspace) -> _Shipped:
    """One image in a worker process: its result, and the ``deid`` log records made while processing it."""
    assert _config is not None, "the pool starts every worker with _start_worker"
    collected = _Collected()
    root = logging.getLogger("deid")
    root.addHandler(collected)
    try:
        return process_image(task, _config, workspace), collected.records
    finally:
        root.removeHandler(collected)


class ImageWorkers:
    """A pool of worker processes for one batch run.

    Parameters
    ----------
    config
        The run's configuration (sent to each worker once, when it starts).
    processes
        How many worker processes; one per core is the usual choice.

    Use it as a context manager: the processes start on entry (each begins
    loading its models at once, so a caller may start them before its own
    start-up and have them ready) and stop on exit. :meth:`process` may be
    called from many threads at a time.
    """

    def __init__(self, config: Config, *, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.config = config
        self.processes = processes
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImageWorkers:
        with self._lock:
            self._executor = self._start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.config,),
        )
        # The executor starts a process per submission until it has them all: start every one
        # now, so each loads its models while the first images are on their way.
        for _ in range(self.processes):
            executor.submit(os.getpid)
        return executor

    def _submit(self, task: ImageTask, workspace: Workspace) -> tuple[ProcessPoolExecutor, Future[_Shipped]]:
        with self._lock:
            if self._executor is None:
                raise RuntimeError("ImageWorkers is not started: use it in a with block")
            try:
                return self._executor, self._executor.submit(_process_in_worker, task, workspace)
            except BrokenProcessPool:  # it broke between two images: start again before this one
                self._replace_locked(self._executor)
                return self._executor, self._executor.submit(_process_in_worker, task, workspace)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Start a fresh pool in place of ``broken`` (once, however many threads saw it break)."""
        with self._lock:
            self._replace_locked(broken)

    def _replace_locked(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:
            self._executor = self._start()
        broken.shutdown(wait=False, cancel_futures=True)

    def process(self, task: ImageTask, workspace: Workspace) -> ImageResult:
        """Process one image of ``workspace`` on a worker process and return its result (blocks until done).

        The worker's ``deid`` log records for this image are handled by this
        process's loggers before the result is returned. Never raises for a bad
        image (see :func:`~deid.pipeline.process_image`); an image whose worker
        died on every try comes back held with the reason ``worker_died``.
        """
        for attempt in range(1, ATTEMPTS + 1):
            executor, future = self._submit(task, workspace)
            try:
                result, records = future.result()
            except BrokenProcessPool:
                logger.warning("worker process died while image %s was in flight (try %d)", task.image_id, attempt)
                self._replace(executor)
                continue
            for record in records:
                origin = logging.getLogger(record.name)
                if origin.isEnabledFor(record.levelno):
                    origin.handle(record)
            return result
        logger.error("held image %s: its worker process died on each of %d tries", task.image_id, ATTEMPTS)
        return ImageResult(
            task.image_id, Outcome.held(f"{WORKER_DIED}: the worker process died on each of {ATTEMPTS} tries")
        )


_ahead: list[ImageWorkers] = []
_ahead_lock = threading.Lock()


@contextmanager
def started_ahead(config: Config, *, processes: int) -> Iterator[ImageWorkers]:
    """Start workers now for a run that begins later in this block, in this process.

    They load their models meanwhile (``deid run`` starts them before Prefect
    starts up); :func:`workers_for` hands them to the run. They stop when the
    block ends, whether or not a run took them.
    """
    with ImageWorkers(config, processes=processes) as workers:
        with _ahead_lock:
            _ahead.append(workers)
        try:
            yield workers
        finally:
            with _ahead_lock:
                if workers in _ahead:
                    _ahead.remove(workers)


@contextmanager
def workers_for(config: Config, *, processes: int) -> Iterator[ImageWorkers]:
    """Workers for one run: those started ahead for this configuration and size, else new ones for the block."""
    with _ahead_lock:
        ready = next((w for w in _ahead if (w.config, w.processes) == (config, processes)), None)
        if ready is not None:
            _ahead.remove(ready)  # one run each; started_ahead stops them
    if ready is not None:
        yield ready
        return
    with ImageWorkers(config, processes=processes) as workers:
        yield workers
