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

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def _compile(text: str, filename: str, settings=None):  # type: ignore[no-untyped-def]
    """Compile as `alphaforge run` does: `use` lines resolve from examples/nodes, and the
    resolved manifests go to the settings' store, where the flow finds the code."""
    from cli.nodes_dir import LocalNodeResolver
    from dsl import compile_source
    from runners.nodestore import ManifestStore

    resolver = LocalNodeResolver.from_dir(ROOT / "examples" / "nodes")
    result = compile_source(text, filename=filename, resolver=resolver)
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


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_is_recorded_in_mlflow(path: Path, settings) -> None:
    from tests.flows.support import run_ir

    ir = _compile(path.read_text(), str(path), settings)
    result = run_ir(settings, ir, path.parent)
    assert result.status == "completed", result.error
    assert set(result.node_states.values()) == {"completed"}
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
