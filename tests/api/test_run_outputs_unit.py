"""A run's node outputs read back for the run page (api.services.run_outputs): which ports a
run produced, one frame served whole or thinned (means of runs of rows, worked by hand), the
refusals named; and a multi-symbol run's analysis saying why it has no single price chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from api.errors import NotFound, Unprocessable
from api.services.run_market import analysis
from api.services.run_outputs import MAX_CELLS, output_frame, outputs, thin
from dsl.ir import NodeIR, PipelineIR
from flows.artifacts import ArtifactStore
from flows.spec import NodeRecord, RunRecord

KEY = "ab" + "0" * 62


def _weights(n: int = 6) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {"AAA": np.linspace(0.0, 0.5, n), "BBB": np.linspace(-0.2, 0.3, n)}, index=index
    )


def _run(tmp_path: Path, weights: pd.DataFrame) -> tuple[Path, ArtifactStore]:
    """A run dir whose step ``pf`` (a portfolio_backtest) wrote ``weights`` and ``metrics``."""
    run_dir, store = tmp_path / "runs" / "r1", ArtifactStore(tmp_path / "artifacts")
    run_dir.mkdir(parents=True)
    ir = PipelineIR(
        name="p",
        nodes=(
            NodeIR(id="data", type="dataset", version="1", outputs={"ohlcv": "ohlcv"}),
            NodeIR(
                id="pf",
                type="portfolio_backtest",
                version="1",
                outputs={"weights": "frame", "metrics": "metrics"},
            ),
        ),
    )
    (run_dir / "ir.json").write_text(ir.model_dump_json())
    record = RunRecord(
        run_id="r1",
        pipeline="p",
        status="completed",
        primary_metrics_node="pf",
        nodes={
            "data": NodeRecord(type="dataset", version="1", state="failed"),
            "pf": NodeRecord(type="portfolio_backtest", version="1", state="completed", key=KEY),
        },
    )
    (run_dir / "run.json").write_text(record.model_dump_json())
    staging = store.staging_dir()
    weights.to_parquet(staging / "weights.parquet", index=True)
    (staging / "metrics.json").write_text(json.dumps({"sharpe": 1.0}))
    files = {"weights": {"file": "weights.parquet"}, "metrics": {"file": "metrics.json"}}
    store.commit(KEY, staging, {"outputs": files})
    return run_dir, store


def test_outputs_list_the_ports_of_steps_that_completed_and_mark_the_primary(
    tmp_path: Path,
) -> None:
    run_dir, _ = _run(tmp_path, _weights())
    listed = [(o.node, o.node_type, o.port, o.type, o.primary) for o in outputs(run_dir)]
    # "data" failed: it has no outputs to show
    assert listed == [
        ("pf", "portfolio_backtest", "weights", "frame", True),
        ("pf", "portfolio_backtest", "metrics", "metrics", True),
    ]


def test_a_short_frame_is_served_whole_with_iso_utc_stamps(tmp_path: Path) -> None:
    weights = _weights(3)
    weights.iloc[1, 1] = np.nan
    run_dir, store = _run(tmp_path, weights)
    frame = output_frame(run_dir, store, "pf", "weights", max_rows=1000)
    assert (frame.rows, frame.step, frame.type, frame.index_name) == (3, 1, "frame", "ts")
    assert frame.columns == ["AAA", "BBB"]
    assert frame.index == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
        "2024-01-03T00:00:00+00:00",
    ]
    assert frame.data == [[0.0, 0.25, 0.5], [-0.2, None, 0.3]]


def test_a_long_frame_is_thinned_to_means_of_runs_of_rows(tmp_path: Path) -> None:
    run_dir, store = _run(tmp_path, _weights(6))  # AAA 0, .1, .2, .3, .4, .5
    frame = output_frame(run_dir, store, "pf", "weights", max_rows=2)
    assert (frame.rows, frame.step) == (6, 3)
    assert frame.index == ["2024-01-01T00:00:00+00:00", "2024-01-04T00:00:00+00:00"]
    assert frame.data[0] == pytest.approx([0.1, 0.4])  # (0 + .1 + .2) / 3, (.3 + .4 + .5) / 3
    assert frame.data[1] == pytest.approx([-0.1, 0.2])  # BBB -.2 … .3 by .1


def test_thinning_skips_nan_keeps_the_last_text_and_pads_the_last_run() -> None:
    frame = pd.DataFrame(
        {"x": [1.0, np.nan, 3.0, 5.0, 7.0], "s": ["a", "b", "c", "d", "e"]},
        index=pd.RangeIndex(5),
    )
    out, step = thin(frame, 2)
    assert step == 3
    assert out["x"].tolist() == [2.0, 6.0]  # mean(1, 3); mean(5, 7)
    assert out["s"].tolist() == ["c", "e"] and out.index.tolist() == [0, 3]


def test_a_wide_frame_sends_at_most_max_cells_values(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-01", periods=2_000, freq="h", tz="UTC", name="ts")
    symbols = [f"S{i:03d}" for i in range(500)]
    wide = pd.DataFrame(np.zeros((2_000, 500)), index=index, columns=symbols)
    run_dir, store = _run(tmp_path, wide)
    frame = output_frame(run_dir, store, "pf", "weights", max_rows=5_000)
    assert len(frame.index) * len(frame.columns) <= MAX_CELLS
    assert frame.step == 4 and len(frame.index) == 500  # 2,000 rows / (250,000 // 500)


def test_refusals_name_the_step_and_port(tmp_path: Path) -> None:
    run_dir, store = _run(tmp_path, _weights())
    with pytest.raises(NotFound, match=r"'pf' has no output 'nope' \(its outputs: metrics, w"):
        output_frame(run_dir, store, "pf", "nope", max_rows=10)
    with pytest.raises(NotFound, match="step 'data' has no outputs"):
        output_frame(run_dir, store, "data", "ohlcv", max_rows=10)
    with pytest.raises(Unprocessable, match=r"pf\.metrics is a metrics value, not a table"):
        output_frame(run_dir, store, "pf", "metrics", max_rows=10)
    gone = ArtifactStore(tmp_path / "elsewhere")
    with pytest.raises(NotFound, match="no longer in the artifact store"):
        output_frame(run_dir, gone, "pf", "weights", max_rows=10)


def test_a_multi_symbol_run_says_why_it_has_no_price_chart_or_benchmark(tmp_path: Path) -> None:
    run_dir, _ = _run(tmp_path, _weights())
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02"], tz="UTC")
    bars = pd.DataFrame(
        {"symbol": ["AAA", "BBB"] * 2, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0},
        index=index.rename("ts"),
    )
    bars.to_parquet(run_dir / "prices.parquet")
    (run_dir / "market.json").write_text(json.dumps({"backtest_node": "pf", "data_node": "data"}))
    out = analysis(run_dir)
    assert out.prices == [] and out.benchmark is None
    assert out.prices_note is not None and "multi-symbol run (2 symbols)" in out.prices_note
    assert out.benchmark_note is not None and "single-symbol runs only" in out.benchmark_note
