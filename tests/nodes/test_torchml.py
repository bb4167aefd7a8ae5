"""train_torch and predict: seed determinism, the scaler fitted on training rows only, early
stopping, predictions by timestamp, clear errors, and the model through the artifact files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from nodes.base import ModelRef, NodeContext, ResolvedModel, registry
from nodes.builtin.torchml import TorchModel
from nodes.errors import NodeError
from runners.inprocess import InProcessRunner
from runners.io import file_name, read_value, write_value
from tests.nodes.conftest import run_node

FEATS = ["a", "b", "c"]


def _labelled(n: int = 300, seed: int = 0, *, flip_from: int | None = None) -> pd.DataFrame:
    """Three noisy features; the label is the sign of a + b/2 (0 in a dead band), negated from
    row ``flip_from`` on. ``label_end`` says each label looked 1 row ahead."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts")
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATS, index=index)
    frame["close"] = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    score = frame["a"] + 0.5 * frame["b"]
    label = np.where(score > 0.3, 1.0, np.where(score < -0.3, -1.0, 0.0))
    if flip_from is not None:
        label[flip_from:] = -label[flip_from:]
    frame["label"] = label
    frame["label_return"] = 0.0
    frame["label_end"] = index.shift(1)
    return frame


def _train(frame: pd.DataFrame, **params) -> dict:
    base = {"features": FEATS, "window": 4, "epochs": 6, "hidden": 8, "seed": 7}
    return run_node("train_torch", {"train": frame}, **{**base, **params})


def _same_weights(m1: TorchModel, m2: TorchModel) -> bool:
    return m1.state.keys() == m2.state.keys() and all(
        m1.state[k].dtype == m2.state[k].dtype and m1.state[k].tobytes() == m2.state[k].tobytes()
        for k in m1.state
    )


@pytest.mark.parametrize("arch", ["mlp", "lstm", "tcn"])
def test_training_twice_with_a_seed_gives_bit_identical_weights_and_predictions(arch) -> None:
    frame = _labelled()
    one, two = _train(frame, model=arch), _train(frame, model=arch)
    m1, m2 = one["model"], two["model"]
    assert _same_weights(m1, m2)
    pd.testing.assert_frame_equal(one["history"], two["history"])
    p1 = run_node("predict", {"model": m1, "data": frame}, in_sample=True)
    p2 = run_node("predict", {"model": m2, "data": frame}, in_sample=True)
    for port in ("prediction", "confidence"):
        assert p1[port].to_numpy().tobytes() == p2[port].to_numpy().tobytes()
    other = _train(frame, model=arch, seed=8)["model"]
    assert not _same_weights(m1, other)
    assert m1.meta["device"] == "cpu" and m1.arch == arch
    # the process's torch settings are put back after the node
    import torch

    assert not torch.are_deterministic_algorithms_enabled()


def test_the_scaler_is_fitted_on_the_training_rows_only() -> None:
    frame = _labelled(n=300)
    parts = run_node("train_test_split", {"data": frame}, test=0.25, embargo=3)
    trained = _train(parts["train"], val=0.2)["model"]
    train = parts["train"]
    n_fit = int(np.floor(len(train) * 0.8))
    # mean and std of the training part before the validation split
    assert trained.mean == pytest.approx(train[FEATS].iloc[:n_fit].mean().to_numpy(), abs=1e-12)
    assert trained.std == pytest.approx(train[FEATS].iloc[:n_fit].std(ddof=0).to_numpy())
    # test rows changed wildly: the same train part, the same model and scaler
    mutated = frame.copy()
    test_rows = mutated.index.isin(parts["test"].index)
    mutated.loc[test_rows, FEATS] = mutated.loc[test_rows, FEATS] * 1000.0 + 50.0
    again = run_node("train_test_split", {"data": mutated}, test=0.25, embargo=3)
    pd.testing.assert_frame_equal(again["train"], train)
    retrained = _train(again["train"], val=0.2)["model"]
    assert _same_weights(trained, retrained)
    assert trained.mean.tobytes() == retrained.mean.tobytes()
    assert trained.std.tobytes() == retrained.std.tobytes()
    # validation rows changed: the scaler does not move either (only the early stopping sees them)
    shifted = train.copy()
    shifted.iloc[n_fit:, :3] = shifted.iloc[n_fit:, :3] * 1000.0
    model = _train(shifted, val=0.2)["model"]
    assert model.mean.tobytes() == trained.mean.tobytes()
    assert model.std.tobytes() == trained.std.tobytes()


