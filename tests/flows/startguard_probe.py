"""A flow-run process for ``test_startguard``: runs the existing flow run named by
``PREFECT__FLOW_RUN_ID`` as a worker's process does (Prefect's engine proposes Running, then
the body runs); the body passes the start guard, then writes its marker file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from uuid import UUID

from prefect import flow

from flows.startguard import stop_if_cancelled_before_start


@flow(name="af-test-startguard-probe", persist_result=False)
def probe(marker: str) -> str:
    stop_if_cancelled_before_start()
    Path(marker).write_text("ran")
    return "ran"


if __name__ == "__main__":
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(os.environ["PREFECT__FLOW_RUN_ID"]))
    run_flow(probe, flow_run=flow_run, parameters={"marker": sys.argv[1]})
