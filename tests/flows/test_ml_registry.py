"""Trained models through real runs: logged to MLflow (per-epoch losses, the pt2 flavour with
signature), registered with run and IR-hash tags, and loaded by a second pipeline by name,
version and alias; an alias that moves is never served from the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dsl import compile_source
from nodes import modelfile
from tests.flows.support import run_ir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FEATURES = """
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
r6     = rsi(data.close, window=6)
r14    = rsi(data.close, window=14)
m      = macd(data.close)
feats  = features(data, r6, r14, m.hist)
"""
TRADE = """
signal = gate(pred.prediction, confidence=pred.confidence, threshold=0.4)
result = backtest(data, signal, fee_bps=5)
"""


def _train(seed: int, alias: str = "champion") -> str:
    return (
        "pipeline ml_reg\n"
        + FEATURES
        + "labels = label_forward_return(feats, horizon=3, threshold=0.003)\n"
        + "parts  = train_test_split(labels, test=0.3, embargo=3)\n"
        + 'model = train_torch(parts.train, features=["r6", "r14", "m_hist"], window=4, '
        + f'hidden=8, epochs=5, patience=3, seed={seed}, alias="{alias}")\n'
        + "pred   = predict(model, feats)\n"
        + TRADE
    )


def _use(ref: str) -> str:
    return "pipeline ml_use\n" + FEATURES + f"pred = predict(feats, {ref})\n" + TRADE


def _run(settings: Any, source: str) -> Any:
    result = compile_source(source)
    assert result.ok and result.ir is not None, result.format("t.af")
    return run_ir(settings, result.ir, EXAMPLES), result.ir


def _client(settings: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def test_a_trained_model_is_registered_and_reused_by_name_version_and_alias(
    settings, monkeypatch
) -> None:
    first, ir = _run(settings, _train(seed=1))
    assert first.status == "completed", first.error
    rec = first.models["model"]
    assert (rec["registered_name"], rec["registered_version"], rec["alias"]) == (
        "ml_reg.model",
        1,
        "champion",
    )
    # the model file in the run directory is the node's output, byte for byte
    path = first.run_dir / rec["file"]
    assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    model = modelfile.load(path)
    assert rec["history"] == model.history and 1 <= len(model.history) <= 5

    client = _client(settings)
    version = client.get_model_version("ml_reg.model", "1")
    assert version.run_id == first.mlflow_run_id
    assert version.tags["alphaforge.run_id"] == first.run_id
    assert version.tags["alphaforge.ir_hash"] == ir.content_hash()
    assert int(client.get_model_version_by_alias("ml_reg.model", "champion").version) == 1
    # per-epoch losses with the epoch as the step
    for name in ("train_loss", "val_loss"):
        hist = client.get_metric_history(first.mlflow_run_id, f"model.{name}")
        got = sorted((m.step, m.value) for m in hist)
        assert got == [(h["epoch"], pytest.approx(h[name])) for h in model.history]
    # the final figures as metrics, what the model is as params
    run = client.get_run(first.mlflow_run_id)
    summary = model.summary()
    assert run.data.metrics["model.best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert run.data.metrics["model.best_epoch"] == model.best_epoch
    assert run.data.metrics["model.stopped_epoch"] == model.stopped_epoch == len(model.history)
    params = run.data.params
    assert params["model.model.arch"] == "mlp" and params["model.model.window"] == "4"
    assert params["model.model.features"] == "r6,r14,m_hist"
    assert params["model.model.device"] == "cpu" and params["model.model.torch_version"]
    assert params["model.seed"] == "1"  # the node's own params, as for every step
    # MLflow's pytorch flavour (pt2) holds the same network: same logits on the same windows
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import get_model_info

    uri = "models:/ml_reg.model/1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", settings.mlflow_uri)
    info = get_model_info(uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 4, 3)
    loaded = mlflow.pytorch.load_model(uri)
    x = np.random.default_rng(0).normal(size=(7, 4, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = loaded(torch.from_numpy(x)).numpy()
        ours = model.network(torch)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6)

    # a second pipeline trades the registered model: the same predictions, the same results
    by_name, _ = _run(settings, _use('registered="ml_reg.model"'))
    assert by_name.status == "completed", by_name.error
    assert by_name.metrics == first.metrics
    assert "mlflow-model:ml_reg.model/1:" in by_name.datasets["pred"]["fingerprint"]
    log = (by_name.run_dir / "run.log").read_text()
    assert "registered model ml_reg.model version 1" in log

    # the same training again (a cache hit): the latest version is reused, not duplicated
    again, _ = _run(settings, _train(seed=1))
    assert again.node_states["model"] == "cached"
    assert again.models["model"]["registered_version"] == 1
    # another seed: version 2, and the alias moves to it
    second, _ = _run(settings, _train(seed=2))
    assert second.models["model"]["registered_version"] == 2
    assert second.metrics != first.metrics

    pinned, _ = _run(settings, _use('registered="ml_reg.model", version=1'))
    assert pinned.metrics == first.metrics
    moved, _ = _run(settings, _use('registered="ml_reg.model", alias="champion"'))
    # the alias now names version 2: recomputed, never the cached version-1 predictions
    assert moved.node_states["pred"] == "completed"
    assert moved.metrics == second.metrics


def test_a_missing_registered_model_fails_with_what_there_is(settings) -> None:
    nothing, _ = _run(settings, _use('registered="ml_reg.model"'))
    assert nothing.status == "failed"
    assert "no model has been registered yet" in nothing.error
    first, _ = _run(settings, _train(seed=1))
    assert first.status == "completed", first.error
    unknown, _ = _run(settings, _use('registered="ml_reg.modle"'))
    assert "no registered model 'ml_reg.modle' (registered models: ml_reg.model)" in unknown.error
    wrong, _ = _run(settings, _use('registered="ml_reg.model", version=9'))
    assert "ml_reg.model has no version 9 (versions [1], aliases ['champion'])" in wrong.error
    alias, _ = _run(settings, _use('registered="ml_reg.model", alias="prod"'))
    assert "ml_reg.model has no alias 'prod'" in alias.error


def test_a_configured_sqlite_store_keeps_artifacts_beside_it_whatever_the_working_dir(
    settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ALPHAFORGE_MLFLOW_TRACKING_URI a ``sqlite:///`` file, MLflow's own default would put
    the artifacts in ``./mlruns`` of the process that made the experiment; Prefect gives each
    flow run a working directory of its own, so a later run could not find the model."""
    db = tmp_path / "shared" / "mlflow.db"
    configured = settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{db}"})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", configured.mlflow_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", configured.mlflow_uri)
    first, second = tmp_path / "cwd-1", tmp_path / "cwd-2"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    trained, _ = _run(configured, _train(seed=5))
    assert trained.status == "completed", trained.error
    experiment = _client(configured).get_experiment(trained.mlflow_experiment_id)
    assert experiment.artifact_location == (db.parent / "mlartifacts" / "ml_reg").as_uri()
    assert not (first / "mlruns").exists()
    monkeypatch.chdir(second)
    used, _ = _run(configured, _use('registered="ml_reg.model", alias="champion"'))
    assert used.status == "completed", used.error
    assert used.node_states["pred"] == "completed"