def test_early_stopping_stops_patience_epochs_after_the_best_and_keeps_its_weights() -> None:
    # the validation rows' labels are the training rule reversed: every epoch that learns the
    # rule makes the validation loss worse, so the best epoch is the first
    frame = _labelled(n=400, flip_from=320)
    out = _train(frame, val=0.2, epochs=50, patience=3, lr=0.01)
    model, history = out["model"], out["history"]
    assert model.best_epoch == 1
    assert model.stopped_epoch == 4 == len(history)
    assert list(history.index) == [1, 2, 3, 4]
    assert history["val_loss"].is_monotonic_increasing
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    # the kept weights are epoch 1's: the same as training one epoch
    first = _train(frame, val=0.2, epochs=1, patience=3, lr=0.01)["model"]
    assert _same_weights(model, first)
    # without patience every epoch runs, the best one is still kept
    full = _train(frame, val=0.2, epochs=6, patience=None, lr=0.01)
    assert len(full["history"]) == 6 and full["model"].best_epoch == 1
    assert _same_weights(full["model"], first)
    summary = model.summary()
    assert summary["best_epoch"] == 1 and summary["best_val_loss"] == history["val_loss"].iloc[0]


def test_the_validation_loss_improving_trains_every_epoch() -> None:
    out = _train(_labelled(n=400), epochs=8, patience=2, lr=0.01, model="mlp")
    history = out["history"]
    assert len(history) == out["model"].stopped_epoch
    best = int(history["val_loss"].idxmin())
    assert out["model"].best_epoch == best
    assert out["model"].stopped_epoch in (8, best + 2)


def test_predictions_are_by_timestamp_nan_without_a_window_and_out_of_sample_by_default() -> None:
    frame = _labelled(n=300)
    parts = run_node("train_test_split", {"data": frame}, test=0.25, embargo=3)
    model = _train(parts["train"], window=5)["model"]
    assert model.seen_until == parts["train"]["label_end"].max()
    test = parts["test"]
    out = run_node("predict", {"model": model, "data": test})
    pred, conf, proba = out["prediction"], out["confidence"], out["proba"]
    assert pred.index.equals(test.index) and conf.index.equals(test.index)
    assert pred.iloc[:4].isna().all() and pred.iloc[4:].notna().all()  # a window of 5 rows
    assert ((pred.dropna() >= -1) & (pred.dropna() <= 1)).all()
    rows = proba.dropna()
    assert np.allclose(rows.sum(axis=1), 1.0)
    assert np.allclose(pred.dropna(), rows["p_up"] - rows["p_down"])
    assert np.allclose(conf.dropna(), rows.max(axis=1))
    # the whole frame: rows the training saw are NaN, the test rows get the same predictions
    # (their windows now reach back into earlier rows, so the first 4 are predicted too)
    whole = run_node("predict", {"model": model, "data": frame})["prediction"]
    assert whole.loc[: model.seen_until].isna().all()
    # (float32 sums over batches of another size: equal to ~1e-7, not bit for bit)
    pd.testing.assert_series_equal(
        whole.loc[test.index[4:]], pred.iloc[4:], check_freq=False, rtol=0, atol=1e-6
    )
    assert whole.loc[test.index[:4]].notna().all()
    inside = run_node("predict", {"model": model, "data": frame}, in_sample=True)["prediction"]
    assert inside.iloc[4:].notna().all()
    # a missing feature inside a window: NaN for the windows holding it
    holes = test.copy()
    holes.iloc[10, 0] = np.nan
    h = run_node("predict", {"model": model, "data": holes})["prediction"]
    assert h.iloc[10:15].isna().all() and h.iloc[15:].notna().all()


def test_a_frame_without_a_feature_column_is_a_clear_error() -> None:
    frame = _labelled(n=200)
    model = _train(frame)["model"]
    with pytest.raises(NodeError, match="lacks the model's feature column 'b'"):
        run_node("predict", {"model": model, "data": frame.drop(columns=["b"])})
    with pytest.raises(NodeError, match="model must come from train_torch"):
        run_node("predict", {"model": {"weights": 1}, "data": frame})


def test_training_errors_name_the_column_or_row() -> None:
    frame = _labelled(n=200)
    with pytest.raises(NodeError, match="no feature column 'zz'"):
        _train(frame, features=["a", "zz"])
    with pytest.raises(NodeError, match="'label_return' is a label column"):
        _train(frame, features=["a", "label_return"])
    bad = frame.copy()
    bad.iloc[7, 1] = np.inf
    with pytest.raises(NodeError, match="feature 'b' is inf at 2024-01-01 07:00"):
        _train(bad)
    two = frame.copy()
    two.iloc[3, two.columns.get_loc("label")] = 2.0
    with pytest.raises(NodeError, match="labels must be -1, 0 or 1"):
        _train(two)
    with pytest.raises(NodeError, match="no label column 'target'"):
        _train(frame, label="target")
    with pytest.raises(NodeError, match="leave 0 training"):
        _train(frame.iloc[:10], window=16)


