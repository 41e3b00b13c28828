"""Deployments are declared in code with a schedule and a concurrency limit."""

from __future__ import annotations

import pytest


def test_nightly_batch_is_scheduled_one_at_a_time(clean_environ: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEID_INPUT_DIR", "/data/contributions")
    from flows.deployments import NIGHTLY_CRON, build_deployments

    (nightly,) = build_deployments()
    assert nightly.name == "nightly-batch"
    assert nightly.flow_name == "deidentify"
    assert nightly.schedules[0].schedule.cron == NIGHTLY_CRON
    limit = nightly.concurrency_limit
    assert (limit if isinstance(limit, int) else limit.limit) == 1
    assert nightly.parameters["params"]["input_dir"] == "/data/contributions"
