"""The engine as a long-running Prefect flow: the ``alphaforge-engine/engine`` deployment.

Operators start it from Prefect (or ``alphaforge engine`` runs the same reconciler in a
terminal). The flow reconciles every ``cycle_s`` until its flow run is cancelled (Prefect's
cancellation: the worker stops the process, the engine's instances' sandboxes go with it and
their leases are taken back by the next engine at once, :func:`live.leases.holder_gone`), or
until ``max_minutes`` have passed (then it unloads everything and completes: a schedule can
restart it, so no engine runs for ever on stale code).

The database comes from the worker's environment (``ALPHAFORGE_DATABASE_URL``, else the SQLite
file in ``ALPHAFORGE_DATA_DIR``), never from the flow's parameters (a URL may hold a password
and parameters are shown in Prefect's UI).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.startguard import stop_if_cancelled_before_start
from live.service import build_engine

__all__ = ["ENGINE_FLOW_NAME", "database_url", "engine_flow"]

ENGINE_FLOW_NAME = "alphaforge-engine"
DEFAULT_FEEDS_DIR = Path(__file__).resolve().parents[1] / "examples"


def database_url() -> str:
    """The app's database as this process's environment names it."""
    url = os.environ.get("ALPHAFORGE_DATABASE_URL")
    if url:
        return url
    data = Path(os.environ.get("ALPHAFORGE_DATA_DIR") or ".alphaforge").resolve()
    return f"sqlite:///{data / 'alphaforge.db'}"


@flow(name=ENGINE_FLOW_NAME, persist_result=False, log_prints=True)
def engine_flow(
    cycle_s: float = 1.0,
    runner: str = "auto",
    feeds_dir: str | None = None,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Reconcile strategy instances and deployed stream pipelines with the database until
    cancelled (or ``max_minutes``)."""
    stop_if_cancelled_before_start()
    logger = get_run_logger()
    engine = build_engine(
        database_url(), Path(feeds_dir) if feeds_dir else DEFAULT_FEEDS_DIR, runner=runner,
        confine=True, name="engine-flow",
    )  # fmt: skip
    logger.info(f"engine {engine.engine_id} reconciling every {cycle_s:g} s")
    stop = threading.Event()
    if max_minutes:
        threading.Timer(max_minutes * 60, stop.set).start()
    t0 = time.monotonic()
    cycles = 0
    try:
        while not stop.is_set():
            report = engine.reconcile()
            cycles += 1
            if report.changed():
                logger.info(
                    f"loaded {report.loaded}, reloaded {report.reloaded}, unloaded "
                    f"{report.unloaded}, switched {report.switched}, lost {report.lost}"
                )
            stop.wait(cycle_s)
    finally:
        engine.shutdown()
    return {"engine": engine.engine_id, "cycles": cycles, "seconds": time.monotonic() - t0}
