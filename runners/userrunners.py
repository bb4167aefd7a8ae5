"""The user-code runners of this process: one per (run id, custom-nodes store).

A run's containers carry its run id (so ``cancel`` finds them), and the sandbox self-test runs
once per process (``DockerRunner`` caches it): every sandboxed node of a run shares one runner,
created on first use and released when the run ends.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from runners.nodestore import ManifestStore

if TYPE_CHECKING:
    from runners.docker.runner import DockerRunner
    from runners.sandboxed import SandboxedRunner

    UserRunner = DockerRunner | SandboxedRunner

__all__ = ["cancel_user_runners", "release_user_runners", "shared_user_runner"]

_USER_RUNNERS: dict[tuple[str, str, str], UserRunner] = {}
_USER_RUNNERS_LOCK = threading.Lock()


def shared_user_runner(
    run_id: str, custom_nodes_dir: str | Path, choice: str = "auto"
) -> UserRunner:
    """This process's user-code runner for ``run_id`` (created on first use: Docker, or the
    process runner if the operator enabled it; raises ``SandboxUnavailable``).

    ``choice`` is the run spec's: ``docker`` never falls back to the process runner;
    ``process`` is refused unless the operator enabled it (a spec cannot enable it).
    """
    from runners.docker.runner import SandboxUnavailable, user_code_runner
    from runners.process import process_runner, process_runner_enabled

    if choice == "process" and not process_runner_enabled():
        raise SandboxUnavailable(
            "the run asks for the process runner, which the operator has not enabled "
            "(ALPHAFORGE_ALLOW_PROCESS_RUNNER=1)"
        )
    key = (run_id, str(custom_nodes_dir), choice)
    with _USER_RUNNERS_LOCK:
        runner = _USER_RUNNERS.get(key)
        if runner is None:
            catalog = ManifestStore(Path(custom_nodes_dir)).catalog()
            if choice == "process":
                runner = process_runner(catalog, run_id=run_id)
            else:
                runner = user_code_runner(catalog, run_id=run_id, allow_process=choice == "auto")
            _USER_RUNNERS[key] = runner
        return runner


def _runners_of(run_id: str) -> list[UserRunner]:
    with _USER_RUNNERS_LOCK:
        return [r for (rid, _, _), r in _USER_RUNNERS.items() if rid == run_id]


def cancel_user_runners(run_id: str) -> int:
    """Stop this process's sandbox executions of ``run_id`` (no new container starts for it);
    returns how many containers were killed. Other processes: ``kill_run_containers``."""
    killed = 0
    for runner in _runners_of(run_id):
        cancel = getattr(runner, "cancel", None)
        if cancel is not None:
            killed += int(cancel(run_id))
    return killed


def release_user_runners(run_id: str) -> None:
    """Forget (and close) the runners of a finished run."""
    with _USER_RUNNERS_LOCK:
        keys = [k for k in _USER_RUNNERS if k[0] == run_id]
        runners = [_USER_RUNNERS.pop(k) for k in keys]
    for runner in runners:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
