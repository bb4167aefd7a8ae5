"""The local services ``alphaforge serve`` runs as child processes, and their clean shutdown.

- :class:`PrefectServer`: a long-lived ``prefect server start`` on a free local port, its
  PREFECT_HOME (UI build, and the SQLite database unless it is given a PostgreSQL one) under the
  data dir, telemetry off. Long-lived beats the ephemeral server: no start-up per run, no
  tracebacks at exit. Its UI (when enabled) is told where the API really is: Prefect's default
  is port 4200 whatever ``--port`` says, and the UI then shows "Can't connect to Server API".
- :func:`prefect_database_url`: the PostgreSQL database of Prefect's server next to an app
  database on PostgreSQL (``<appdb>_prefect``, created when missing): SQLite under concurrent
  runs answers "database is locked".
- :class:`Worker`: Prefect's process worker on the process pool (``python -m
  deployments.drainworker``): one subprocess per flow run, killed when the flow run is set to
  Cancelling; stopped, it drains (no new flow runs, the running ones get up to
  ``ALPHAFORGE_WORKER_DRAIN_S`` to finish); with :class:`WarmProcesses` (the default,
  ``ALPHAFORGE_WARM_WORKER``) each flow run starts in a pre-imported fork
  (:mod:`deployments.warm`) instead of a fresh interpreter.
- :class:`MlflowUi`: ``mlflow server`` on the embedded tracking store (``--with-mlflow-ui``).

Each child runs in its own process group, so stopping it (SIGTERM, then SIGKILL after a grace
period) also stops what it started (flow-run processes, server workers). A child that exited
can be started again (:meth:`Child.restart`, what :mod:`deployments.supervise` does), after
what its group left behind is ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployments.deploy import POOL_NAME
from deployments.warm import warm_enabled
from deployments.warm_launcher import SOCKET_ENV

__all__ = [
    "Child",
    "EngineProcess",
    "MlflowUi",
    "PrefectServer",
    "WarmProcesses",
    "Worker",
    "free_port",
    "prefect_database_url",
    "prefect_env",
]

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120.0
# Quick pick-up of new flow runs (a poll every 0.5 s: one small query to the local server), and
# schedules looked at every few seconds: the defaults (10 s / 60 s) suit a cluster, not one
# machine where someone waits for a run to start.
WORKER_QUERY_SECONDS = "0.5"
WORKER_PREFETCH_SECONDS = "5"
SCHEDULER_LOOP_SECONDS = "5"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"


def prefect_env(prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a Prefect child: its home, telemetry off, the API it talks to."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    return env


class Child:
    """A child process in its own process group, its output in a log file."""

    # a restart first ends what the exited process left in its group (a dead worker's
    # flow-run processes must not race the new worker's)
    restart_ends_leftovers = True

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        *,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = dict(env)
        self.cwd = cwd
        self.restarts = 0
        self.stopping = False  # set by stop(): a supervisor must not bring it back
        log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def wait_http(self, url: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until ``url`` answers 200; RuntimeError (with the log's tail) otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout_s:.0f}s")

    def tail(self, chars: int = 3000) -> str:
        """The end of the child's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; what the group's leader
        left behind when it already exited (flow-run processes of a dead worker) is killed."""
        self.stopping = True
        if self.proc.poll() is not None:
            self.end_leftovers(signal.SIGKILL)
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.end_leftovers(signal.SIGKILL)

    def end_leftovers(self, sig: int = signal.SIGTERM) -> bool:
        """Signal what is left of the exited process's group (its children live on in it when
        the leader dies: a SIGKILLed worker's flow-run processes); True when some were."""
        if self.proc.poll() is None:
            return False
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def restart(self, grace_s: float = 5.0) -> None:
        """Start the process again after it exited: first its group's leftovers get SIGTERM,
        and SIGKILL after ``grace_s`` (a new worker must not race the old one's runs)."""
        if self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is still running (pid {self.proc.pid})")
        if self.restart_ends_leftovers and self.end_leftovers(signal.SIGTERM):
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and self._group_alive():
                time.sleep(0.1)
            self.end_leftovers(signal.SIGKILL)
        self.proc = self._spawn()
        self.restarts += 1

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def prefect_database_url(app_database_url: str, *, create: bool = True) -> str | None:
    """The database of Prefect's server beside the app's: for an app on PostgreSQL, the database
    ``<appdb>_prefect`` on the same server and with the same credentials (asyncpg, the driver
    Prefect's server needs), created when missing; None for any other app database (Prefect's
    server then keeps SQLite under its PREFECT_HOME, fine for one user)."""
    from sqlalchemy.engine import make_url

    url = make_url(app_database_url)
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    name = f"{url.database}_prefect"
    if create:
        _create_pg_database(url.set(drivername="postgresql", database=url.database), name)
    query = {k: v for k, v in url.query.items() if k != "sslmode"}
    if "sslmode" in url.query:  # libpq's name; asyncpg calls it ssl
        query["ssl"] = url.query["sslmode"]
    prefect = url.set(drivername="postgresql+asyncpg", database=name, query=query)
    return prefect.render_as_string(hide_password=False)


