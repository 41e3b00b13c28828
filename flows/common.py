"""Decorator settings shared by every flow: what is retried and how logs reach Prefect."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from deid.environment import environment_set
from deid.errors import TransientError, is_transient
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
def worker_processes_environment() -> Iterator[None]:
    """Worker processes started inside this block get :func:`deid.heap.worker_environment` (read at their start)."""
    with environment_set(worker_environment(os.environ)):
        yield


# A temporary API is thrown away with the run: nobody reads its event history or task-run
# records, and it has no automations, so its event persister, task-run recorder and triggers
# are off (once really off, no change in a 40-image run's wall time could be measured). Its
# telemetry heartbeat would send a message to Prefect's servers (deid uses no network at run
# time) and, on a new Prefect home, wrote to the database while it was migrating ("database is
# locked" tracebacks in make demo). Set through _prefect_settings_everywhere: the server's
# threads do not read the environment.
_UNNEEDED_SERVICES = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}


class _ThreadedApiServer:
    """Prefect's ephemeral API served by uvicorn on a thread of this process.

    Prefect's own ``SubprocessASGIServer`` starts a second interpreter that
    imports Prefect again: about 260 MB and 4 s of CPU for a server that
    answers a few requests an image. In a thread it shares this process's
    imports (about 70 MB more here) and its start-up; the orchestrating
    process is otherwise idle while the workers run, so the GIL is not contended.
    """

    def __init__(self) -> None:
        import uvicorn
        from prefect.server.api.server import create_app

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}/api"
        app = create_app(ephemeral=True, final=True, ignore_cache=True)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="prefect-api", daemon=True
        )

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Serve, and return once the API answers (migrations done); raise when it cannot start."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise TransientError(
                    "the run's temporary Prefect API did not start (see the log above)",
                    hint="run again; or set PREFECT_API_URL to a Prefect server",
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Finish the requests in flight and stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@contextmanager
def _prefect_settings_everywhere(values: Mapping[str, str]) -> Iterator[None]:
    """Prefect settings (``PREFECT_*`` names) for this process, every thread of it, and the processes it starts.

    Children read the environment. This process read its settings when it
    imported Prefect, and Prefect's background threads (events, logs, the task
    runner's message forwarding, the API server's services) read the
    process-global settings context, not the calling thread's, so that global is
    replaced for the block, as Prefect's own test harness does (a private helper
    of the pinned Prefect 3.8).
    """
    import prefect.settings
    from prefect.context import SettingsContext, _temporary_global_settings_context

    updates = {getattr(prefect.settings, name): value for name, value in values.items()}
    with environment_set(values), prefect.settings.temporary_settings(updates):
        context = SettingsContext.get()
        assert context is not None  # temporary_settings just entered one
        with _temporary_global_settings_context(context):
            yield


@contextmanager
def shared_api_server() -> Iterator[None]:
    """One temporary Prefect API for this process and the processes it starts, when none is configured.

    Without it each process that runs Prefect tasks (a local Dask cluster's
    workers; deid's own image workers never talk to Prefect) would start a temporary
    server of its own (about ten seconds each, and SQLite lock errors on the
    shared Prefect database). The server is Prefect's own ephemeral app, served on
    a thread of this process (:class:`_ThreadedApiServer`), without the services
    that only keep history or phone home (``_UNNEEDED_SERVICES``). A configured
    API (a scheduled run's server) is used as it is.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield
        return
    with _prefect_settings_everywhere(_UNNEEDED_SERVICES):
        server = _ThreadedApiServer()
        server.start()
        try:
            with _prefect_settings_everywhere({"PREFECT_API_URL": server.api_url}):
                yield
        finally:
            from prefect.logging.handlers import APILogHandler

            APILogHandler().flush()  # the run's last log lines reach the server before it stops
            server.stop()
