# ruff: noqa: F811  (pytest fixtures imported from the hostile suite are parameters here)
"""The policy read-back: a container missing any control is detected and never started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import runners.docker.engine as engine_mod
from runners.custom import Limits
from runners.docker import SandboxImages, create_kwargs, policy_violations
from runners.docker.policy import ContainerPlan
from tests.hostile.conftest import Sandbox, sandbox  # noqa: F401

pytestmark = pytest.mark.docker

LIMITS = Limits.default()


def _plan(tmp_path: Path) -> ContainerPlan:
    (tmp_path / "job").mkdir()
    (tmp_path / "out").mkdir()
    return ContainerPlan(
        image=SandboxImages().python,
        command=["/usr/local/bin/python3", "-c", "pass"],
        job_dir=str(tmp_path / "job"),
        out_dir=str(tmp_path / "out"),
        limits=LIMITS,
        # not ``alphaforge.sandbox=1``: a sweeper of a test running beside this one would take
        # this never-started, owner-less container for an orphan and remove it under us
        labels={"alphaforge.policy-test": "1", "alphaforge.run_id": "policy-test"},
    )


def _violations(client: Any, kwargs: dict[str, Any]) -> list[str]:
    container = client.containers.create(**kwargs)
    try:
        return policy_violations(container.attrs, LIMITS)
    finally:
        container.remove(force=True)


def test_the_policy_container_has_no_violations(
    docker_engine: Any,
    tmp_path: Path,
) -> None:
    assert _violations(docker_engine, create_kwargs(_plan(tmp_path))) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"read_only": False}, "ReadonlyRootfs"),
        ({"network_mode": "bridge"}, "NetworkMode"),
        ({"network_disabled": False}, "NetworkDisabled"),
        ({"cap_drop": None}, "CapDrop"),
        ({"cap_add": ["NET_ADMIN"]}, "CapAdd"),
        ({"security_opt": []}, "no-new-privileges"),
        ({"security_opt": ["no-new-privileges", "seccomp=unconfined"]}, "unconfined"),
        ({"privileged": True}, "Privileged"),
        ({"user": "0:0"}, "user"),
        ({"pids_limit": None}, "PidsLimit"),
        ({"memswap_limit": -1}, "MemorySwap"),
        ({"pid_mode": "host"}, "PidMode"),
        ({"environment": {"DATABASE_URL": "postgres://x"}}, "DATABASE_URL"),
        ({"tmpfs": {"/tmp": "rw,size=16m"}}, "noexec"),
    ],
)
def test_a_missing_control_is_detected(
    docker_engine: Any,
    tmp_path: Path,
    change: dict[str, Any],
    expected: str,
) -> None:
    kwargs = {**create_kwargs(_plan(tmp_path)), **change}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    found = _violations(docker_engine, kwargs)
    assert any(expected in v for v in found), found


def test_the_docker_socket_mount_is_detected(docker_engine: Any, tmp_path: Path) -> None:
    from docker.types import Mount

    kwargs = create_kwargs(_plan(tmp_path))
    kwargs["mounts"] = [
        *kwargs["mounts"],
        Mount(target="/var/run/docker.sock", source="/var/run/docker.sock", type="bind"),
    ]
    found = _violations(docker_engine, kwargs)
    assert any("Docker socket" in v for v in found), found


def test_engine_never_starts_a_container_that_differs_from_the_policy(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The self-test (once per process) must have passed with the real settings first: run
    # under the patch it would fail and leave this worker refusing user code for later tests.
    assert sandbox.honest().result.ok
    real = engine_mod.create_kwargs
    monkeypatch.setattr(
        engine_mod, "create_kwargs", lambda plan: {**real(plan), "read_only": False}
    )
    code = "def run(inputs, params):\n    open('/out/ran', 'w').write('x')\n    return {}\n"
    out = sandbox.run("python", code)
    assert out.result.error_kind == "SANDBOX_VIOLATION"
    assert "ReadonlyRootfs" in out.result.error
