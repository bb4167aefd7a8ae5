"""A pipeline of the ML building blocks (labels, purged split, gate) compiles against the real
built-in nodes and runs on the sample data; their bad params are in cases/ml_nodes_params.af."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dsl import compile_source
from nodes.base import NodeRegistry
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SOURCE = """
pipeline ml_blocks "Labels, a purged split and a gate"
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fwd    = label_forward_return(data, horizon=5, threshold=0.01)
labels = label_triple_barrier(data, horizon=10, upper_bps=300, lower_bps=200, time_label="sign")
parts  = train_test_split(labels, test_start=2023-01-01, embargo=5)
recent = train_test_split(fwd, test=0.25, purge=5)
score  = zscore(data.close, window=20)
conf   = rsi(data.close, window=14)
signal = gate(score, confidence=conf, threshold=20.0, neutral_zone=0.5, cooldown_bars=5)
result = backtest(data, signal)
"""


def test_the_ml_blocks_compile_and_run_on_the_sample_data(reg: NodeRegistry) -> None:
    result = compile_source(SOURCE, registry=reg)
    assert result.ok, result.format("ml_blocks.af")
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors
    # the splits feed no result yet (no trainer): only unused-step warnings
    assert {d.code for d in result.diagnostics} <= {"AF206"}
    assert result.ir is not None
    nodes = {n.id: n for n in result.ir.nodes}
    assert nodes["parts"].params["test_start"] == "2023-01-01"
    assert nodes["signal"].params["cooldown_bars"] == 5

    graph = MemoryGraph(result.ir, InProcessRunner(base_dir=EXAMPLES), swept=())
    out = graph.evaluate({}, ["labels", "parts", "recent", "result"])
    train, test = out["parts"]["train"], out["parts"]["test"]
    assert test.index[0] >= pd.Timestamp("2023-01-01", tz="UTC")
    labels = pd.concat([train, test])
    assert set(labels["label"].unique()) <= {-1.0, 0.0, 1.0}
    # purged: no training label ends in the 5 embargo bars before the test part, or after
    whole = out["labels"]["labels"]
    first_embargoed = whole.index[whole.index.get_loc(test.index[0]) - 5]
    assert (train["label_end"] < first_embargoed).all()
    assert len(train) < len(whole) - len(test) - 5  # some rows were purged
    assert train.index[-1] < test.index[0]
    recent_train = out["recent"]["train"]
    assert (recent_train["label_end"] < out["recent"]["test"].index[0]).all()
    metrics = out["result"]["metrics"]
    assert metrics["num_trades"] > 0


FEATURES = """
pipeline ml_features "for-expanded indicators as features, labelled and split"
data  = csv_ohlcv(path="data/sample_ohlcv.csv")
for w in [6, 12, 24] {
    rsi_{w} = rsi(data.close, window=w)
}
m     = macd(data.close)
feats = features(data, rsi_6, rsi_12, rsi_24, m.hist)
named = features(data, [rsi_6, m], names=["fast", "trend"], dropna="none")
fwd   = label_forward_return(feats, horizon=5)
parts = train_test_split(fwd, test=0.25, embargo=5)
"""


def test_features_from_a_for_loop_are_labelled_split_and_aligned_by_time(
    reg: NodeRegistry,
) -> None:
    result = compile_source(FEATURES, registry=reg)
    assert result.ok, result.format("ml_features.af")
    assert {d.code for d in result.diagnostics} <= {"AF206"}
    assert result.ir is not None
    node = result.ir.node("feats")
    # the compiler named the columns after the references, in order
    assert node.params["names"] == ["rsi_6", "rsi_12", "rsi_24", "m_hist"]
    assert [b.node for b in node.inputs["features"]] == ["rsi_6", "rsi_12", "rsi_24", "m"]  # type: ignore[union-attr]
    assert result.ir.node("named").params["names"] == ["fast", "trend"]

    graph = MemoryGraph(result.ir, InProcessRunner(base_dir=EXAMPLES), swept=())
    wanted = ["data", "rsi_6", "rsi_12", "rsi_24", "m", "feats", "named", "fwd", "parts"]
    out = graph.evaluate({}, wanted)
    bars = out["data"]["bars"]
    feats = out["feats"]["features"]
    assert list(feats.columns) == [*bars.columns, "rsi_6", "rsi_12", "rsi_24", "m_hist"]
    # the warm-up is dropped: the first row is the first where every feature is defined
    steps = {f"rsi_{w}": out[f"rsi_{w}"]["value"] for w in (6, 12, 24)}
    steps["m_hist"] = out["m"]["hist"]
    defined = pd.concat(steps, axis=1).notna().all(axis=1)
    assert feats.index[0] == defined.idxmax()
    assert feats.index.equals(bars.index[defined.to_numpy()])
    assert not feats[list(steps)].isna().any().any()
    for name, series in steps.items():  # the values of the steps, at the same timestamps
        pd.testing.assert_series_equal(
            feats[name], series.loc[feats.index], check_names=False, check_freq=False
        )
    pd.testing.assert_frame_equal(
        feats[list(bars.columns)], bars.loc[feats.index], check_freq=False
    )
    named = out["named"]["features"]
    assert named.index.equals(bars.index)  # dropna="none" keeps the warm-up
    assert named["trend"].equals(out["m"]["macd"].rename("trend"))

    # labels line up with the features by timestamp: close[t+5] / close[t] - 1 of the bars
    fwd = out["fwd"]["labels"]
    assert fwd.index.equals(feats.index[:-5])
    t = fwd.index[10]
    later = bars.index[bars.index.get_loc(t) + 5]
    assert fwd.loc[t, "label_return"] == pytest.approx(
        bars.loc[later, "close"] / bars.loc[t, "close"] - 1
    )
    assert fwd.loc[t, "label_end"] == later
    assert fwd.loc[t, "rsi_12"] == steps["rsi_12"].loc[t]
    train, test = out["parts"]["train"], out["parts"]["test"]
    assert {"rsi_6", "rsi_12", "rsi_24", "m_hist", "label"} <= set(train.columns)
    assert (train["label_end"] < fwd.index[fwd.index.get_loc(test.index[0]) - 5]).all()


def test_a_clash_the_compiler_cannot_see_fails_the_run_naming_the_column(
    reg: NodeRegistry,
) -> None:
    source = (
        'pipeline again\ndata = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "rsi_6 = rsi(data.close, window=6)\nfeats = features(data, rsi_6)\n"
        "twice = features(feats, rsi_6)\n"
    )
    result = compile_source(source, registry=reg)
    assert result.ir is not None, result.format("again.af")  # feats' columns are not known
    graph = MemoryGraph(result.ir, InProcessRunner(base_dir=EXAMPLES), swept=())
    with pytest.raises(Exception, match="feature 'rsi_6' would replace the frame's column"):
        graph.evaluate({}, ["twice"])


SIZED = """
pipeline ml_sized "gate -> risk_size -> backtest with a stop-loss and a take-profit"
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
score  = zscore(data.close, window=20)
signal = gate(score, neutral_zone=0.5, cooldown_bars=5)
sized  = risk_size(signal, data, fraction=0.5, vol_target=0.2, vol_window=20, max_leverage=0.8)
result = backtest(data, sized, fee_bps=5, stop_loss_bps=150, take_profit_bps=300)
"""


def test_gate_risk_size_and_stops_compile_and_run_on_the_sample_data(reg: NodeRegistry) -> None:
    result = compile_source(SIZED, registry=reg)
    assert result.ok, result.format("ml_sized.af")
    assert not [d for d in result.diagnostics if d.is_error]
    assert result.ir is not None
    graph = MemoryGraph(result.ir, InProcessRunner(base_dir=EXAMPLES), swept=())
    out = graph.evaluate({}, ["sized", "result"])
    sized = out["sized"]["signal"]
    assert sized.abs().max() <= 0.8 and (sized.iloc[:20] == 0).all()  # cap; vol warm-up
    assert sized[sized != 0].abs().min() < 0.5  # scaled, not only the fraction
    trades = out["result"]["trades"]
    assert {"stop_loss", "take_profit"} <= set(trades["exit_reason"])
    assert out["result"]["metrics"]["num_trades"] == int((~trades["is_open"]).sum())
