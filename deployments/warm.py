"""Warm flow-run processes: a fork server that starts each flow run with its imports done.

Prefect's process worker starts one Python process per flow run, which spends seconds
importing Prefect, pandas, MLflow and Alpha Forge before the flow body starts. The fork server
(``python -m deployments.warm serve <socket>``, started beside the worker by
:class:`deployments.stack.WarmProcesses`) imports all that once, single-threaded, and then
waits on a Unix socket. The worker still starts the deployment's command for every flow run,
``python -m deployments.warm_launcher`` (:mod:`deployments.warm_launcher`: standard library
only); the launcher connects, hands over its environment, working directory and
stdin/stdout/stderr, and the server forks a child for it. The child takes the launcher's
environment (``PREFECT__FLOW_RUN_ID``, the control channel's port and token, the job's
variables), re-reads Prefect's settings from it, and runs ``prefect.engine`` as ``__main__``,
exactly what ``python -m prefect.engine`` runs. So the flow run is a plain Prefect flow run:
states, logs, the control channel and ``on_cancellation`` hooks all work as before.

- **Used once**: every flow run gets a fresh fork of the pre-imported server; nothing a run
  imports, caches or changes reaches another run (the server itself never runs user code,
  opens no client and starts no thread).
- **Signals and pid**: the worker knows the launcher's pid (the flow run's infrastructure pid);
  the launcher forwards SIGTERM/SIGINT/SIGHUP to the child and exits with the child's status.
  A launcher that dies (SIGKILL) takes its child with it: the child watches the connection.
- **Failure is a cold start**: no server, a server that is not ready, or one that fails to fork
  → the launcher execs ``python -m prefect.engine`` itself.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deployments.warm_launcher import HEADER, SOCKET_ENV, STARTED_ENV

__all__ = ["PRELOAD", "SOCKET_ENV", "STARTED_ENV", "WARM_ENV", "ChildJob", "serve", "warm_enabled"]

WARM_ENV = "ALPHAFORGE_WARM_WORKER"
DEBUG_ENV = "ALPHAFORGE_WARM_DEBUG"
# What a flow-run process imports anyway, in the order the engine needs it. Imported once by
# the server; a module missing here is merely imported by the child (slower, never wrong).
PRELOAD = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.flows",
    "prefect.task_engine",
    "prefect.task_runners",
    "prefect.futures",
    "prefect.states",
    "prefect.results",
    "prefect.events.worker",
    "prefect.logging.handlers",
    "prefect.client.orchestration",
    "prefect.runner.storage",
    "prefect._internal.control_listener",
    "prefect._internal.metrics",
    "prefect.utilities.callables",
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "sqlalchemy.orm",
    "fastapi.openapi.models",
    "mlflow",
    "mlflow.entities",
    "mlflow.tracking",
    "mlflow.tracking.client",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.db.utils",
    "mlflow.store.artifact.local_artifact_repo",
    "alembic",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "graphviz",
    "prefect.utilities.visualization",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.workspace_aware_mixin",
    "mlflow.store.workspace.utils",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "pyarrow.dataset",
    "pyarrow.pandas_compat",
    "pandas.core.arrays.arrow.extension_types",
    "rich._emoji_codes",
    "flows.pipeline",
    "flows.nodelab",
    "flows.finish",
    "flows.results",
    "flows.customnodes",
    "runners.inprocess",
    "runners.registry",
    "nodes",
    "nodes.builtin",
    "nodes.builtin.backtest",
    "nodes.builtin.indicators",
    "nodes.builtin.loaders",
    "nodes.builtin.metrics",
    "nodes.builtin.signals",
)
ACCEPT_TICK_S = 1.0


def _say(message: str) -> None:
    """A line in the server's log (stderr; the server configures no logging of its own, so a
    forked child starts with Prefect's logging only)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} warm processes: {message}", file=sys.stderr)


def warm_enabled(default: bool = True) -> bool:
    """``ALPHAFORGE_WARM_WORKER`` (1/true/on or 0/false/off; ``default`` when unset)."""
    raw = os.environ.get(WARM_ENV, "").strip().lower()
    if not raw:
        return default
    return raw not in ("0", "false", "off", "no")


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules`` (the ones that fail are skipped and returned)."""
    failed: list[str] = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module of an optional extra: the child imports it or not
            _say(f"could not preload {name}: {exc}")
            failed.append(name)
    return failed


def _warm_code_fingerprints() -> None:
    """Fingerprint the built-in nodes' code (parsing their modules' sources) once here: the
    forks inherit the hashes of the very code they run (it was imported here too)."""
    try:
        from flows.artifacts import warm_builtin_code_fingerprints

        warm_builtin_code_fingerprints()
    except Exception as exc:  # the forks compute what is missing
        _say(f"could not pre-compute the nodes' code fingerprints: {exc}")


def _warm_backtest_kernel() -> None:
    """Load the numba-compiled backtest kernel here (its cache load costs ≈ 1–2 s a process):
    the forks that backtest long series, a sweep's chunks above all, inherit the machine code."""
    try:
        from flows.sweeptrial import warm_compiled_kernels

        warm_compiled_kernels()
    except Exception as exc:  # the forks compile or load it themselves
        _say(f"could not load the backtest kernel: {exc}")


