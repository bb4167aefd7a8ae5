"""The start-up self-test: canaries that prove the sandbox's controls are really in force.

Before a worker accepts user code it runs, through the very path user code takes:

- ``identity``: reads ``/proc/self/status`` inside the sandbox: uid not 0, no effective
  capabilities, ``NoNewPrivs`` set, a seccomp filter in force;
- ``network``: a connection by IP, one by name and a DNS lookup must all fail;
- ``write``: writes to ``/``, ``/etc``, ``/usr``, ``/opt/alphaforge`` and ``/job`` must all fail;
- ``fork_bomb``: must end as ``PIDS_LIMIT``;
- ``memory``: touching 1 GiB must end as ``MEMORY_LIMIT``.

Every execution also reads the container's settings back (``docker inspect``) and refuses to
start on any difference from the policy, so the canaries' containers were checked too.
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dsl.ir import NodeIR
from nodes.base import PortType
from runners.custom import CustomNodeManifest, ManifestCatalog, ManifestPort
from runners.io import read_value
from runners.sandboxed import Executor, SandboxedRunner

__all__ = ["CANARIES", "SelfTestReport", "run_self_test", "self_test_line"]

_IDENTITY = """
def run(inputs, params):
    lines = open("/proc/self/status").read().splitlines()
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    import os
    return {"report": {
        "uid": os.getuid(),
        "cap_eff": int(status["CapEff"].strip(), 16),
        "no_new_privs": int(status["NoNewPrivs"].strip()),
        "seccomp": int(status["Seccomp"].strip()),
    }}
"""
_NETWORK = """
import socket
def run(inputs, params):
    reached = []
    for target in [("1.1.1.1", 53), ("172.17.0.1", 2375), ("example.com", 80)]:
        try:
            socket.create_connection(target, timeout=2).close()
            reached.append(target[0])
        except OSError:
            pass
    try:
        socket.getaddrinfo("example.com", 80)
        reached.append("dns")
    except OSError:
        pass
    return {"report": {"reached": len(reached)}}
"""
_WRITE = """
def run(inputs, params):
    written = 0
    for path in ["/x", "/etc/x", "/usr/x", "/opt/alphaforge/x", "/job/x", "/job/inputs/x"]:
        try:
            open(path, "w").write("x")
            written += 1
        except OSError:
            pass
    return {"report": {"written": written}}
"""
_FORK_BOMB = """
import os, time
def run(inputs, params):
    while True:
        os.fork()
"""
_MEMORY = """
def run(inputs, params):
    block = bytearray(1 << 30)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return {"report": {}}
"""

# name -> (code, expected report or expected error kind)
CANARIES: dict[str, tuple[str, dict[str, int] | str]] = {
    "identity": (_IDENTITY, {"cap_eff": 0, "no_new_privs": 1, "seccomp": 2}),
    "network": (_NETWORK, {"reached": 0}),
    "write": (_WRITE, {"written": 0}),
    "fork_bomb": (_FORK_BOMB, "PIDS_LIMIT"),
    "memory": (_MEMORY, "MEMORY_LIMIT"),
}


@dataclass
class SelfTestReport:
    """The self-test's verdict: ``failures`` lists what is not as the policy says."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _manifest(name: str, code: str) -> CustomNodeManifest:
    return CustomNodeManifest(
        name=f"canary_{name}",
        version="1.0.0",
        language="python",
        outputs=(ManifestPort(name="report", type=PortType.METRICS),),
        code=code,
    )


def _check(name: str, expected: dict[str, int] | str, result: object, out: Path) -> str | None:
    ok = getattr(result, "ok", False)
    if isinstance(expected, str):
        kind = getattr(result, "error_kind", None)
        return None if kind == expected else f"{name}: expected {expected}, got {kind or 'success'}"
    if not ok:
        return f"{name}: the canary failed: {getattr(result, 'error', '')}"
    report = read_value(out / "report.json")
    wrong = {k: report.get(k) for k, v in expected.items() if report.get(k) != v}
    if name == "identity" and report.get("uid") == 0:
        wrong["uid"] = 0
    return f"{name}: {json.dumps(wrong)}" if wrong else None


def run_self_test(executor: Executor) -> SelfTestReport:
    """Run every canary through ``executor``; passed only if each met its expectation.

    The canaries run side by side (each in its own container, as concurrent user nodes do).
    """
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="alphaforge-selftest-") as tmp,
        ThreadPoolExecutor(max_workers=len(CANARIES)) as pool,
    ):
        found = pool.map(lambda name: _canary(executor, name, Path(tmp) / name), CANARIES)
        failures = [problem for problem in found if problem]
    return SelfTestReport(not failures, failures, round(time.perf_counter() - t0, 3))


def _canary(executor: Executor, name: str, out: Path) -> str | None:
    code, expected = CANARIES[name]
    manifest = _manifest(name, code)
    runner = SandboxedRunner(executor, ManifestCatalog([manifest]), run_id="selftest")
    node = NodeIR(
        id=f"canary_{name}",
        type=manifest.name,
        version=manifest.version,
        outputs={"report": "metrics"},
        runtime="python",
        code_hash=manifest.code_hash(),
    )
    try:
        result = runner.run(node, {}, output_dir=out)
    except Exception as exc:  # the engine itself failed
        return f"{name}: {type(exc).__name__}: {exc}"
    return _check(name, expected, result, out)


def self_test_line(report: SelfTestReport) -> str:
    """One log line for a passed self-test: what was proven and what it cost."""
    return (
        f"sandbox self-test passed in {report.seconds:.1f} s "
        f"({', '.join(CANARIES)} canaries; once per worker process and image set)"
    )
