"""Models in the web app (issue 12, items 4 and 7): a web run that trains a model shows its
training curve, registry name, version and MLflow link; its model file downloads and loads back
as the very model that was registered; the models page lists registered models with their source
runs, to those who may see the runs; a second pipeline trades the registered model by name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from nodes import modelfile
from nodes.builtin.torchml import TorchModel
from tests.api.conftest import Account, settings_for
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

MLFLOW_UI = "http://mlflow.example:5000"
FEATURES = """\
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
r      = rsi(data.close, window=14)
m      = macd(data.close)
feats  = features(data, r, m.hist)
"""
TRAIN = (
    'pipeline ml_web "ML in the web app"\n\n'
    + FEATURES
    + """labels = label_forward_return(feats, horizon=3, threshold=0.003)
parts  = train_test_split(labels, test=0.3, embargo=3)
net    = train_torch(parts.train, features=["r", "m_hist"], model="mlp", window=4, hidden=8,
                     epochs=4, seed=3, alias="staging")
pred   = predict(net, feats)
signal = gate(pred.prediction, threshold=0.02)
result = backtest(data, signal)
"""
)
REUSE = (
    'pipeline ml_web_reuse "The registered model, traded again"\n\n'
    + FEATURES
    + """pred   = predict(feats, registered="ml_web.net", alias="staging")
signal = gate(pred.prediction, threshold=0.02)
result = backtest(data, signal)
"""
)


@pytest.fixture
def api_settings(
    db_url: str, tmp_path: Path, prefect_stack: Stack, test_nodes: None
) -> ApiSettings:
    """The stack's settings with an MLflow UI to link to (nothing needs to answer there)."""
    return settings_for(
        db_url,
        tmp_path,
        prefect_api_url=prefect_stack.api_url,
        mlflow_ui_url=MLFLOW_UI,
        # the stack's worker has a data dir of its own: a configured store is what both use
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'shared-mlflow.db'}",
    )


def _start(client: TestClient, who: Account, name: str, source: str):  # type: ignore[no-untyped-def]
    resp = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return client.post(f"/api/pipelines/{resp.json()['id']}/runs", json={}, headers=who.headers)


def _run(client: TestClient, who: Account, name: str, source: str) -> dict:
    started = _start(client, who, name, source)
    assert started.status_code == 202, started.text

    def final() -> dict | None:
        run = client.get(f"/api/runs/{started.json()['id']}", headers=who.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 240, what="the run to end")
    assert run["status"] == "completed", run["error"]
    return run


def test_a_web_run_shows_downloads_and_registers_its_model_and_a_second_pipeline_reuses_it(
    client: TestClient, alice: Account, bob: Account, admin: Account
) -> None:
    assert client.get("/api/models", headers=alice.headers).json() == []  # no store yet
    run = _run(client, alice, "ml_web", TRAIN)
    [model] = run["models"]
    assert (model["key"], model["node"], model["type"]) == ("net", "net", "train_torch")
    assert model["kind"] == "torch_classifier"
    assert (model["registered_name"], model["registered_version"]) == ("ml_web.net", 1)
    assert model["alias"] == "staging"
    assert model["registry_url"] == f"{MLFLOW_UI}/#/models/ml_web.net/versions/1"
    summary = model["summary"]
    assert summary["arch"] == "mlp" and summary["window"] == 4
    assert len(model["history"]) == summary["stopped_epoch"] >= 1
    assert [h["epoch"] for h in model["history"]] == list(range(1, summary["stopped_epoch"] + 1))

    # the file: the model that was trained and registered, byte for byte
    got = client.get(model["download_url"], headers=alice.headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert 'filename="ml_web-run-' in got.headers["content-disposition"]
    assert len(got.content) == model["bytes"]
    assert hashlib.sha256(got.content).hexdigest() == model["sha256"]
    loaded = modelfile.loads(got.content)
    assert isinstance(loaded, TorchModel) and loaded.arch == "mlp"
    assert [h["epoch"] for h in loaded.history] == [h["epoch"] for h in model["history"]]
    for mine, theirs in zip(loaded.history, model["history"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-12)

    # who may have it: the run's readers only; an unknown model is a 404 that says so
    assert client.get(model["download_url"], headers=bob.headers).status_code == 404
    missing = client.get(f"/api/runs/{run['id']}/models/nope", headers=alice.headers)
    assert missing.status_code == 404 and "no model 'nope'" in missing.json()["detail"]

    # the models page: the registered model with its source run
    [listed] = client.get("/api/models", headers=alice.headers).json()
    assert listed["name"] == "ml_web.net" and listed["latest_version"] == 1
    assert listed["mlflow_url"] == f"{MLFLOW_UI}/#/models/ml_web.net"
    [version] = listed["versions"]
    assert version["version"] == 1 and version["aliases"] == ["staging"]
    assert version["run"]["id"] == run["id"] and version["run"]["pipeline_name"] == "ml_web"
    assert (version["pipeline"], version["node"]) == ("ml_web", "net")
    assert version["ir_hash"] == run["ir_hash"] and version["sha256"] == model["sha256"]
    assert client.get("/api/models", headers=bob.headers).json() == []  # not his run
    [seen] = client.get("/api/models", headers=admin.headers).json()
    assert seen["versions"][0]["run"]["id"] == run["id"]

    # registered names are one namespace: bob may neither trade alice's model nor add to it
    refused = _start(client, bob, "bob_reuse", REUSE)
    assert refused.status_code == 422, refused.text
    assert "'pred' (predict) reads registered model 'ml_web.net'" in refused.json()["detail"]
    swept = REUSE.replace("pipeline ml_web_reuse ", "pipeline bob_sweep ") + (
        "\nsweep grid {\n    signal.threshold = [0.01, 0.02]\n"
        "    objective maximize result.sharpe\n}\n"
    )
    made = client.post("/api/pipelines", json={"name": "bob_sweep", "source": swept},
                       headers=bob.headers)  # fmt: skip
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    for path, body in ((f"/api/pipelines/{pid}/sweeps", {}),
                       (f"/api/pipelines/{pid}/schedules", {"cron": "0 * * * *"})):  # fmt: skip
        refused = client.post(path, json=body, headers=bob.headers)
        assert refused.status_code == 422, (path, refused.text)
        assert "reads registered model 'ml_web.net'" in refused.json()["detail"], path
    assert client.get(f"/api/pipelines/{pid}/schedules", headers=bob.headers).json() == []
    hijack = TRAIN.replace("pipeline ml_web ", "pipeline bob_ml ").replace(
        'alias="staging"', 'alias="staging", registry_name="ml_web.net"'
    )
    refused = _start(client, bob, "bob_ml", hijack)
    assert refused.status_code == 422, refused.text
    assert "would register its model as 'ml_web.net'" in refused.json()["detail"]
    assert client.get("/api/models", headers=admin.headers).json()[0]["latest_version"] == 1

    # a second pipeline trades the registered version without training: the same trades
    again = _run(client, alice, "ml_web_reuse", REUSE)
    assert again["models"] == []
    assert again["metrics"]["num_trades"] == run["metrics"]["num_trades"] > 0
    first = client.get(f"/api/runs/{run['id']}/results", headers=alice.headers).json()
    second = client.get(f"/api/runs/{again['id']}/results", headers=alice.headers).json()
    assert second["metrics"] == first["metrics"]
    logs = client.get(f"/api/runs/{again['id']}/logs", headers=alice.headers).json()
    assert any("registered model ml_web.net version 1" in line["message"] for line in logs)