def _warm_package_versions() -> None:
    """The package versions every run records (read from the installed metadata: slow)."""
    try:
        from flows.record import package_versions

        package_versions()
    except Exception as exc:  # the forks read them
        _say(f"could not read the package versions: {exc}")


def _warm_tracking_store(timeout_s: float = 300.0) -> None:
    """Open the MLflow store once, in a throwaway fork: the first run after a start otherwise
    waits seconds for MLflow to create (or migrate) its tables. A fork, so that this server
    keeps no connection, thread or cached setting of its own."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from flows.settings import get_settings
            from flows.tracking import mlflow_client

            mlflow_client(get_settings().mlflow_uri).search_experiments(max_results=1)
        except BaseException as exc:  # reported by the server; the runs retry on their own
            print(f"warm processes: MLflow store not opened: {exc}", file=sys.stderr)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    _say("the MLflow store took too long to open; going on without waiting")


@dataclass
class ChildJob:
    """What a forked child runs: one launcher's flow run."""

    conn: socket.socket
    fds: list[int]
    argv: list[str]
    cwd: str
    env: dict[str, str]
    server_env: dict[str, str]
    forked_at: float = field(default_factory=time.time)

    def run(self) -> int:
        """Take the launcher's place and run ``prefect.engine`` as ``__main__``; the exit code."""
        for target, fd in enumerate(self.fds[:3]):
            os.dup2(fd, target)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.environ.clear()
        os.environ.update(self.env)
        os.environ["ALPHAFORGE_WARM_FORKED_AT"] = repr(self.forked_at)
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        _watch_launcher(self.conn)
        if os.environ.get(DEBUG_ENV):
            _report_late_imports(set(sys.modules))
        _fresh_state(self.server_env)
        import runpy

        sys.argv = ["prefect.engine", *self.argv]
        profile = None
        if os.environ.get(DEBUG_ENV) == "profile":
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        try:
            with warnings.catch_warnings():
                # runpy warns that the module it runs as __main__ was imported already: here,
                # on purpose (that is what makes the process warm)
                warnings.filterwarnings("ignore", r".*found in sys\.modules", RuntimeWarning)
                runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            return _exit_code(exc.code)
        finally:
            if profile is not None:
                profile.disable()
                profile.dump_stats(f"/tmp/af-warm-profile-{os.getpid()}.prof")
        return 0


def _report_late_imports(preloaded: set[str]) -> None:
    """At exit, print the top-level packages this child imported that the server had not
    (``ALPHAFORGE_WARM_DEBUG=1``): candidates for :data:`PRELOAD`."""
    import atexit

    def report() -> None:
        late = sorted(set(sys.modules) - preloaded)
        print(f"warm processes: imported after the fork: {late}", file=sys.stderr)

    atexit.register(report)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _watch_launcher(conn: socket.socket) -> None:
    """End this child (SIGKILL) when its launcher goes away: the worker killed it outright."""

    def watch() -> None:
        try:
            while conn.recv(64):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="warm-launcher-watch", daemon=True).start()


def _prefect_settings_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment variables Prefect's settings read (``PREFECT_*``; the ``PREFECT__*``
    ones are per flow run and read from the environment when needed)."""
    return {k: v for k, v in env.items() if k.startswith("PREFECT_") and "PREFECT__" not in k}


def _settings_as_the_worker_passes_them() -> dict[str, str]:
    """This server's environment as a worker's flow-run environment would carry it: Prefect's
    starter adds the current settings as ``PREFECT_*`` variables (in their canonical text), so
    the same settings compare equal."""
    env = dict(os.environ)
    try:
        from prefect.settings import get_current_settings

        exported = get_current_settings().to_environment_variables(exclude_unset=True)
        env.update({k: str(v) for k, v in exported.items() if v is not None})
    except Exception as exc:  # then every fork re-reads its settings: slower, still right
        _say(f"could not export Prefect's settings: {exc}")
    return env


def _fresh_state(server_env: Mapping[str, str]) -> None:
    """Settings from this run's environment: Prefect's are re-read (and its logging set up
    again) when the run's ``PREFECT_*`` variables differ from the server's (~0.2-0.4 s, so
    only then); ours are always read afresh (the server never read them)."""
    mine, theirs = _prefect_settings_env(os.environ), _prefect_settings_env(server_env)
    if mine != theirs:
        if os.environ.get(DEBUG_ENV):
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            print(f"warm processes: Prefect settings re-read for {differ}", file=sys.stderr)
        import prefect.context

        prefect.context.refresh_global_settings_context()
        from prefect.logging.configuration import setup_logging

        setup_logging()
    from flows.settings import get_settings

    get_settings.cache_clear()


def _reap(children: dict[int, socket.socket]) -> None:
    """Tell each ended child's launcher how it ended."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(f"exit {status}\n".encode())
            conn.close()


