"""The flows' shared helpers: only transient faults are retried, bad input never."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deid.errors import InputError, TransientError
from deid.heap import HUGE_PAGES_TUNABLE, huge_pages_active
from flows.common import retry_transient, worker_processes_environment


def test_a_transient_fault_is_retried_until_it_passes() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("database is busy")
        return "recorded"

    assert retry_transient(flaky, retries=2, delay_s=0) == "recorded"
    assert len(calls) == 3


def test_a_transient_fault_that_persists_is_raised_after_the_retries() -> None:
    calls: list[int] = []

    def busy() -> None:
        calls.append(1)
        raise TransientError("database is busy")

    with pytest.raises(TransientError):
        retry_transient(busy, retries=2, delay_s=0)
    assert len(calls) == 3


def test_bad_input_is_never_retried() -> None:
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise InputError("unreadable row")

    with pytest.raises(InputError):
        retry_transient(bad, retries=2, delay_s=0)
    assert calls == [1]


def _started_with_huge_pages() -> bool:
    return huge_pages_active()


def test_worker_processes_started_by_a_run_get_huge_pages_and_the_environment_is_restored() -> None:
    before = os.environ.get("GLIBC_TUNABLES")
    with worker_processes_environment():
        assert HUGE_PAGES_TUNABLE in os.environ["GLIBC_TUNABLES"]
        # deid.workers.ImageWorkers starts its workers by spawning, as here.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            seen = pool.apply(_started_with_huge_pages)
    assert os.environ.get("GLIBC_TUNABLES") == before
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[never]" not in thp.read_text():
        assert seen, "a worker spawned inside the block did not start with huge pages"


_SERVER_PROBE = textwrap.dedent(
    """
    import os
    import time
    import httpx
    import psutil
    from prefect import flow, get_run_logger, task
    from prefect.client.orchestration import get_client
    from prefect.server.services.perpetual_services import get_enabled_perpetual_services
    from prefect.task_runners import ProcessPoolTaskRunner
    from flows.common import shared_api_server

    @task
    def square(x: int) -> int:
        get_run_logger().info("worker pid %d squared", os.getpid())
        return x * x

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def squares() -> int:
        return square.submit(7).result()

    if __name__ == "__main__":
        with shared_api_server():
            url = os.environ["PREFECT_API_URL"]
            healthy = httpx.get(url + "/health").status_code
            result = squares()
            servers = [
                child.pid
                for child in psutil.Process().children(recursive=True)
                if "uvicorn" in " ".join(child.cmdline())
            ]
            # The worker's log lines reach the API in batches (every two seconds or so).
            reported, deadline = False, time.monotonic() + 20
            with get_client(sync_client=True) as client:
                while not reported and time.monotonic() < deadline:
                    logs = [entry.message for entry in client.read_logs(limit=200, offset=0)]
                    reported = any(
                        message.startswith("worker pid") and f"pid {os.getpid()} " not in message for message in logs
                    )
                    time.sleep(0.2)
            services = [config.function.__name__ for config in get_enabled_perpetual_services(ephemeral=True)]
        print(",".join(services) or "-")
        print(healthy, result, len(servers), reported)
        print(os.environ.get("PREFECT_API_URL"))
        try:
            httpx.get(url + "/health", timeout=2)
            print("still serving")
        except httpx.HTTPError:
            print("stopped")
    """
)


def test_the_shared_api_runs_in_this_process_serves_the_worker_processes_and_stops(tmp_path: Path) -> None:
    """One API for the run, on a thread here: no second interpreter, a worker's log line reaches it, gone after.

    And it runs no service that only keeps history or phones home, so a new Prefect home starts quietly.
    """
    probe = tmp_path / "probe.py"
    probe.write_text(_SERVER_PROBE, "utf-8")
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": str(root), "PREFECT_HOME": str(tmp_path / "prefect")}
    environment.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, str(probe)], env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    services, first, url, after = done.stdout.strip().splitlines()[-4:]
    # Prefect's telemetry heartbeat phones home (no network at run time) and, on a new Prefect
    # home, wrote to the database while it migrated: a "database is locked" traceback in make demo.
    assert "send_telemetry_heartbeat" not in services.split(","), services
    assert "Traceback" not in done.stderr and "database is locked" not in done.stderr, done.stderr[-3000:]
    healthy, result, servers, reported = first.split()
    assert (healthy, result) == ("200", "49")
    assert servers == "0", "Prefect started a server process of its own beside the shared one"
    assert reported == "True", "the worker process's log line did not reach the shared API"
    assert url == "None", "the API address outlived the block"
    assert after == "stopped"