def test_default_features_are_the_numeric_non_label_columns() -> None:
    frame = _labelled(n=200).assign(symbol="X")
    model = _train(frame, features=None)["model"]
    assert model.features == [*FEATS, "close"]


def test_the_model_goes_through_the_artifact_files_and_predicts_the_same(tmp_path: Path) -> None:
    frame = _labelled(n=300)
    train_path = tmp_path / file_name("train", "frame")
    write_value(frame, "frame", train_path)
    runner = InProcessRunner(base_dir=tmp_path)
    params = {"features": FEATS, "window": 4, "epochs": 3, "hidden": 8, "seed": 7, "model": "lstm"}
    ir = NodeIR(
        id="net",
        type="train_torch",
        version="1.0.0",
        params=params,
        inputs={"train": InputBinding(node="parts", port="train")},
    )
    result = runner.run(ir, {"train": str(train_path)}, output_dir=tmp_path / "net")
    assert result.status == "completed", result.error
    assert any("device cpu" in line for line in result.logs)
    assert result.output_paths["model"].endswith("model.afmodel")
    stored = read_value(result.output_paths["model"])
    assert isinstance(stored, TorchModel)
    assert _same_weights(stored, _train(frame, **params)["model"])
    history = read_value(result.output_paths["history"])
    assert list(history.columns) == ["train_loss", "val_loss"] and len(history) == 3

    pred_ir = NodeIR(
        id="pred",
        type="predict",
        version="1.0.0",
        params={"in_sample": True},
        inputs={
            "model": InputBinding(node="net", port="model"),
            "data": InputBinding(node="parts", port="train"),
        },
    )
    paths = {"model": result.output_paths["model"], "data": str(train_path)}
    done = runner.run(pred_ir, paths, output_dir=tmp_path / "pred")
    assert done.status == "completed", done.error
    stored_pred = read_value(done.output_paths["prediction"])
    direct = run_node("predict", {"model": stored, "data": frame}, in_sample=True)["prediction"]
    np.testing.assert_array_equal(stored_pred.to_numpy(), direct.to_numpy())


def test_the_code_fingerprint_covers_the_networks_and_the_cli_does_not_load_torch() -> None:
    from nodes import codehash

    closure = codehash.module_closure(registry().get("train_torch").__module__)
    assert "nodes.builtin._torchnets" in closure and "nodes.builtin.ml" in closure
    import subprocess

    code = "import sys, nodes.base as b; b.registry(); print('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"


class _OneModel:
    """A model source holding one registered version (what runners.modelregistry does)."""

    def __init__(self, path: Path) -> None:
        self.path, self.asked = path, []

    def resolve(self, ref: ModelRef, *, node: str) -> ResolvedModel:
        self.asked.append(ref)
        if ref.name != "m" or ref.alias not in (None, "champion"):
            raise NodeError(f"{node}: no such model {ref}")
        return ResolvedModel("m", 3, "run-1", self.path, "ab" * 32)


def test_predict_by_registered_name_goes_through_the_contexts_model_source(tmp_path: Path) -> None:
    from nodes import modelfile

    frame = _labelled(n=200)
    model = _train(frame, epochs=2)["model"]
    path = tmp_path / "m.afmodel"
    path.write_bytes(modelfile.dumps(model))
    node_type = registry().get("predict")
    params = node_type.validated_params({"registered": "m", "alias": "champion", "in_sample": True})
    lines: list[str] = []
    source = _OneModel(path)
    node = node_type(NodeContext(models=source, log=lines.append))
    assert node.fingerprint(params) == f"mlflow-model:m/3:run-1:{'ab' * 32}"
    got = node.run({"data": frame}, params)["prediction"]
    direct = run_node("predict", {"model": model, "data": frame}, in_sample=True)["prediction"]
    np.testing.assert_array_equal(got.to_numpy(), direct.to_numpy())
    assert source.asked[-1] == ModelRef("m", None, "champion")
    assert any("registered model m version 3" in line and "run-1" in line for line in lines)
    # no registry in the context: said, not a crash
    bare = node_type(NodeContext())
    with pytest.raises(NodeError, match="needs a model registry, and none is configured"):
        bare.run({"data": frame}, params)
    # a model input and a registered name: one or the other
    with pytest.raises(NodeError, match="not both"):
        node.run({"model": model, "data": frame}, params)
