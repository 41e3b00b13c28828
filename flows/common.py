"""Decorator settings shared by every flow: what is retried and how logs reach Prefect."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from deid.errors import is_transient
from deid.heap import worker_environment

T = TypeVar("T")


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only :class:`~deid.errors.TransientError`; bad input never."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


def retry_transient(call: Callable[[], T], *, retries: int, delay_s: float) -> T:
    """Run ``call``, again after ``delay_s`` on a :class:`~deid.errors.TransientError` (``retries`` times)."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as error:
            if attempt == retries or not is_transient(error):
                raise
            time.sleep(delay_s)
    raise AssertionError("unreachable")


def surface_deid_logs() -> None:
    """Let INFO lines from the ``deid`` logger reach the run logs (the extra logger's level must be set too)."""
    logging.getLogger("deid").setLevel(logging.INFO)


@contextmanager
def _exported(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for processes started inside the block; restore them after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def worker_processes_environment() -> Iterator[None]:
    """Worker processes started inside this block get :func:`deid.heap.worker_environment` (read at their start)."""
    with _exported(worker_environment(os.environ)):
        yield


# A temporary API is thrown away with the run: nobody reads its event history or task-run
# records, and it has no automations. Its event persister, task-run recorder and triggers cost
# the server about 0.15 s of CPU an image (benchmarks/throughput.py), CPU the two workers need.
_UNNEEDED_SERVICES = {
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}


@contextmanager
def shared_api_server() -> Iterator[None]:
    """One temporary Prefect API for this process and its worker processes, when none is configured.

    Without it each worker process of a process pool would start a temporary
    server of its own (about ten seconds each, and SQLite lock errors on the
    shared Prefect database). The server is Prefect's own ephemeral one, without the
    services that only keep history (``_UNNEEDED_SERVICES``); its address is exported so
    child processes inherit it. A configured API (a scheduled run's server) is used as it is.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield
        return
    server = SubprocessASGIServer()
    with _exported(_UNNEEDED_SERVICES):  # the server process copies the environment when it starts
        server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # the run's last log lines reach the server before it stops
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
