"""The models a run trained: kept in its directory, logged to MLflow, registered.

At the end of a completed run, every ``model`` output is copied to the run directory
(``models/<step>.afmodel``: what the web app offers for download) and described in the run
record (``RunRecord.models``: per-epoch losses, training summary, registry name and version).
In a tracked run each model also goes to MLflow:

- its per-epoch ``train_loss`` / ``val_loss`` as metrics ``<step>.train_loss`` with the epoch
  as the step; its final figures as metrics (``<step>.best_val_loss``,
  ``<step>.train_loss_at_best``, ``<step>.best_epoch``, ``<step>.stopped_epoch``) and what it is
  as params ``<step>.model.*`` (architecture, window, features, device, torch version, sample
  counts);
- the network in MLflow's pytorch flavour (``pt2``, with signature and input example) and the
  model file beside it, under the artifacts' ``models/<step>/``;
- a version of a registered model (the step's ``registry_name``, else ``<pipeline>.<step>``),
  tagged with the run, the IR hash and the model file's sha256. A run whose model is the very
  one the latest version already holds (a cached training) reuses that version instead of
  adding an identical one. An ``alias`` param points that alias at the version.

``predict(registered=...)`` reads the model file back (:mod:`runners.modelregistry`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl.ir import PipelineIR
from flows.tracking import sqlite_path
from runners.io import read_value
from runners.modelregistry import ARTIFACT_PATH_TAG as _ARTIFACT_PATH_TAG
from runners.modelregistry import MODEL_FILE

__all__ = [
    "MODEL_FILE",
    "RegisteredModelInfo",
    "RegisteredVersion",
    "TrainedModel",
    "collect_models",
    "list_registered",
    "log_models",
]

_SHA_TAG = "alphaforge.model_sha256"


@dataclass
class TrainedModel:
    """One ``model`` output of the run, copied into the run directory."""

    key: str  # the step id, or ``step.port`` for a second model port
    node: str
    node_type: str
    path: Path
    sha256: str
    model: Any
    register: bool
    registry_name: str
    alias: str | None

    def record(self) -> dict[str, Any]:
        """The run record's description of the model (before registration)."""
        history = [dict(h) for h in getattr(self.model, "history", [])]
        summary = self.model.summary() if hasattr(self.model, "summary") else {}
        return {
            "node": self.node,
            "type": self.node_type,
            "kind": getattr(self.model, "kind", None),
            "file": f"models/{self.path.name}",
            "bytes": self.path.stat().st_size,
            "sha256": self.sha256,
            "history": history,
            "summary": summary,
            "registered_name": None,
            "registered_version": None,
            "alias": None,
            "artifact_path": None,
        }


def collect_models(
    ir: PipelineIR, outputs: Mapping[str, Mapping[str, str]], run_dir: Path
) -> list[TrainedModel]:
    """Copy every ``model`` output into ``run_dir/models`` and read it."""
    found: list[TrainedModel] = []
    for node in ir.nodes:
        ports = [
            p for p, t in node.outputs.items() if t == "model" and p in outputs.get(node.id, {})
        ]
        for port in ports:
            key = node.id if port == "model" or len(ports) == 1 else f"{node.id}.{port}"
            target = run_dir / "models" / f"{key}.afmodel"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(outputs[node.id][port], target)
            params = node.params
            found.append(
                TrainedModel(
                    key=key,
                    node=node.id,
                    node_type=node.type,
                    path=target,
                    sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
                    model=read_value(target),
                    register=bool(params.get("register_model", True)),
                    registry_name=str(params.get("registry_name") or f"{ir.name}.{key}"),
                    alias=params.get("alias"),
                )
            )
    return found


def log_models(
    tracker: Any, ir: PipelineIR, models: list[TrainedModel], run_id: str
) -> dict[str, dict[str, Any]]:
    """Log each model to the tracker's MLflow run and register it; returns the records."""
    records: dict[str, dict[str, Any]] = {}
    client = tracker.client
    artifact_uri = client.get_run(tracker.run_id).info.artifact_uri
    for m in models:
        rec = m.record()
        _log_history(tracker, m.key, rec["history"])
        _log_summary(tracker, m.key, rec["summary"])
        folder = f"models/{m.key}"
        with tempfile.TemporaryDirectory() as tmp:
            flavour = Path(tmp) / "model"
            if hasattr(m.model, "network"):
                _save_pytorch_flavour(m.model, flavour)
            else:
                flavour.mkdir()
            shutil.copyfile(m.path, flavour / MODEL_FILE)
            client.log_artifacts(tracker.run_id, str(flavour), folder)
        rec["artifact_path"] = folder
        if m.register:
            version = _register(client, ir, m, run_id, tracker.run_id, f"{artifact_uri}/{folder}")
            rec["registered_name"], rec["registered_version"] = m.registry_name, version
            if m.alias:
                client.set_registered_model_alias(m.registry_name, m.alias, str(version))
                rec["alias"] = m.alias
        records[m.key] = rec
    return records


