"""Runs are named ``<pipeline title slug>/<run id>`` in Prefect (the flow run) and in MLflow
(the run), whoever starts them: here the CLI's in-process flow run (the web's and schedules'
are in tests/api/test_run_errors.py and the browser tour of the links)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.record import run_name, slugify
from tests.flows.support import flow_run, mlflow_run, run_ir
from tests.flows.testnodes import crossover_ir


def test_slugs_are_lower_case_ascii_words_joined_by_dashes() -> None:
    assert slugify("Moving Average Crossover (Sample)") == "moving-average-crossover-sample"
    assert slugify("  Ünïcode & Co. — v2!  ") == "unicode-co-v2"
    assert slugify("日本語") == "pipeline"
    assert len(slugify("x" * 500)) == 60
    assert run_name(None, "sma_crossover", "20261121-100000-123-1a2b3c") == (
        "sma-crossover/20261121-100000-123-1a2b3c"
    )


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "test_nodes")
def test_a_run_has_the_same_readable_name_in_prefect_and_mlflow(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ir = crossover_ir().model_copy(update={"title": "Crossover: Ünïcode & Co."})
    result = run_ir(settings, ir, tmp_path)
    assert result.status == "completed", result.error
    expected = f"crossover-unicode-co/{result.run_id}"
    assert flow_run(result.flow_run_id).name == expected
    tracked, _ = mlflow_run(settings.mlflow_uri, result.mlflow_run_id)
    assert tracked.info.run_name == expected
