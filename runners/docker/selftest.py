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

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dsl.ir import NodeIR
from nodes.base import PortType
from runners.custom import CustomNodeManifest, ManifestCatalog, ManifestPort
from runners.io import read_value
from runners.sandboxed import Executor, SandboxedRunner

__all__ = [
    "ATTESTATION_FILE",
    "ATTESTATION_TTL_S",
    "CANARIES",
    "SelfTestReport",
    "attestation_key",
    "load_attestation",
    "run_self_test",
    "save_attestation",
    "self_test_line",
]

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
    #: when the canaries ran, if that was in an earlier process (a reused attestation)
    attested_at: float | None = None


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


def self_test_line(report: SelfTestReport, now: float | None = None) -> str:
    """One log line for a passed self-test: what was proven and what it cost."""
    canaries = ", ".join(CANARIES)
    if report.attested_at is not None:
        ago = max(0.0, (time.time() if now is None else now) - report.attested_at)
        return (
            f"sandbox self-test: reusing its pass from {ago:.0f} s ago ({canaries} canaries; "
            "same engine, images and policy; re-run after "
            f"{ATTESTATION_TTL_S // 60:.0f} min)"
        )
    return (
        f"sandbox self-test passed in {report.seconds:.1f} s "
        f"({canaries} canaries; once per worker process and image set)"
    )


# How long a passed self-test vouches for later processes (a CLI run, each flow run's process)
# on the same engine with the same images and the same policy code.
ATTESTATION_TTL_S = 600.0
ATTESTATION_FILE = "selftest-attestation.json"
_POLICY_FILES = ("policy.py", "engine.py", "selftest.py", "images.py")


def attestation_key(engine_id: str, digests: Iterable[str]) -> str:
    """What a passed self-test is valid for: the engine, the images and this policy's code."""
    h = hashlib.sha256()
    h.update(engine_id.encode())
    for digest in sorted(digests):
        h.update(b"\0" + digest.encode())
    here = Path(__file__).parent
    for name in _POLICY_FILES:
        h.update(b"\0" + (here / name).read_bytes())
    h.update(f"\0{os.getuid()}".encode())
    return h.hexdigest()


def load_attestation(work_root: Path, key: str, now: float | None = None) -> SelfTestReport | None:
    """A passed self-test recorded under ``work_root`` for ``key``, younger than the TTL."""
    now = time.time() if now is None else now
    path = work_root / ATTESTATION_FILE
    try:
        if not (_private(work_root) and _private(path)):
            return None  # only a record nobody else could have written vouches
        record = json.loads(path.read_text())
        at = float(record["at"])
        valid = record["key"] == key and record["passed"] is True and now - at >= 0
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not valid or now - at > ATTESTATION_TTL_S:
        return None
    return SelfTestReport(True, [], float(record.get("seconds", 0.0)), attested_at=at)


def _private(path: Path) -> bool:
    st = path.lstat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and not path.is_symlink()


def save_attestation(work_root: Path, key: str, report: SelfTestReport) -> None:
    """Record a passed self-test (atomically; a failed one is never recorded)."""
    if not report.passed:
        return
    record = {"key": key, "passed": True, "seconds": report.seconds, "at": time.time()}
    work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".attestation-", dir=work_root)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, work_root / ATTESTATION_FILE)
