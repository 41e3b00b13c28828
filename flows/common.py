"""Decorator settings shared by every flow: what is retried and how logs reach Prefect."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deid.errors import is_transient


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only :class:`~deid.errors.TransientError`; bad input never."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


def surface_deid_logs() -> None:
    """Let INFO lines from the ``deid`` logger reach the run logs (the extra logger's level must be set too)."""
    logging.getLogger("deid").setLevel(logging.INFO)


@contextmanager
def shared_api_server() -> Iterator[None]:
    """One temporary Prefect API for this process and its worker processes, when none is configured.

    Without it each worker process of a process pool would start a temporary
    server of its own (about ten seconds each, and SQLite lock errors on the
    shared Prefect database). The server is Prefect's own ephemeral one; its
    address is exported so child processes inherit it.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield
        return
    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # the run's last log lines reach the server before it stops
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
