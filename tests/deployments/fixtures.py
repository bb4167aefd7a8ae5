"""A real Prefect stack for the run and schedule tests: server (scheduler on) and a worker.

Import the fixtures into a test module (``from tests.deployments.fixtures import ...``) and
mark its tests ``xdist_group("prefect_stack")``, so one pytest-xdist worker starts one stack
and every test that needs it runs there. The worker's flow-run processes import the test node
types (``t_sleep`` for slow runs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.flow import EXTRA_NODE_MODULES_ENV
from deployments.stack import PrefectServer, Worker

STACK_GROUP = "prefect_stack"


@dataclass(frozen=True)
class Stack:
    """The running stack: the API URL and the worker process."""

    api_url: str
    server: PrefectServer
    worker: Worker


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Prefect server with its scheduler, the process pool and a worker, for the session."""
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import ensure_web_deployment
    from tests.flows.testnodes import install

    install()  # the API process compiles sources that use the test node types
    home = tmp_path_factory.mktemp("prefect-stack")
    os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
    server = PrefectServer(home / "server", ui=False)
    try:
        server.wait_ready()
        with SyncPrefectClient(api=server.api_url) as client:
            ensure_web_deployment(client)
        worker = Worker(
            server.api_url,
            home / "worker",
            home / "worker.log",
            extra_env={
                EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes",
                "PREFECT_LOGGING_LEVEL": "INFO",
            },
        )
        try:
            worker.wait_ready()
            yield Stack(server.api_url, server, worker)
        finally:
            worker.stop()
    finally:
        server.stop()


def wait_for(
    check: Callable[[], Any], timeout_s: float = 90.0, interval_s: float = 0.5, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what or check}")
        time.sleep(interval_s)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")
