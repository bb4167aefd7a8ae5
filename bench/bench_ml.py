"""Benchmark (issue 12 #9): the example LSTM's training time on CPU, and inference throughput.

The steps of ``examples/ml_lstm_pipeline.af`` before ``train_torch`` run once through the
in-process runner (the files a run writes); then, timed alone:

- ``train_torch`` on the example's training split, as the example sets it (LSTM, window 12,
  hidden 16, early stopping), ``--repeats`` times (median): target ≤ 60 s ("trains in under a
  minute on CPU"); each repeat must give bit-identical weights (the seed's promise);
  The first repeat includes importing torch (printed apart: what a fresh run process pays);
- ``predict`` with that model on the sample's feature rows and on ``--rows`` rows (the feature
  rows repeated on one-minute stamps, every row predicted: ``in_sample=true``), in rows per
  second: target ≥ 50,000 rows/s (a live signal needs a few rows per bar; re-scoring years of
  minute bars for research needs this order).

Run with ``python bench/bench_ml.py [--repeats N] [--rows N] [--threads N]``; :func:`main`
returns the numbers as a dict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLE = ROOT / "examples" / "ml_lstm_pipeline.af"
TARGET_TRAIN_S = 60.0
TARGET_ROWS_PER_S = 50_000.0


def _prepare(work: Path) -> tuple[Any, Any, Any]:
    """Run the example's steps before ``model`` in process; returns the train_torch IR node,
    the training frame and the feature frame."""
    from dsl import compile_source
    from runners.inprocess import InProcessRunner
    from runners.io import read_value

    result = compile_source(EXAMPLE.read_text(), filename=str(EXAMPLE))
    assert result.ok and result.ir is not None, result.diagnostics
    ir = result.ir
    runner = InProcessRunner(base_dir=EXAMPLE.parent)
    outputs: dict[str, dict[str, str]] = {}
    train_node = None
    for node in ir.nodes:
        if node.type == "train_torch":
            train_node = node
            break
        paths: dict[str, Any] = {}
        for port, binding in node.inputs.items():
            if isinstance(binding, tuple):
                paths[port] = [outputs[b.node][b.port] for b in binding]
            else:
                paths[port] = outputs[binding.node][binding.port]
        done = runner.run(node, paths, output_dir=work / node.id)
        assert done.status == "completed", done.error
        outputs[node.id] = dict(done.output_paths)
    assert train_node is not None
    binding = train_node.inputs["train"]
    assert not isinstance(binding, tuple)
    train = read_value(outputs[binding.node][binding.port])
    feats = read_value(outputs["feats"]["features"])
    return train_node, train, feats


def _tiled(frame: Any, rows: int) -> Any:
    """``frame``'s rows repeated to ``rows`` rows on one-minute timestamps (predict reads the
    rows in order; daily stamps for 200,000 rows would pass pandas' last date)."""
    import numpy as np
    import pandas as pd

    reps = -(-rows // len(frame))
    out = pd.DataFrame(
        {c: np.tile(frame[c].to_numpy(), reps)[:rows] for c in frame.columns},
        index=pd.date_range(frame.index[0], periods=rows, freq="min", name=frame.index.name),
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=None, help="train_torch's threads param")
    args = parser.parse_args(argv)

    from nodes.base import registry

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        node, train, feats = _prepare(Path(tmp))
        prep_s = time.perf_counter() - t0
    params = dict(node.params)
    if args.threads is not None:
        params["threads"] = args.threads
    trainer = registry().get("train_torch")
    tparams = trainer.validated_params(params)
    print(
        f"example: {EXAMPLE.name}; training rows {len(train)}, features "
        f"{tparams.features}, model {tparams.model} window {tparams.window} hidden "
        f"{tparams.hidden}, epochs ≤ {tparams.epochs}, {tparams.threads} thread(s); "
        f"steps before training {prep_s:.2f} s; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    times: list[float] = []
    models: list[Any] = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        out = trainer().run({"train": train}, tparams)
        times.append(time.perf_counter() - t0)
        models.append(out["model"])
        m = out["model"]
        print(
            f"  train {i + 1}: {times[-1]:.2f} s, {m.stopped_epoch} epochs "
            f"({times[-1] / max(m.stopped_epoch, 1):.3f} s/epoch), best epoch {m.best_epoch}",
            flush=True,
        )
    same = all(
        m.state.keys() == models[0].state.keys()
        and all(m.state[k].tobytes() == models[0].state[k].tobytes() for k in m.state)
        for m in models[1:]
    )
    model = models[0]
    predictor = registry().get("predict")
    pparams = predictor.validated_params({"in_sample": True})
    rates: dict[str, float] = {}
    for label, frame in (("sample", feats), ("tiled", _tiled(feats, args.rows))):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            pred = predictor().run({"model": model, "data": frame}, pparams)["prediction"]
            best = min(best, time.perf_counter() - t0)
        assert len(pred) == len(frame)
        rates[label] = len(frame) / best
        print(f"  predict {len(frame):,} rows: {best:.3f} s = {rates[label]:,.0f} rows/s")
    train_s = statistics.median(times)
    meets = max(times) <= TARGET_TRAIN_S and rates["tiled"] >= TARGET_ROWS_PER_S and same
    print(
        f"train_torch (median of {args.repeats}): {train_s:.2f} s, the first (with torch's "
        f"import) {times[0]:.2f} s (target ≤ {TARGET_TRAIN_S:.0f} s); identical weights every "
        f"repeat: {same}; predict {rates['tiled']:,.0f} rows/s "
        f"(target ≥ {TARGET_ROWS_PER_S:,.0f}): {'meets' if meets else 'MISSES'}"
    )
    return {
        "figure": "example LSTM training, median",
        "median_s": train_s,
        "target_s": TARGET_TRAIN_S,
        "train_runs_s": times,
        "first_train_s": times[0],
        "epochs": model.stopped_epoch,
        "deterministic": same,
        "predict_rows_per_s": rates["tiled"],
        "predict_sample_rows_per_s": rates["sample"],
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "meets_target": meets,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