def _create_pg_database(app_url: Any, name: str) -> None:
    """``CREATE DATABASE name`` on the server of ``app_url`` unless it exists (connected to the
    app's database, else to the ``postgres`` one)."""
    import psycopg
    from psycopg import sql

    try:
        conn = psycopg.connect(app_url.render_as_string(hide_password=False), autocommit=True)
    except psycopg.OperationalError:
        maintenance = app_url.set(database="postgres").render_as_string(hide_password=False)
        conn = psycopg.connect(maintenance, autocommit=True)
    with conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # made concurrently
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class PrefectServer(Child):
    """``prefect server start`` on a free local port (UI included unless ``ui=False``), on
    ``database_url`` (``postgresql+asyncpg://...``) when given, else SQLite in ``prefect_home``."""

    def __init__(
        self,
        prefect_home: Path,
        *,
        port: int | None = None,
        ui: bool = True,
        database_url: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        prefect_home.mkdir(parents=True, exist_ok=True)
        env = prefect_env(prefect_home)
        env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
        # The UI's API URL defaults to PREFECT_API_URL or PREFECT_SERVER_API_HOST:PORT (4200),
        # never to --port: name the real one, or the UI cannot reach its own server.
        env["PREFECT_SERVER_API_HOST"] = "127.0.0.1"
        env["PREFECT_SERVER_API_PORT"] = str(self.port)
        env["PREFECT_UI_API_URL"] = self.api_url
        env["PREFECT_UI_URL"] = self.ui_url
        env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = SCHEDULER_LOOP_SECONDS
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        super().__init__("prefect server", argv, env, prefect_home / "server.log")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until the API answers its health check."""
        self.wait_http(f"{self.api_url}/health", timeout_s)


class WarmProcesses(Child):
    """The fork server of warm flow-run processes (:mod:`deployments.warm`): imports what a flow
    run needs once, then forks a fresh child per flow run the worker starts. Its Unix socket
    lives in a short private temporary directory (socket paths are limited to ~100 bytes).
    Restarted after an exit (``serve``'s supervisor), its running forks are left to finish:
    each is a flow run its launcher still watches."""

    restart_ends_leftovers = False

    def __init__(self, env: Mapping[str, str], log: Path, *, cwd: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="af-warm-"))
        self.socket = self.dir / "warm.sock"
        self.ready_file = self.dir / "ready.json"
        argv = [str(BIN / "python"), "-m", "deployments.warm", "serve"]
        argv += [str(self.socket), str(self.ready_file)]
        env = dict(env)
        env.pop(SOCKET_ENV, None)
        super().__init__("warm flow-run processes", argv, env, log, cwd=cwd)

    def ready(self) -> bool:
        """Whether the server finished its imports and listens."""
        return self.ready_file.exists() and self.socket.exists()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the server listens (RuntimeError with its log's tail if it exits)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout_s:.0f}s:\n{self.tail()}")

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop the server and its running flow-run processes; remove the socket directory."""
        super().stop(grace_s)
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker(Child):
    """A process worker on ``pool``: runs each flow run as a subprocess of this machine.

    ``warm`` (default: ``ALPHAFORGE_WARM_WORKER``, on when unset) starts :class:`WarmProcesses`
    beside it: the deployments' command (``python -m deployments.warm_launcher``) then runs
    each flow run in a pre-imported fork instead of a fresh interpreter. Off, the launcher
    execs ``python -m prefect.engine``: Prefect's plain process worker.

    ``pool_type="docker"``: prefect-docker's worker on a Docker pool
    (:mod:`deployments.dockerpool`): each flow run a container of the pool's image, so no
    warm processes on this machine.
    """

    def __init__(
        self,
        api_url: str,
        prefect_home: Path,
        log: Path,
        *,
        pool: str = POOL_NAME,
        name: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        warm: bool | None = None,
        limit: int | None = None,
        drain_s: float | None = None,
        pool_type: str = "process",
    ) -> None:
        if pool_type not in ("process", "docker"):
            raise ValueError(f"worker: pool type {pool_type!r} is not process or docker")
        env = prefect_env(prefect_home, api_url)
        # The worker's console is its log (which flow runs it submits, aborts, ends): a CLI
        # that quieted Prefect's console for its own terminal (``alphaforge run`` and ``sweep``
        # set PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL) must not silence the workers it starts;
        # ``extra_env`` may still set a level of its own
        env.pop(CONSOLE_LEVEL_ENV, None)
        # The deployments' command is `python -m ...`: this interpreter comes first.
        env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
        env["PREFECT_WORKER_QUERY_SECONDS"] = WORKER_QUERY_SECONDS
        env["PREFECT_WORKER_PREFETCH_SECONDS"] = WORKER_PREFETCH_SECONDS
        # a beat every 30 s (Prefect's minimum; default 180): a run whose process died with its
        # worker on another machine is found within minutes (api.services.run_liveness)
        env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
        env.update(extra_env or {})
        env.pop(SOCKET_ENV, None)
        self.warm: WarmProcesses | None = None
        if pool_type == "process" and (warm_enabled() if warm is None else warm):
            self.warm = WarmProcesses(env, log.with_name(f"{log.stem}-warm.log"), cwd=cwd)
            env[SOCKET_ENV] = str(self.warm.socket)
        worker_name = name or f"alphaforge-{socket.gethostname()}-{os.getpid()}"
        self.drain_s = _drain_seconds() if drain_s is None else drain_s
        # Prefect's process worker, draining on SIGTERM (deployments.drainworker)
        argv = [str(BIN / "python"), "-m", "deployments.drainworker", "--pool", pool]
        argv += ["--type", pool_type, "--name", worker_name, "--drain-s", f"{self.drain_s:g}"]
        if limit is not None:  # at most this many flow runs at once on this worker
            argv += ["--limit", str(limit)]
        try:
            super().__init__("prefect worker", argv, env, log, cwd=cwd)
        except BaseException:
            if self.warm is not None:
                self.warm.stop()
            raise

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker logged that it started and its warm processes (if any)
        listen (or fail if either exited)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if "started!" in self.tail(20_000) or "Worker '" in self.tail(20_000):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{self.name} did not start within {timeout_s:.0f}s:\n{self.tail()}")
        if self.warm is not None:
            self.warm.wait_ready(max(deadline - time.monotonic(), START_TIMEOUT_S))

    def stop(self, grace_s: float = 15.0) -> None:
        """Drain, then stop: SIGTERM to the worker process alone (its flow-run processes
        keep running: a signal to the group would reach them), which stops taking flow runs
        and waits up to ``drain_s`` for the running ones to finish, then ends what is left and
        exits; ``grace_s`` after that, the group gets SIGTERM, then SIGKILL. Then the warm
        processes stop."""
        try:
            self.stopping = True
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=self.drain_s + grace_s)
            super().stop(grace_s)
        finally:
            if self.warm is not None:
                self.warm.stop(grace_s)


def _drain_seconds() -> float:
    from flows.settings import get_settings

    return float(get_settings().worker_drain_s)


class EngineProcess(Child):
    """``alphaforge engine``: the strategy engine reconciling instances with the app's database
    (live/engine.py), in its own process — never in the API's — with the environment ``serve``
    set up (data dir, database, Prefect). Replay feeds resolve under ``feeds_dir``."""

    restart_ends_leftovers = True

    def __init__(self, log: Path, feeds_dir: Path, *, runner: str = "auto") -> None:
        argv = [sys.executable, "-m", "cli.main", "engine", "--feeds-dir", str(feeds_dir)]
        argv += ["--runner", runner]
        super().__init__("engine", argv, dict(os.environ), log)


class MlflowUi(Child):
    """``mlflow server`` on the given tracking store, on a free local port."""

    def __init__(self, tracking_uri: str, artifacts_uri: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(BIN / "mlflow"), "server", "--backend-store-uri", tracking_uri]
        argv += ["--default-artifact-root", artifacts_uri, "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--workers", "1"]
        # MLflow 3 starts a job runner and seven consumers (~250 MB each) for server-side jobs
        # (prompt optimisation, scorers) nothing here uses: off unless the environment says
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
        env["MLFLOW_LOGGING_LEVEL"] = "WARNING"
        super().__init__("mlflow ui", argv, env, log)

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until the MLflow server answers."""
        self.wait_http(f"{self.url}/health", timeout_s)
