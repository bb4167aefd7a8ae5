"""A pipeline of the ML building blocks (labels, purged split, gate) compiles against the real
built-in nodes and runs on the sample data; their bad params are in cases/ml_nodes_params.af."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