@dataclass
class _Request:
    fds: list[int]
    argv: list[str]
    cwd: str
    env: dict[str, str]
    launcher_pid: int


def _receive(conn: socket.socket) -> _Request | None:
    """A launcher's request: its fds, argv, working directory, environment (None when it is
    not one)."""
    conn.settimeout(5.0)
    try:
        header, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, 3)
        if len(header) != HEADER.size:
            raise ValueError("short header")
        (size,) = HEADER.unpack(header)
        data = bytearray()
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ValueError("request cut short")
            data.extend(chunk)
        conn.settimeout(None)
        raw = json.loads(data)
        return _Request(
            fds=list(fds),
            argv=[str(a) for a in raw.get("argv") or []],
            cwd=str(raw.get("cwd") or "."),
            env={str(k): str(v) for k, v in dict(raw.get("env") or {}).items()},
            launcher_pid=int(raw.get("launcher_pid") or 0),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        _say(f"bad request from a launcher: {exc}")
        return None


def serve(path: Path, *, ready: Path | None = None) -> ChildJob | None:
    """Preload, then fork a child per launcher until SIGTERM/SIGINT.

    Returns None in the server when it stops; returns the :class:`ChildJob` in each forked
    child (which the caller runs, then exits: see :func:`main`).
    """
    failed = preload()
    _warm_code_fingerprints()
    _warm_package_versions()
    _warm_backtest_kernel()
    _warm_tracking_store()
    stray = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if stray:  # a fork only copies the forking thread: say so rather than deadlock quietly
        _say(f"threads running after the imports: {stray}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    stopping: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.set_wakeup_fd(wake_w)
    children: dict[int, socket.socket] = {}
    server_pid = os.getpid()
    server_env = _settings_as_the_worker_passes_them()
    if ready is not None:
        ready.write_text(json.dumps({"pid": server_pid, "failed": failed}))
    _say(f"ready on {path} (pid {server_pid}, {len(sys.modules)} modules)")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        while not stopping:
            readable, _, _ = select.select([listener.fileno(), wake_r], [], [], ACCEPT_TICK_S)
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            _reap(children)
            if listener.fileno() not in readable:
                continue
            conn, _ = listener.accept()
            request = _receive(conn)
            if request is None:
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: drop the server's pieces, run the flow run
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for fd in (wake_r, wake_w):
                    os.close(fd)
                listener.close()
                for other in children.values():
                    other.close()
                conn.settimeout(None)
                return ChildJob(
                    conn=conn,
                    fds=request.fds,
                    argv=request.argv,
                    cwd=request.cwd,
                    env=request.env,
                    server_env=server_env,
                )
            for fd in request.fds:
                os.close(fd)
            with contextlib.suppress(OSError):  # a launcher gone: its child notices, ends itself
                conn.sendall(f"pid {pid}\n".encode())
            children[pid] = conn
            _say(f"flow-run process {pid} for launcher {request.launcher_pid}")
    finally:
        if os.getpid() == server_pid:
            listener.close()
            for done in (path, ready):
                if done is not None:
                    with contextlib.suppress(FileNotFoundError):
                        done.unlink()
            with contextlib.suppress(OSError):  # the private directory, when it is empty now
                path.parent.rmdir()
            for conn in children.values():
                conn.close()
    return None


def main(argv: list[str] | None = None) -> None:
    """``python -m deployments.warm serve <socket path> [<ready file>]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "serve":
        print("usage: python -m deployments.warm serve <socket> [<ready file>]", file=sys.stderr)
        raise SystemExit(2)
    job = serve(Path(args[1]), ready=Path(args[2]) if len(args) > 2 else None)
    if job is None:
        return
    code = job.run()
    sys.exit(code)


if __name__ == "__main__":
    main()
