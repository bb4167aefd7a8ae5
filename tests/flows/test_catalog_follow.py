"""Scheduled runs follow the latest version: a spec made once (with the schedule) whose
floating `dataset("x")` steps move to x's latest version each time a run starts; a deleted
dataset fails the data step saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.catalog.helpers import bars

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

PIPELINE = 'pipeline nightly\ndata = dataset("prices")\nfast = sma(data.close, window=3)\n'


def _import(settings, tmp_path: Path, periods: int) -> str:  # type: ignore[no-untyped-def]
    from flows.catalog import open_catalog

    path = tmp_path / f"AAA-{periods}.csv"
    frame: pd.DataFrame = bars("AAA", "2024-01-01", periods, seed=periods)
    frame.drop(columns="symbol").to_csv(path, index_label="ts")
    return open_catalog(settings).import_files("u7", "prices", [path], symbol="AAA").version


def test_a_followed_step_reads_the_latest_version_when_the_run_starts(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from cli.catalogrefs import CliDatasetResolver
    from dsl import compile_source
    from flows.catalog import open_catalog
    from tests.flows.support import run_ir

    first = _import(settings, tmp_path, 10)
    ir = compile_source(PIPELINE, catalog=CliDatasetResolver(settings, "u7")).ir
    assert ir.node("data").params["version"] == first
    follow = {"data": "u7/prices"}
    second = _import(settings, tmp_path, 12)  # imported after the "schedule" was made

    run = run_ir(settings, ir, tmp_path, catalog_namespace="u7", catalog_follow=follow)
    assert run.status == "completed", run.error
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["datasets"]["data"]["fingerprint"] == f"catalog:{second}"
    assert (
        json.loads((run.run_dir / "ir.json").read_text())["nodes"][0]["params"]["version"] == second
    )
    log = (run.run_dir / "run.log").read_text()
    assert f"dataset 'prices' is at version {second[:12]} now" in log
    # without follow, the same spec reads the version it names
    pinned = run_ir(settings, ir, tmp_path, catalog_namespace="u7")
    pinned_record = json.loads((pinned.run_dir / "run.json").read_text())
    assert pinned_record["datasets"]["data"]["fingerprint"] == f"catalog:{first}"

    open_catalog(settings).delete_name("u7", "prices")
    gone = run_ir(settings, ir, tmp_path, catalog_namespace="u7", catalog_follow=follow)
    assert gone.status == "failed" and gone.node_states["data"] == "failed"
    assert "no dataset u7/prices" in gone.error
