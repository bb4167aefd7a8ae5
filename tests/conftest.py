"""Shared fixtures: one real Prefect server per test session, a fresh data dir per test.

Session-scoped fixtures that start services live HERE and nowhere else, and test modules never
import them: a fixture function imported into a module is a new fixture of that module, so a
"session" server imported into five modules is five servers alive until the session ends.

- ``prefect_server``: a ``prefect server start`` subprocess (scheduler on, late-runs service off,
  telemetry off) on a free port with its own PREFECT_HOME, one per pytest-xdist worker.
- ``prefect_api``: in-process flows talk to it (PREFECT_API_URL), never to Prefect's ephemeral
  server (slow first start, "database is locked", tracebacks at exit).
- ``prefect_stack``: the same server plus the web deployment and a process worker, for the run
  and schedule tests (in ``xdist_group(STACK_GROUP)``, so one xdist worker starts the worker).
- ``docker_engine``: the Docker engine with the sandbox images built.
- ``s3_server``: moto's S3 server (real HTTP) behind a proxy that can answer HTTP 500.

MLflow gets a real SQLite store in each test's data dir (the settings' default).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployments.fixtures import Stack

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 180.0

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
for _var in (
    "ALPHAFORGE_DATA_DIR",
    "ALPHAFORGE_PREFECT_API_URL",
    "ALPHAFORGE_MLFLOW_TRACKING_URI",
    "ALPHAFORGE_ARTIFACT_STORE_URL",
):
    os.environ.pop(_var, None)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` (scripts/test.sh): give each test marked ``xdist_group(NAME)`` the
    node id suffix ``@NAME`` that xdist's scheduler groups by.

    pytest-xdist 3.8 writes the suffix to ``item._nodeid``, which pytest 9.2 no longer reads (its
    node ids are structured, ``item._id``): the marks were silently ignored and every group's
    tests were spread one by one over the workers, each worker starting the group's shared
    stack (pytest-dev/pytest-xdist#1386). Runs on xdist's workers only (they set
    ``config.option.loadgroup``), after xdist's own hook; a suffix already there is kept."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        nodeid = item.nodeid
        if nodeid.rfind("@") > nodeid.rfind("]") or not hasattr(item, "_id"):
            continue  # grouped by xdist itself (an older pytest), or no structured id
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if names:
            item._id = NodeId.parse(f"{nodeid}@{'_'.join(sorted(names))}")


def _drain_prefect_clients() -> None:
    """Send buffered logs and events before the server goes (else exit hangs on retries)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=15)
    EventsWorker.drain_all(timeout=15)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """This worker's one Prefect server (a :class:`deployments.stack.PrefectServer`)."""
    from deployments.stack import PrefectServer

    home = tmp_path_factory.mktemp("prefect-server")
    # the late-runs service would mark a run Late while a loaded worker is still picking it up
    saved = os.environ.get("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED")
    os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
    try:
        server = PrefectServer(home, ui=False)
    finally:
        if saved is None:
            os.environ.pop("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED")
        else:
            os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = saved
    try:
        server.wait_ready(SERVER_START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_api(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """In-process Prefect talks to the session's server (PREFECT_API_URL). Yields the API URL.

    Prefect's global settings (made at import, before this fixture set the URL) are refreshed
    too: threads Prefect starts without a context (a process pool's event forwarder) read
    them, and would otherwise start an ephemeral server of their own."""
    url: str = prefect_server.api_url
    client_home = tmp_path_factory.mktemp("prefect-client")
    os.environ["PREFECT_API_URL"] = url
    os.environ["PREFECT_HOME"] = str(client_home)
    import prefect.context
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    saved = prefect.context.GLOBAL_SETTINGS_CONTEXT
    prefect.context.refresh_global_settings_context()
    try:
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: client_home}):
            yield url
            _drain_prefect_clients()
    finally:
        prefect.context.GLOBAL_SETTINGS_CONTEXT = saved


@pytest.fixture(scope="session")
def prefect_stack(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's Prefect server with the web deployment and a process worker on its pool.

    The worker's flow-run processes import the test node types (``t_sleep`` for slow runs);
    a test whose API process compiles them asks for ``test_nodes`` (``tests/api/stack.py``'s
    ``api_settings`` does): nothing here changes the registry for the whole session.
    """
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import ensure_web_deployment
    from deployments.flow import EXTRA_NODE_MODULES_ENV
    from deployments.stack import Worker

    with SyncPrefectClient(api=prefect_server.api_url) as client:
        ensure_web_deployment(client)
    home = tmp_path_factory.mktemp("prefect-worker")
    worker = Worker(
        prefect_server.api_url,
        home,
        home / "worker.log",
        extra_env={
            EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes",
            "PREFECT_LOGGING_LEVEL": "INFO",
        },
        drain_s=10,  # a run a test left behind must not hold the session's end for a minute
    )
    try:
        worker.wait_ready()
        yield Stack(prefect_server.api_url, prefect_server, worker)
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """The local engine with the sandbox images built; fails the test when there is none.

    Docker being unavailable is a FAILURE, never a skip: ``infra/build_sandbox_images.sh``
    (which runs ``scripts/ensure_docker.sh``) installs/starts the engine and builds the images,
    idempotently.
    """
    from runners.docker import docker_client

    proc = subprocess.run(
        ["bash", str(ROOT / "infra" / "build_sandbox_images.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"no Docker sandbox: build_sandbox_images.sh failed:\n{proc.stderr[-3000:]}")
    client = docker_client()
    client.ping()
    return client


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """This worker's S3-compatible server (moto's, as a real HTTP server) behind a proxy that
    can fail chosen requests (:class:`tests.s3server.S3Server`); a bucket per test."""
    from tests.s3server import start_s3_server

    server = start_s3_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Core settings with a fresh data dir (artifacts, runs, MLflow SQLite) for one test."""
    from flows.settings import CoreSettings

    return CoreSettings(data_dir=tmp_path / "data")


@pytest.fixture
def test_nodes() -> Iterator[None]:
    """The ``t_*`` test node types, in the default registry for the duration of one test."""
    from tests.flows.testnodes import install, uninstall

    install()
    try:
        yield
    finally:
        uninstall()


@pytest.fixture(scope="session")
def million_bars(tmp_path_factory: pytest.TempPathFactory, worker_id: str):  # type: ignore[no-untyped-def]
    """1,000,000 one-minute bars as CSV and Parquet (tests/real_size.py), written once per
    session and shared by the xdist workers."""
    from tests.real_size import million_bars_files

    return million_bars_files(tmp_path_factory, worker_id)
