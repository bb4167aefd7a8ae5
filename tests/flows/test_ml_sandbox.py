"""A model trained by a custom node in the sandbox, through a real tracked run (Docker,
Prefect, MLflow): examples/ml_sandbox_training.af, whose ``sandbox_mlp`` node (examples/nodes)
trains with torch in the sandbox. Its model is stored, traded by the built-in ``predict``,
logged to MLflow (per-epoch losses, the pt2 flavour) and registered as a ``train_torch`` model
is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.nodes_dir import LocalNodeResolver
from dsl import compile_source
from nodes import modelfile
from runners.io import read_value
from runners.nodestore import ManifestStore
from tests.flows.support import run_ir
from tests.nodes.conftest import run_node

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.usefixtures("prefect_api")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _output(run_dir: Path, node_id: str, port: str) -> Any:
    record = json.loads((run_dir / "nodes" / f"{node_id}.json").read_text())
    return read_value(record["output_paths"][port])


def test_a_model_trained_in_the_sandbox_is_traded_logged_and_registered(
    settings: Any, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = EXAMPLES / "ml_sandbox_training.af"
    resolver = LocalNodeResolver.from_dir(EXAMPLES / "nodes")
    compiled = compile_source(path.read_text(), filename=str(path), resolver=resolver)
    assert compiled.ok and compiled.ir is not None, compiled.format(str(path))
    ir = compiled.ir
    node = next(n for n in ir.nodes if n.id == "model")
    assert (node.type, node.runtime, node.outputs) == ("sandbox_mlp", "python", {"model": "model"})
    resolver.store_into(ManifestStore(settings.root / "custom-nodes"))

    result = run_ir(settings, ir, EXAMPLES)
    assert result.status == "completed", result.error
    assert result.node_states["model"] == "completed"
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["sandbox"]["runner"] == "docker" and set(record["sandbox"]["images"]) == {
        "python"
    }
    log = (result.run_dir / "run.log").read_text()
    assert "[model] best epoch " in log

    # kept in the run directory and registered like a train_torch model
    rec = result.models["model"]
    assert (rec["type"], rec["kind"]) == ("sandbox_mlp", "torch_classifier")
    assert (rec["registered_name"], rec["registered_version"]) == ("ml_sandbox_training.model", 1)
    stored = result.run_dir / rec["file"]
    assert rec["sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    model = modelfile.load(stored)
    assert rec["history"] == model.history and len(model.history) == 60
    assert model.features == ["r6", "r14", "m_hist"] and model.window == 8

    # predict traded it: its output is the stored model's predictions on the features
    feats = _output(result.run_dir, "feats", "features")
    pred = _output(result.run_dir, "pred", "prediction")
    again = run_node("predict", {"model": model, "data": feats})["prediction"]
    np.testing.assert_array_equal(pred.to_numpy(), again.to_numpy())
    assert np.isfinite(pred.to_numpy()).sum() > 100  # the bars after everything it saw

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    version = client.get_model_version("ml_sandbox_training.model", "1")
    assert version.run_id == result.mlflow_run_id
    assert version.tags["alphaforge.node"] == "model"
    assert version.tags["alphaforge.model_sha256"] == rec["sha256"]
    history = client.get_metric_history(result.mlflow_run_id, "model.val_loss")
    assert sorted((m.step, m.value) for m in history) == [
        (h["epoch"], pytest.approx(h["val_loss"])) for h in model.history
    ]
    # the pt2 flavour holds the very network
    import mlflow.pytorch
    import torch

    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", settings.mlflow_uri)
    loaded = mlflow.pytorch.load_model("models:/ml_sandbox_training.model/1")
    x = np.random.default_rng(0).normal(size=(5, 8, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = loaded(torch.from_numpy(x)).numpy()
        ours = model.network(torch)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6)
