"""The flow-run command of Alpha Forge's deployments: ``python -m deployments.warm_launcher``.

Prefect's process worker starts this (instead of ``python -m prefect.engine``) for each flow
run, with the flow run id in ``PREFECT__FLOW_RUN_ID``. When the worker has warm processes
(``ALPHAFORGE_WARM_SOCKET`` names the fork server of :mod:`deployments.warm`), the launcher
hands its environment, working directory and stdin/stdout/stderr to the fork server, which
runs the flow run in a freshly forked, pre-imported child: the same ``prefect.engine`` main,
without seconds of imports. The launcher stays the process the worker knows (its pid is the
flow run's infrastructure pid): it forwards the signals it gets (the worker's SIGTERM on a
cancellation) to that child, and ends with the child's exit status (or the signal that killed
it). Without a fork server, or when it cannot be reached, it becomes ``python -m
prefect.engine`` itself (exec): a cold start, never a failed run.

Kept tiny on purpose (standard library only, imported in milliseconds): it is the one part of
a warm start that still starts a Python interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time

SOCKET_ENV = "ALPHAFORGE_WARM_SOCKET"
STARTED_ENV = "ALPHAFORGE_PROCESS_STARTED_AT"  # epoch seconds: when the flow run's process began
HEADER = struct.Struct("!I")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _cold(argv: list[str]) -> None:
    """Become ``python -m prefect.engine`` (never returns)."""
    os.environ.setdefault(STARTED_ENV, repr(time.time()))
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *argv])


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _read_line(sock: socket.socket, buf: bytearray) -> str | None:
    """One ``\\n``-terminated line from the fork server (None at end of stream)."""
    while b"\n" not in buf:
        try:
            chunk = sock.recv(256)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        if not chunk:
            return None
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode()


def _exit_like(status: int) -> None:
    """End this process the way the child ended: same exit code, or killed by the same signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # pragma: no cover - the signal ends us first
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    """Run the flow run named by the environment in a warm child, or cold when there is none."""
    started = time.time()
    path = os.environ.get(SOCKET_ENV)
    sock = _connect(path) if path else None
    if sock is None:
        _cold(argv)
        return
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child[0], signum)
        else:
            pending.append(signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    payload = json.dumps(
        {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": {**os.environ, STARTED_ENV: repr(started)},
            "launcher_pid": os.getpid(),
        }
    ).encode()
    try:
        socket.send_fds(sock, [HEADER.pack(len(payload))], [0, 1, 2])
        sock.sendall(payload)
    except OSError:
        sock.close()
        _cold(argv)
        return
    buf = bytearray()
    first = _read_line(sock, buf)
    if first is None or not first.startswith("pid "):
        # the fork server went away before it forked: nothing ran yet, start cold
        sock.close()
        _cold(argv)
        return
    child.append(int(first.split()[1]))
    for signum in pending:
        forward(signum, None)
    while True:
        line = _read_line(sock, buf)
        if line is None:
            print(
                "the warm flow-run process server stopped before the flow run ended; "
                "see the worker's warm-processes log",
                file=sys.stderr,
            )
            os._exit(1)
        if line.startswith("exit "):
            _exit_like(int(line.split()[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
