"""Every deployment of deid, declared in code; only top-level flows are deployed.

``python -m flows.deployments`` serves them from this process (a Prefect
server or Prefect Cloud must be configured with ``PREFECT_API_URL``). Paths
come from the environment so one file serves every site; secrets never go in
parameters.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.deidentify import RunParameters, deidentify

NIGHTLY_CRON = "0 2 * * *"


def build_deployments() -> list[RunnerDeployment]:
    """The scheduled batch run: nightly, one at a time (a second run waits rather than racing the first)."""
    params = RunParameters(
        input_dir=os.environ.get("DEID_INPUT_DIR", "contributions"),
        workspace=os.environ.get("DEID_WORKSPACE", "workspace"),
        config_path=os.environ.get("DEID_CONFIG") or None,
        cluster=os.environ.get("DEID_DASK_ADDRESS") or None,
    )
    nightly = deidentify.to_deployment(
        name="nightly-batch",
        cron=NIGHTLY_CRON,
        parameters={"params": params.model_dump()},
        concurrency_limit=1,
        tags=["deid", "batch"],
        description="De-identify the contributions that arrived since the last run.",
    )
    return [nightly]


if __name__ == "__main__":  # pragma: no cover - long-running server process
    serve(*build_deployments())
