"""A run whose results do not reach MLflow does not say completed (issue 10 item 7): the run
ends failed with AF720 in a sentence, no server path in it, and the MLflow run is ended FAILED."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flows.tracking import MlflowTracker
from tests.flows.support import mlflow_run, run_ir
from tests.flows.testnodes import crossover_ir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api", "test_nodes")]


def test_a_run_whose_mlflow_logging_fails_ends_failed(
    settings: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: MlflowTracker, *args: Any, **kwargs: Any) -> None:
        raise OverflowError(f"int too large to convert to float (store {tmp_path}/mlflow.db)")

    # the run logs params, metrics and tags in one batch (log_all); the single calls too
    for method in ("log_all", "log_metrics"):
        monkeypatch.setattr(MlflowTracker, method, refuse)
    result = run_ir(settings, crossover_ir(), tmp_path)
    assert result.status == "failed"
    assert result.node_states == dict.fromkeys(crossover_ir().node_ids(), "completed")
    error = result.error or ""
    assert error.startswith("AF720: the run computed its results, but recording them in MLflow")
    assert "OverflowError" in error and str(tmp_path) not in error and "<path>" in error
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "failed" and record["tracking_error"].startswith("OverflowError")
    assert record["mlflow_run_id"] is None
    # the MLflow run it opened is not left running
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_uri)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`alphaforge.run_id` = '{result.run_id}'",
    )
    assert mlflow_run(settings.mlflow_uri, run.info.run_id)[0].info.status == "FAILED"
