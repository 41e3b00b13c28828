"""Decorator settings shared by every flow: what is retried and how logs reach Prefect."""

from __future__ import annotations

import logging
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
