"""Helpers of the run and schedule tests: the running stack's type, polling, process checks.

The ``prefect_stack`` fixture itself (the session's Prefect server, the web deployment and a
process worker) is in ``tests/conftest.py``: use it as a parameter, never import it (an imported
fixture is a new fixture of the importing module: one more server). Mark the tests that use it
``xdist_group(STACK_GROUP)``, so one pytest-xdist worker starts the worker and runs them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from deployments.stack import PrefectServer, Worker

STACK_GROUP = "prefect_stack"


@dataclass(frozen=True)
class Stack:
    """The running stack: the API URL, the server and the worker process."""

    api_url: str
    server: PrefectServer
    worker: Worker


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


def remove_automations(api_url: str) -> None:
    """Delete the automations ``register_all`` creates (``alphaforge deploy``, ``serve``) from a
    shared server: a crashed-runs automation left there would start crash reports for later
    tests' deliberately killed runs."""
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import CRASHED_AUTOMATION, LONG_RUN_AUTOMATION

    with SyncPrefectClient(api=api_url) as client:
        for name in (CRASHED_AUTOMATION, LONG_RUN_AUTOMATION):
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)
