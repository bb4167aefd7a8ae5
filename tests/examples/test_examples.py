"""Every example pipeline, compiled from its .af text and run through Prefect and MLflow;
and a real-data run on GOOG daily bars (from the ``backtesting`` package's wheel)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.flows.support import check_mlflow_record, task_runs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.af"))
# Trained then traded again from the model registry: run as a pair, in one MLflow store
ML_PAIR = ("ml_lstm_pipeline", "ml_registered_predict")
# Reads the catalog (its data is imported first): tests/examples/test_momentum_rotation.py
CATALOG = ("momentum_rotation",)
# Tick data, not the 900 sample bars: tests/examples/test_tick_grid_mm.py and
# test_tick_custom_strategy.py (through the CLI)
TICKS = ("tick_grid_mm", "tick_custom_strategy")
ALONE = [p for p in EXAMPLES if p.stem not in ML_PAIR + CATALOG + TICKS]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def _compile(text: str, filename: str, settings=None):  # type: ignore[no-untyped-def]
    """Compile as `alphaforge run` does: `use` lines resolve from examples/nodes (strategy
    modules from files next to the pipeline), and the resolved manifests go to the settings'
    store, where the flow finds the code."""
    from cli.nodes_dir import LocalNodeResolver
    from dsl import compile_source
    from live.strategyrefs import FileStrategyResolver
    from runners.nodestore import ManifestStore

    resolver = LocalNodeResolver.from_dir(ROOT / "examples" / "nodes")
    strategies = FileStrategyResolver(Path(filename).parent)  # strategy_backtest's modules
    result = compile_source(text, filename=filename, resolver=resolver, strategies=strategies)
    assert result.ok, "\n".join(d.format(filename) for d in result.diagnostics)
    if settings is not None:
        resolver.store_into(ManifestStore(settings.root / "custom-nodes"))
    return result.ir


def test_the_examples_are_there() -> None:
    names = {p.stem for p in EXAMPLES}
    assert names >= {"sma_crossover", "rsi_mean_reversion", "macd_trend", "bollinger_breakout"}
    assert "donchian_custom_node" in names  # a Python custom node, run in the Docker sandbox
    assert (ROOT / "examples" / "data" / "sample_ohlcv.csv").exists()


def test_sma_crossover_is_the_language_guide_sample() -> None:
    text = (ROOT / "examples" / "sma_crossover.af").read_text()
    assert 'pipeline sma_crossover "Moving Average Crossover (Sample)"' in text
    assert 'data   = csv_ohlcv(path="data/sample_ohlcv.csv")' in text
    assert "result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)" in text


@pytest.mark.parametrize("path", ALONE, ids=[p.stem for p in ALONE])
def test_example_runs_and_is_recorded_in_mlflow(path: Path, settings) -> None:
    from tests.flows.support import run_ir

    ir = _compile(path.read_text(), str(path), settings)
    result = run_ir(settings, ir, path.parent)
    _check_example_run(settings, result, ir)


def test_the_ml_examples_train_register_and_trade_the_registered_model_again(settings) -> None:
    """ml_lstm_pipeline trains an LSTM and registers it (alias champion); ml_registered_predict
    loads that version from the registry instead of training: the same predictions, so the
    same trades and metrics, and each run says which model it made or used."""
    from tests.flows.support import run_ir

    train_path, predict_path = (ROOT / "examples" / f"{n}.af" for n in ML_PAIR)
    assert {train_path, predict_path} <= set(EXAMPLES)
    ir = _compile(train_path.read_text(), str(train_path), settings)
    trained = run_ir(settings, ir, train_path.parent)
    _check_example_run(settings, trained, ir)
    record = json.loads((trained.run_dir / "run.json").read_text())
    model = record["models"]["model"]
    assert model["registered_name"] == "ml_lstm_pipeline.model"
    assert model["registered_version"] == 1 and model["alias"] == "champion"
    assert (trained.run_dir / model["file"]).stat().st_size == model["bytes"]
    assert len(model["history"]) == model["summary"]["stopped_epoch"] >= 1

    ir2 = _compile(predict_path.read_text(), str(predict_path), settings)
    assert "train_torch" not in {n.type for n in ir2.nodes}
    again = run_ir(settings, ir2, predict_path.parent)
    _check_example_run(settings, again, ir2, fresh=False)  # the features: cached
    assert again.node_states["pred"] == "completed"
    log = (again.run_dir / "run.log").read_text()
    assert "registered model ml_lstm_pipeline.model version 1" in log
    assert again.metrics == trained.metrics
    a = pd.read_csv(trained.run_dir / "trades.csv")
    b = pd.read_csv(again.run_dir / "trades.csv")
    pd.testing.assert_frame_equal(a, b)


def _check_example_run(settings, result, ir, *, fresh: bool = True) -> None:  # type: ignore[no-untyped-def]
    """What every example's run shows: all steps done (computed, unless ``fresh`` is False:
    then some may come from the cache), trades over the 900 sample bars, the MLflow record, the
    sandbox record, the Prefect task runs, the trades and equity files."""
    assert result.status == "completed", result.error
    states = set(result.node_states.values())
    assert states == {"completed"} if fresh else states <= {"completed", "cached"}
    assert result.metrics["num_trades"] > 0
    assert result.metrics["bars"] == 900
    check_mlflow_record(settings.mlflow_uri, result, ir)
    record = json.loads((result.run_dir / "run.json").read_text())
    custom = [n for n in ir.nodes if n.runtime != "builtin"]
    if custom:  # user code ran in the sandbox, its image recorded and its output in the log
        assert record["sandbox"]["runner"] == "docker"
        assert set(record["sandbox"]["images"]) == {n.runtime for n in custom}
        assert all(d.startswith("sha256:") for d in record["sandbox"]["images"].values())
        log = (result.run_dir / "run.log").read_text()
        assert all(f"[{n.id}] " in log for n in custom)
    else:
        assert record["sandbox"] is None
    names = sorted(r.name for r in task_runs(result.flow_run_id, expected=len(ir.nodes)))
    assert names == sorted(ir.node_ids())
    trades = pd.read_csv(result.run_dir / "trades.csv")
    assert (~trades["is_open"]).sum() == result.metrics["num_trades"]  # over closed trades
    equity = pd.read_parquet(result.run_dir / "equity.parquet")
    assert equity["equity"].iloc[-1] == pytest.approx(result.metrics["final_equity"])


def _goog_csv(tmp_path: Path) -> Path:
    import backtesting

    src = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
    raw = pd.read_csv(src)
    # The wheel's CSV leaves the date column unnamed; name it so the loader can find it.
    raw = raw.rename(columns={raw.columns[0]: "date"})
    out = tmp_path / "GOOG.csv"
    raw.to_csv(out, index=False)
    return out


def test_sma_crossover_on_real_goog_daily_bars(settings, tmp_path) -> None:
    from tests.flows.support import run_ir

    csv = _goog_csv(tmp_path)
    text = (ROOT / "examples" / "sma_crossover.af").read_text()
    text = text.replace('"data/sample_ohlcv.csv"', '"GOOG.csv"')
    ir = _compile(text, "goog.af")
    result = run_ir(settings, ir, tmp_path)
    assert result.status == "completed", result.error
    m = result.metrics
    assert m["bars"] == len(pd.read_csv(csv)) == 2148
    assert m["start"].startswith("2004-08-19") and m["end"].startswith("2013-03-01")
    assert m["num_trades"] > 10
    assert -1 < m["max_drawdown"] < 0
    record = json.loads((result.run_dir / "run.json").read_text())
    assert len(record["datasets"]["data"]["fingerprint"]) == 64
