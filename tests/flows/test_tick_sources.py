"""Pipelines that produce ticks: synthetic_book and tick_data (pinned like dataset) in a real
Prefect run, their outputs stored as tick files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nodes import tickfile, ticks
from nodes.synthbook import BookSpec, generate

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

PIPELINE = (
    "pipeline ticks\n"
    "book = synthetic_book(seed=3, duration_s=20)\n"
    'recorded = tick_data("books", symbol="SYN")\n'
)


def test_tick_steps_run_and_tick_data_is_pinned_to_a_version(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cli.catalogrefs import CliDatasetResolver
    from dsl import compile_source
    from flows.catalog import open_catalog
    from flows.graph import store_for
    from tests.flows.support import run_ir

    events = generate(BookSpec(seed=3, duration_s=20))
    version = open_catalog(settings).import_ticks("u7", "books", {"SYN": events}).version
    result = compile_source(PIPELINE, catalog=CliDatasetResolver(settings, "u7"))
    assert result.ir is not None, result.diagnostics
    ir = result.ir
    assert ir.node("recorded").params["version"] == version
    assert ir.node("book").outputs == {"ticks": "ticks"}

    run = run_ir(settings, ir, tmp_path, catalog_namespace="u7")
    assert run.status == "completed", run.error
    record = json.loads((run.run_dir / "run.json").read_text())
    outs = {}
    for node in ("book", "recorded"):
        key = record["nodes"][node]["key"]
        paths = store_for(settings).output_paths(key)
        outs[node] = tickfile.load(paths["ticks"])
    # the generated book in the pipeline is the one generated here, and the stored one reads back
    np.testing.assert_array_equal(np.asarray(outs["book"]), np.asarray(events))
    np.testing.assert_array_equal(np.asarray(outs["recorded"]), np.asarray(events))
    assert ticks.tick_meta(outs["recorded"]).symbol == "SYN"
