"""Start ``alphaforge serve`` as a user would (a subprocess) and stop it, children included.

Shared by the serve smoke test and the browser tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deployments.stack import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    """A running ``alphaforge serve``: its process, base URL and captured output file."""

    proc: subprocess.Popen[bytes]
    base: str
    port: int
    out: Path
    # the environment it was started with beyond the defaults (say, its database URL): what a
    # CLI command on the same app needs besides ALPHAFORGE_DATA_DIR
    extra_env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        """Everything the command printed so far."""
        return self.out.read_text()


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


@contextlib.contextmanager
def serve(
    workdir: Path,
    password: str,
    *args: str,
    timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Served]:
    """Run ``alphaforge serve`` on a free port with a fresh data dir until healthy; kill on exit.

    ``env``: extra environment (say, ``ALPHAFORGE_DATABASE_URL``; by default the app uses
    SQLite in the data dir). The caller may stop it itself (SIGTERM) to test shutdown; whatever
    is left is killed.
    """
    port = free_port()
    extra = dict(env or {})
    env = {**os.environ, "ALPHAFORGE_DATA_DIR": str(workdir / "data")}
    env["ALPHAFORGE_ADMIN_PASSWORD"] = password
    for var in ("ALPHAFORGE_PREFECT_API_URL", "PREFECT_API_URL", "ALPHAFORGE_DATABASE_URL"):
        env.pop(var, None)
    env.update(extra)
    out = workdir / "serve.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    served = Served(proc, f"http://127.0.0.1:{port}", port, out, extra)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"alphaforge serve exited early:\n{served.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{served.base}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"alphaforge serve not healthy in {timeout_s:.0f}s")
            time.sleep(0.5)
        yield served
    finally:
        if proc.poll() is None:
            leftovers = children(proc.pid)
            proc.kill()
            proc.wait()
            for child in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
