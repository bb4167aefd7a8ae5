"""The trained ML pipeline compiles and runs in memory on the sample data: features → labels →
purged split → train_torch → predict → gate → backtest, trading out of sample only. Bad params
of the two nodes are in cases/ml_torch_params.af."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from dsl import compile_source
from nodes.base import NodeRegistry
from nodes.builtin.torchml import TorchModel
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SOURCE = """
pipeline ml_torch "A small LSTM on indicator features, traded out of sample"
data  = csv_ohlcv(path="data/sample_ohlcv.csv")
for w in [6, 12, 24] {
    rsi_{w} = rsi(data.close, window=w)
}
m     = macd(data.close)
feats = features(data, rsi_6, rsi_12, rsi_24, m.hist)
fwd   = label_forward_return(feats, horizon=5, threshold=0.005)
parts = train_test_split(fwd, test=0.3, embargo=5)
net   = train_torch(parts.train, features=["rsi_6", "rsi_12", "rsi_24", "m_hist"], model="lstm",
                    window=10, hidden=16, layers=1, epochs=15, patience=4, lr=0.005, seed=3)
oos   = predict(net, parts.test)
pred  = predict(net, feats)
signal = gate(pred.prediction, confidence=pred.confidence, threshold=0.4, neutral_zone=0.05)
result = backtest(data, signal)
"""


def test_the_trained_pipeline_compiles_runs_and_trades_out_of_sample(reg: NodeRegistry) -> None:
    result = compile_source(SOURCE, registry=reg)
    assert result.ok, result.format("ml_torch.af")
    assert {d.code for d in result.diagnostics} <= {"AF206"}  # oos feeds no result
    assert result.ir is not None
    assert result.ir.node("net").outputs["model"] == "model"

    graph = MemoryGraph(result.ir, InProcessRunner(base_dir=EXAMPLES), swept=())
    t0 = time.perf_counter()
    out = graph.evaluate({}, ["feats", "parts", "net", "oos", "pred", "signal", "result"])
    assert time.perf_counter() - t0 < 60  # well under a minute on a CPU
    model = out["net"]["model"]
    assert isinstance(model, TorchModel) and model.arch == "lstm"
    history = out["net"]["history"]
    assert len(history) == model.stopped_epoch <= 15
    assert np.isfinite(history.to_numpy()).all()

    test = out["parts"]["test"]
    oos = out["oos"]["prediction"]
    assert oos.index.equals(test.index)
    assert oos.iloc[:9].isna().all() and oos.iloc[9:].notna().all()  # window 10

    pred = out["pred"]["prediction"]
    feats = out["feats"]["features"]
    assert pred.index.equals(feats.index)
    # nothing before the end of the last training label is predicted: no in-sample signal
    assert model.seen_until < test.index[0]
    assert pred.loc[: model.seen_until].isna().all()
    assert pred.loc[test.index[0] :].notna().all()  # to the last bar, past the labels' end
    assert pred.index[-1] > test.index[-1]
    pd.testing.assert_series_equal(
        pred.loc[oos.index[9:]], oos.iloc[9:], check_freq=False, rtol=0, atol=1e-6
    )

    signal = out["signal"]["signal"]
    assert (signal.loc[: model.seen_until] == 0).all()
    metrics = out["result"]["metrics"]
    assert metrics["num_trades"] > 0
    trades = out["result"]["trades"]
    assert (trades["entry_ts"] > model.seen_until).all()
