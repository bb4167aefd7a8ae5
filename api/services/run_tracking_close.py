"""The MLflow run of a run that ended without finishing it: marked KILLED.

A flow run opens its MLflow run as it starts (:func:`flows.finish.open_tracker`) and ends it
at the very end (FINISHED or FAILED). A flow-run process that dies first (its worker SIGKILLed,
its machine gone, a crash) never ends it: MLflow's UI would show the run "running" for ever
beside the retry that finished. When the status sync sees such a run end (failed or cancelled),
:func:`close_tracked_runs` ends its MLflow runs that are still RUNNING (found by the
``alphaforge.run_id`` tag) as KILLED.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["close_tracked_runs"]

log = logging.getLogger(__name__)

RUN_TAG = "alphaforge.run_id"


def close_tracked_runs(tracking_uri: str, run_key: str) -> list[str]:
    """End the still-RUNNING MLflow runs of run ``run_key`` as KILLED; returns their ids.
    Never raises: a tracking store that cannot be reached is logged and left as it is."""
    from flows.tracking import sqlite_path

    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():  # no store: no MLflow run was ever opened
        return []
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        closed = []
        for run in _running(client, run_key):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(str(run.info.run_id))
    except Exception as exc:  # the sync goes on; the MLflow run stays as it was
        log.warning("run %s: its MLflow run could not be ended: %s", run_key, exc)
        return []
    if closed:
        log.warning("run %s ended without its process finishing: MLflow run(s) %s KILLED",
                    run_key, ", ".join(closed))  # fmt: skip
    return closed


def _running(client: Any, run_key: str) -> list[Any]:
    experiments: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        experiments += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    if not experiments:
        return []
    found = client.search_runs(
        experiments,
        filter_string=f"tags.`{RUN_TAG}` = '{run_key}' and attributes.status = 'RUNNING'",
    )
    return list(found)
