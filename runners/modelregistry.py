"""Models registered in the MLflow Model Registry, as ``predict`` reads them.

A run that trains a model registers it (``flows.models``): a new version of a registered model,
whose files sit in the training run's artifacts under ``models/<node>/``, with the model file
(``alphaforge.afmodel``, :mod:`nodes.modelfile`) beside MLflow's own ``MLmodel``. The version is
tagged ``alphaforge.artifact_path`` with that folder. :meth:`MlflowModelSource.resolve` turns
a name and a version or alias (or neither: the latest version) into that version's identity and
a local copy of its model file; only the model file is read, never MLflow's pickled flavour, so a
model anyone registered is data, not code.

Versions are immutable in MLflow, so a downloaded version is kept on disk (by tracking store,
name and version) and fetched once; aliases move, so an alias is looked up on every call.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from nodes.base import ModelRef, ResolvedModel
from nodes.errors import NodeError

__all__ = ["MODEL_FILE", "MlflowModelSource", "valid_name"]

#: The model file's name inside a registered version's folder.
MODEL_FILE = "alphaforge.afmodel"
#: The tag of a version naming its folder in the run's artifacts.
ARTIFACT_PATH_TAG = "alphaforge.artifact_path"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_download_lock = threading.Lock()


def valid_name(name: str) -> bool:
    """A registered model name this platform writes and reads: letters, digits, ``_ . -``."""
    return bool(_NAME.match(name))


class MlflowModelSource:
    """The registered models of one MLflow tracking store (a :class:`nodes.base.ModelSource`)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def resolve(self, ref: ModelRef, *, node: str) -> ResolvedModel:
        """The registered version ``ref`` names, downloaded; a clear NodeError otherwise."""
        tracking_uri = self.tracking_uri
        _no_store_yet(tracking_uri, ref, node)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            version = _version(client, ref)
        except MlflowException as exc:
            raise NodeError(f"{node}: {_missing(client, ref, exc)}") from exc
        tags = dict(version.tags or {})
        folder = tags.get(ARTIFACT_PATH_TAG)
        if not folder or not version.run_id:
            raise NodeError(
                f"{node}: {ref.name} version {version.version} was not registered by an Alpha "
                "Forge training run (it has no model file); register a model with train_torch"
            )
        number = int(version.version)
        path = _download(client, tracking_uri, ref.name, number, version.run_id, folder)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ResolvedModel(ref.name, number, version.run_id, path, digest)


_NONE_YET = "no model has been registered yet (train one with train_torch in a tracked run first)"


def _no_store_yet(tracking_uri: str, ref: ModelRef, node: str) -> None:
    # MLflow would create an embedded store in place: a missing one holds no models
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not Path(tracking_uri[len(prefix) :]).exists():
        raise NodeError(f"{node}: no registered model {ref.name!r}: {_NONE_YET}")


def _version(client: Any, ref: ModelRef) -> Any:
    if ref.version is not None:
        return client.get_model_version(ref.name, str(ref.version))
    if ref.alias is not None:
        return client.get_model_version_by_alias(ref.name, ref.alias)
    client.get_registered_model(ref.name)  # raises for an unknown name
    versions = client.search_model_versions(f"name='{ref.name}'")
    if not versions:
        from mlflow.exceptions import MlflowException

        raise MlflowException(f"registered model {ref.name!r} has no versions")
    return max(versions, key=lambda v: int(v.version))


def _missing(client: Any, ref: ModelRef, exc: Exception) -> str:
    """Why ``ref`` did not resolve, with what there is instead."""
    try:
        model = client.get_registered_model(ref.name)
    except Exception:
        names = _names(client)
        # (an empty store says so as a missing one does: the run's own tracking may have made
        # the store before this node looked)
        known = f" (registered models: {', '.join(names)})" if names else f": {_NONE_YET}"
        return f"no registered model {ref.name!r}{known}"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{ref.name}'"))
    aliases = sorted((getattr(model, "aliases", None) or {}).keys())
    have = f"versions {versions}" + (f", aliases {aliases}" if aliases else ", no aliases")
    if ref.version is not None:
        return f"{ref.name} has no version {ref.version} ({have})"
    if ref.alias is not None:
        return f"{ref.name} has no alias {ref.alias!r} ({have})"
    return f"{ref.name}: {exc}"


def _names(client: Any, limit: int = 10) -> list[str]:
    try:
        return sorted(m.name for m in client.search_registered_models(max_results=limit))
    except Exception:
        return []


def _download(
    client: Any, tracking_uri: str, name: str, version: int, run_id: str, folder: str
) -> Path:
    store = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    target = Path(tempfile.gettempdir()) / "alphaforge-models" / store / safe / str(version)
    path = target / MODEL_FILE
    with _download_lock:
        if path.exists():
            return path
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            got = Path(client.download_artifacts(run_id, f"{folder}/{MODEL_FILE}", tmp))
            got.replace(path)
    return path
