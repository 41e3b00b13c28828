"""The ``release`` flow: the gate, with an optional named approval, and the card as a Prefect artifact.

Steps: load config -> (with ``require_approval``) pause until a named approver
confirms on a typed form -> run the gate (:func:`deid.release.build_release`)
-> publish the card's Markdown as an artifact. A refusal fails the run with
every reason (it is the gate doing its job, so it is never retried).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, pause_flow_run, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from pydantic import BaseModel, Field

from deid.config import load_config
from deid.errors import ReleaseBlocked
from deid.release import ReleaseReport, build_release
from deid.workspace import Workspace, open_ledger
from flows.common import surface_deid_logs


class ReleaseParameters(BaseModel):
    """Parameters of a release run (validated, and shown as a form in the Prefect UI)."""

    workspace: str = Field(default="workspace", description="private workspace folder")
    out: str = Field(description="release folder to create (must not exist)")
    version: str = Field(description="release version X.Y.Z")
    leave_pending_out: bool = Field(default=False, description="leave items waiting for review out (counted)")
    require_approval: bool = Field(default=False, description="pause until a named approver confirms")
    config_path: str | None = Field(default=None, description="deid.toml overlaid on the defaults")
    approval_timeout_s: int = Field(default=24 * 3600, ge=1, description="how long to wait for the approver")


class ReleaseApproval(RunInput):
    """What the approver fills in to resume a paused release."""

    approver: str = Field(description="your name, recorded in the release manifest")
    approve: bool = Field(default=False, description="tick to publish this release")


@task(cache_policy=NO_CACHE)
def run_gate(parameters: ReleaseParameters, approver: str | None) -> ReleaseReport:
    """One call into deid: build, check and publish (or raise ReleaseBlocked)."""
    config = load_config(parameters.config_path)
    workspace = Workspace(Path(parameters.workspace))
    ledger = open_ledger(workspace, config)
    try:
        return build_release(
            workspace,
            ledger,
            config,
            out=parameters.out,
            version=parameters.version,
            leave_pending_out=parameters.leave_pending_out,
            approver=approver,
        )
    finally:
        ledger.close()


@flow(name="release")
def release(parameters: ReleaseParameters) -> dict[str, object]:
    """Publish a release through the gate; return its counts."""
    surface_deid_logs()
    approver: str | None = None
    if parameters.require_approval:
        answer = pause_flow_run(
            wait_for_input=ReleaseApproval.with_initial_data(
                description=(
                    f"Approve release **{parameters.version}** of `{parameters.workspace}` into `{parameters.out}`?"
                ),
                approver="",
            ),
            timeout=parameters.approval_timeout_s,
        )
        if not answer.approve or not answer.approver.strip():
            raise ReleaseBlocked([f"approval: release {parameters.version} was not approved by a named approver"])
        approver = answer.approver.strip()
    report = run_gate(parameters, approver)
    create_markdown_artifact(markdown=report.card_markdown, key="release-card", description=f"release {report.version}")
    return {"version": report.version, "out": str(report.out), "cases": report.cases, "images": report.images}
