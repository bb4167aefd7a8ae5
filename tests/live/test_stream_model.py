"""A model registered in MLflow as a node of a stream pipeline: a tracked run trains and
registers a small MLP (alias champion); a stream pipeline predicts with it, by name and alias,
on each replayed bar, and each prediction is the batch run's over the same bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsl import compile_source
from live.stream import StreamPipeline, StreamService
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph
from tests.flows.support import run_ir
from tests.live.stream_support import read_csv_events, workdir, write_af

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

FEATURES = """
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
r6     = rsi(data.close, window=6)
r14    = rsi(data.close, window=14)
feats  = features(data, r6, r14)
"""
TRAIN = (
    "pipeline stream_model\n"
    + FEATURES
    + "labels = label_forward_return(feats, horizon=3, threshold=0.003)\n"
    + "parts  = train_test_split(labels, test=0.3, embargo=3)\n"
    + 'model  = train_torch(parts.train, features=["r6", "r14"], model="mlp", window=4, '
    + 'hidden=8, epochs=3, patience=2, seed=3, alias="champion")\n'
    + "pred   = predict(model, feats)\n"
    + "signal = gate(pred.prediction, confidence=pred.confidence, threshold=0.4)\n"
    + "result = backtest(data, signal)\n"
)
STREAM = (
    "pipeline live_model\n"
    + FEATURES
    + 'pred = predict(feats, registered="stream_model.model", alias="champion")\n'
    + "stream {\n"
    + "    source = replay(start=700, limit=25)\n"
    + '    emit pred.prediction to csv_append(path="out/pred.csv")\n'
    + "}\n"
)


def test_a_registered_model_predicts_on_each_live_bar(tmp_path: Path, settings: Any) -> None:
    folder = workdir(tmp_path)
    trained = compile_source(TRAIN)
    assert trained.ok and trained.ir is not None, trained.format("train.af")
    record = run_ir(settings, trained.ir, folder)
    assert record.status == "completed", record.error

    ir = compile_source(write_af(folder, "live", STREAM).read_text()).ir
    assert ir is not None
    pipeline = StreamPipeline(ir, base_dir=folder, state_dir=folder / "s", settings=settings)
    health = StreamService([pipeline]).run_until_end(timeout_s=300)["pipelines"]["live_model"]
    assert health["state"] == "ended" and health["errors"] == [], health
    assert health["evaluations"] == 25

    events = read_csv_events(folder / "out" / "pred.csv")
    assert len(events) == 25 and events["value"].notna().all()
    # the batch run over the same bars, with the same registered model
    data = ir.node("data")
    params = {**data.params, "start": health["warmup_from"][:10], "end": health["last_bar"][:10]}
    nodes = tuple(n.model_copy(update={"params": params}) if n is data else n for n in ir.nodes)
    batch_ir = ir.model_copy(update={"nodes": nodes, "stream": None})
    runner = InProcessRunner(base_dir=folder, mlflow_uri=settings.mlflow_uri)
    batch = MemoryGraph(batch_ir, runner, swept=[]).evaluate({}, ["pred"])
    expected = batch["pred"]["prediction"].reindex(events["ts"])
    np.testing.assert_allclose(events["value"].to_numpy(), expected.to_numpy(), atol=1e-9)
    assert events["value"].nunique() > 1  # the model's output moves with the bars