def _save_pytorch_flavour(model: Any, path: Path) -> None:
    """The network in MLflow's pytorch flavour at ``path`` (a new folder): ``pt2``
    (torch.export, no pickle), with a signature and an input example. Its input is a batch of
    standardised windows, shape (n, window, features) in float32; its output the logits of the
    classes (−1, 0, 1). The model file (scaler and all) goes beside it (the caller)."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    net = model.network(torch)
    example = np.zeros((2, int(model.window), len(model.features)), dtype=np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(example)).numpy()
    mlflow.pytorch.save_model(
        net,
        str(path),
        signature=infer_signature(example, logits),
        input_example=example,
        serialization_format="pt2",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        metadata={"alphaforge": {"features": list(model.features), "classes": [-1, 0, 1]}},
    )


#: the training summary's final figures, logged as metrics ``<step>.<name>``
_FINAL_METRICS = ("best_val_loss", "train_loss_at_best", "best_epoch", "stopped_epoch")


def _log_summary(tracker: Any, key: str, summary: Mapping[str, Any]) -> None:
    """The model's final figures as metrics (``<step>.best_val_loss`` ...) and what it is as
    params (``<step>.model.arch``, ``window``, ``features``, the device, torch version and
    sample counts): the node's own params are logged with every step's already."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{key}.{name}", float(summary[name]), now, 0)
        for name in _FINAL_METRICS
        if isinstance(summary.get(name), int | float) and summary[name] == summary[name]
    ]
    described = {
        name: value
        for name, value in summary.items()
        if name not in _FINAL_METRICS and name != "params" and value is not None
    }
    params = [
        Param(f"{key}.model.{name}", _text(value)[:6000]) for name, value in described.items()
    ]
    tracker.client.log_batch(tracker.run_id, metrics=metrics, params=params)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return json.dumps(value, sort_keys=True, default=str)


def _log_history(tracker: Any, key: str, history: list[dict[str, Any]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{key}.{name}", float(h[name]), now, int(h["epoch"]))
        for h in history
        for name in ("train_loss", "val_loss")
        if isinstance(h.get(name), int | float) and h[name] == h[name]  # NaN skipped
    ]
    for i in range(0, len(metrics), 1000):
        tracker.client.log_batch(tracker.run_id, metrics=metrics[i : i + 1000])


def _register(
    client: Any, ir: PipelineIR, m: TrainedModel, run_id: str, mlflow_run_id: str, source: str
) -> int:
    """The version holding ``m``: the latest one if it holds the same file, else a new one."""
    from mlflow.exceptions import MlflowException

    name = m.registry_name
    with contextlib.suppress(MlflowException):  # it exists already
        client.create_registered_model(
            name,
            tags={"alphaforge.pipeline": ir.name},
            description=f"Trained by step {m.node} ({m.node_type}) of pipeline {ir.name}.",
        )
    versions = client.search_model_versions(f"name='{name}'")
    if versions:
        latest = max(versions, key=lambda v: int(v.version))
        if (latest.tags or {}).get(_SHA_TAG) == m.sha256:
            return int(latest.version)
    version = client.create_model_version(
        name,
        source=source,
        run_id=mlflow_run_id,
        tags={
            "alphaforge.run_id": run_id,
            "alphaforge.ir_hash": ir.content_hash(),
            "alphaforge.pipeline": ir.name,
            "alphaforge.node": m.node,
            _ARTIFACT_PATH_TAG: f"models/{m.key}",
            _SHA_TAG: m.sha256,
        },
        description=f"Run {run_id} of pipeline {ir.name}, step {m.node}.",
    )
    return int(version.version)


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as the models page lists it."""

    version: int
    created_ms: int | None
    aliases: tuple[str, ...]
    mlflow_run_id: str | None
    run_id: str | None  # the Alpha Forge run that trained it (its tag)
    pipeline: str | None
    node: str | None
    ir_hash: str | None
    sha256: str | None


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model and its versions, newest first."""

    name: str
    description: str | None
    updated_ms: int | None
    versions: tuple[RegisteredVersion, ...]


def list_registered(tracking_uri: str, *, limit: int = 200) -> list[RegisteredModelInfo]:
    """The registered models of the store (at most ``limit``), by name; none when the store
    does not exist yet (nothing was ever tracked)."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found: list[RegisteredModelInfo] = []
    for model in client.search_registered_models(max_results=limit, order_by=["name ASC"]):
        aliases: dict[str, list[str]] = {}
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        versions = sorted(
            client.search_model_versions(f"name='{model.name}'"),
            key=lambda v: -int(v.version),
        )
        found.append(
            RegisteredModelInfo(
                name=model.name,
                description=model.description or None,
                updated_ms=model.last_updated_timestamp,
                versions=tuple(_version_info(v, aliases) for v in versions),
            )
        )
    return found


def _version_info(v: Any, aliases: Mapping[str, list[str]]) -> RegisteredVersion:
    tags = dict(v.tags or {})
    return RegisteredVersion(
        version=int(v.version),
        created_ms=v.creation_timestamp,
        aliases=tuple(sorted(aliases.get(str(v.version), []))),
        mlflow_run_id=v.run_id or None,
        run_id=tags.get("alphaforge.run_id"),
        pipeline=tags.get("alphaforge.pipeline"),
        node=tags.get("alphaforge.node"),
        ir_hash=tags.get("alphaforge.ir_hash"),
        sha256=tags.get(_SHA_TAG),
    )
