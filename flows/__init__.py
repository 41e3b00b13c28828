"""Prefect flows that wire the deid library into scheduled, resumable batch runs.

deid logs through the standard ``logging`` module; Prefect shows those lines
in a run's logs only when ``deid`` is one of its extra loggers, which must be
set before Prefect configures logging on import.
"""

import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "deid")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
if not os.environ.get("PREFECT_API_URL"):
    # No server configured: each run starts a temporary one, whose own shutdown races (task-run
    # events flushed while its database closes) are logged as errors though every result is saved.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
