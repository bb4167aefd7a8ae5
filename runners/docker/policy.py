"""SECURITY.md's sandbox table as container settings, and the check that they really took.

:func:`create_kwargs` turns an execution's :class:`~runners.custom.Limits` into the Docker SDK's
``containers.create`` arguments: no network (``--network none`` and networking disabled: an
empty network namespace, loopback only), read-only root, ``/tmp`` a small noexec/nosuid
tmpfs, ``/job`` read-only and ``/out`` the one writable bind mount, a non-root user, every
capability dropped, ``no-new-privileges``, the default seccomp profile, private namespaces, the
memory (swap equal) / CPU / pids limits, file-size and open-file ulimits, a bounded log driver, an
environment allow-list and the labels the sweeper and ``cancel`` use.

:func:`policy_violations` reads a container's ``docker inspect`` back and lists every setting that
differs from the policy: the runner refuses to start a container with any difference, and the
start-up self-test reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import LogConfig, Mount, Ulimit

from runners.custom import Limits

__all__ = [
    "ENV_ALLOW_LIST",
    "SANDBOX_USER",
    "ContainerPlan",
    "create_kwargs",
    "policy_violations",
]

SANDBOX_USER = "10001:10001"
LABEL_PREFIX = "alphaforge."
# The only variables a sandbox sees (Docker adds HOSTNAME, the container id). Never credentials.
ENV_ALLOW_LIST: dict[str, str] = {
    "PATH": "/usr/local/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_ENV_NAMES = frozenset(ENV_ALLOW_LIST) | {"HOSTNAME"}
_TMPFS_OPTS = "rw,noexec,nosuid,nodev,size={mb}m,mode=1777"
_OPEN_FILES = 256


@dataclass(frozen=True)
class ContainerPlan:
    """Everything :func:`create_kwargs` needs for one execution."""

    image: str
    command: list[str]
    job_dir: str
    out_dir: str
    limits: Limits
    labels: dict[str, str]


def create_kwargs(plan: ContainerPlan) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` enforcing the policy."""
    lim = plan.limits
    mem = lim.memory_mb << 20
    return {
        "image": plan.image,
        "command": plan.command,
        "user": SANDBOX_USER,
        "working_dir": "/tmp",
        "environment": dict(ENV_ALLOW_LIST),
        "labels": dict(plan.labels),
        "network_mode": "none",
        # No network namespace managed by the engine at all: the container gets an empty one
        # (loopback only) and the start skips libnetwork's sandbox set-up hook (~0.1-0.2 s).
        "network_disabled": True,
        "read_only": True,
        "privileged": False,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "ipc_mode": "none",
        "cgroupns": "private",
        "tmpfs": {"/tmp": _TMPFS_OPTS.format(mb=lim.tmp_mb)},
        "mounts": [
            Mount(target="/job", source=plan.job_dir, type="bind", read_only=True),
            Mount(target="/out", source=plan.out_dir, type="bind", read_only=False),
        ],
        "mem_limit": mem,
        "memswap_limit": mem,
        "nano_cpus": int(lim.cpus * 1e9),
        "pids_limit": lim.pids,
        "oom_score_adj": 500,
        "ulimits": [
            Ulimit(name="fsize", soft=lim.output_bytes, hard=lim.output_bytes),
            Ulimit(name="nofile", soft=_OPEN_FILES, hard=_OPEN_FILES),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "log_config": LogConfig(
            type="json-file", config={"max-size": str(2 * lim.log_bytes), "max-file": "1"}
        ),
        "stdin_open": False,
        "tty": False,
    }


def _mount_violations(mounts: list[dict[str, Any]]) -> list[str]:
    bad: list[str] = []
    seen = {m.get("Destination"): m for m in mounts}
    if set(seen) != {"/job", "/out"}:
        bad.append(f"mounts are {sorted(map(str, seen))}, expected only /job and /out")
    if "/job" in seen and seen["/job"].get("RW"):
        bad.append("/job is writable")
    for m in mounts:
        if "docker.sock" in str(m.get("Source", "")):
            bad.append("the Docker socket is mounted")
    return bad


def _host_violations(hc: dict[str, Any], lim: Limits) -> list[str]:
    mem = lim.memory_mb << 20
    expect: dict[str, Any] = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Privileged": False,
        "Memory": mem,
        "MemorySwap": mem,
        "NanoCpus": int(lim.cpus * 1e9),
        "PidsLimit": lim.pids,
        "PidMode": "",
        "UTSMode": "",
        "UsernsMode": "",
        "IpcMode": "none",
        "CgroupnsMode": "private",
    }
    bad = [f"{k} is {hc.get(k)!r}, policy {v!r}" for k, v in expect.items() if hc.get(k) != v]
    if "ALL" not in (hc.get("CapDrop") or []):
        bad.append(f"CapDrop is {hc.get('CapDrop')!r}, policy ['ALL']")
    if hc.get("CapAdd"):
        bad.append(f"CapAdd is {hc.get('CapAdd')!r}, policy none")
    sec = hc.get("SecurityOpt") or []
    if not any(s.startswith("no-new-privileges") for s in sec):
        bad.append("no-new-privileges is not set")
    if any("unconfined" in s for s in sec):
        bad.append(f"a security profile is unconfined: {sec}")
    if hc.get("Devices"):
        bad.append(f"devices are mapped: {hc.get('Devices')}")
    tmp = (hc.get("Tmpfs") or {}).get("/tmp", "")
    if not {"noexec", "nosuid"} <= set(tmp.split(",")):
        bad.append(f"/tmp tmpfs options are {tmp!r}, policy noexec,nosuid")
    ulimits = {u.get("Name"): u.get("Hard") for u in hc.get("Ulimits") or []}
    if ulimits.get("fsize") != lim.output_bytes:
        bad.append(f"fsize ulimit is {ulimits.get('fsize')!r}, policy {lim.output_bytes}")
    return bad


def policy_violations(attrs: dict[str, Any], limits: Limits) -> list[str]:
    """Every difference between a container's ``docker inspect`` and the policy (empty: ok)."""
    hc = attrs.get("HostConfig") or {}
    config = attrs.get("Config") or {}
    bad = _host_violations(hc, limits)
    if config.get("NetworkDisabled") is not True:
        bad.append("NetworkDisabled is not set (the engine would attach a network sandbox)")
    user = str(config.get("User") or "")
    if user.split(":")[0] in ("", "0", "root"):
        bad.append(f"runs as user {user or 'root'!r}, policy {SANDBOX_USER}")
    names = {e.split("=", 1)[0] for e in config.get("Env") or []}
    if names - _ENV_NAMES:
        bad.append(f"environment variables outside the allow-list: {sorted(names - _ENV_NAMES)}")
    bad.extend(_mount_violations(attrs.get("Mounts") or []))
    return bad
