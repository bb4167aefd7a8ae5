"""MLflow runs whose process ended without finishing them: marked KILLED, with the reason.

A flow run opens its MLflow run as it starts (:func:`flows.finish.open_tracker`; a sweep's
parent flow its parent run, :mod:`flows.sweeptrack`) and ends it at the very end (FINISHED or
FAILED). A flow-run process that dies first (its worker SIGKILLed, its machine gone, a crash)
never ends it: MLflow's UI would show the run "running" for ever beside the retry that
finished. When the status sync sees such a run or sweep end (failed or cancelled), it ends
their MLflow runs that are still RUNNING as KILLED, with the tag
:data:`~flows.tracking.KILLED_REASON_TAG` saying why: :func:`close_tracked_runs` finds a run's
by its ``alphaforge.run_id`` tag, :func:`close_sweep_runs` a sweep's (its parent run and any
trial) by ``alphaforge.sweep_id``. Runs that already ended (a sweep's FINISHED trials) are
left as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from flows.tracking import KILLED_REASON_TAG

__all__ = ["RUN_TAG", "SWEEP_TAG", "close_sweep_runs", "close_tracked_runs"]

log = logging.getLogger(__name__)

RUN_TAG = "alphaforge.run_id"
SWEEP_TAG = "alphaforge.sweep_id"
_MAX_REASON = 5000  # MLflow's limit on a tag value is 8,000 characters


def close_tracked_runs(tracking_uri: str, run_key: str, reason: str | None = None) -> list[str]:
    """End the still-RUNNING MLflow runs of run ``run_key`` as KILLED; returns their ids.
    Never raises: a tracking store that cannot be reached is logged and left as it is."""
    return _close(tracking_uri, RUN_TAG, run_key, reason)


def close_sweep_runs(tracking_uri: str, sweep_key: str, reason: str | None = None) -> list[str]:
    """End the still-RUNNING MLflow runs of sweep ``sweep_key`` (its parent run) as KILLED;
    returns their ids. Never raises, like :func:`close_tracked_runs`."""
    return _close(tracking_uri, SWEEP_TAG, sweep_key, reason)


def _close(tracking_uri: str, tag: str, key: str, reason: str | None) -> list[str]:
    from flows.tracking import sqlite_path

    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():  # no store: no MLflow run was ever opened
        return []
    why = (reason or "its process ended before it could end its MLflow run")[:_MAX_REASON]
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        closed = []
        for run in _running(client, tag, key):
            client.set_tag(run.info.run_id, KILLED_REASON_TAG, why)
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(str(run.info.run_id))
    except Exception as exc:  # the sync goes on; the MLflow run stays as it was
        log.warning("%s %s: its MLflow run could not be ended: %s", tag, key, exc)
        return []
    if closed:
        log.warning("%s %s ended without its process finishing: MLflow run(s) %s KILLED (%s)",
                    tag, key, ", ".join(closed), why)  # fmt: skip
    return closed


def _running(client: Any, tag: str, key: str) -> list[Any]:
    experiments: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        experiments += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    found: list[Any] = []
    for start in range(0, len(experiments), 100):  # search_runs takes at most 100 experiments
        token = None
        while True:
            page = client.search_runs(
                experiments[start : start + 100],
                filter_string=f"tags.`{tag}` = '{key}' and attributes.status = 'RUNNING'",
                page_token=token,
            )
            found += list(page)
            token = page.token
            if not token:
                break
    return found
