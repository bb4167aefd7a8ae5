"""Training a model in the Python sandbox: ``train_torch``'s networks, and the model file a
``model`` output becomes.

In a custom node's code (see docs/custom-nodes.md, "Training a model in the sandbox")::

    import torch
    from alphaforge_ml import build_network

    def run(inputs, params):
        ...
        net = build_network("mlp", n_features=3, window=8, hidden=16, layers=2)
        ...  # train it with torch
        return {"model": {"arch": "mlp", "window": 8, "hidden": 16, "layers": 2,
                          "features": ["r6", "r14", "m_hist"], "state_dict": net.state_dict(),
                          "mean": mean, "std": std, "history": history, "best_epoch": best}}

:func:`build_network` is ``nodes/builtin/_torchnets.py``'s ``build`` (``torchnets.py`` beside
this file is that very file), so the weights' names and shapes are the ones the built-in
``predict`` node rebuilds on the host. The entrypoint turns the returned dict into a model file
with :func:`model_file`: ``model.json`` and ``arrays.npz`` in a zip, the layout of
``nodes/modelfile.py`` (kind ``torch_classifier``), written with ``allow_pickle=False`` — never
a pickle. Nothing here is trusted: the host reads the file only through ``nodes.modelfile`` and
checks it again (sizes, architecture, the weights' names, shapes and values).

Standalone like the entrypoint (the image has no Alpha Forge): numpy, and torch only when the
user's code uses it (a node that does not import torch never loads it).
"""

import datetime
import io
import json
import zipfile

import numpy as np

__all__ = ["ARCHS", "MODEL_KEYS", "ModelOutputError", "build_network", "model_file"]

ARCHS = ("mlp", "lstm", "tcn")
FORMAT, VERSION, KIND = "alphaforge.model", 1, "torch_classifier"
REQUIRED = ("arch", "window", "hidden", "layers", "features", "state_dict", "mean", "std")
OPTIONAL = ("history", "best_epoch", "stopped_epoch", "seen_until", "threads", "params", "meta")
#: What a model output's dict may hold.
MODEL_KEYS = REQUIRED + OPTIONAL


def build_network(arch, n_features, window, hidden, layers):
    """A fresh ``train_torch`` network (``mlp``, ``lstm`` or ``tcn``): a batch of windows
    ``(batch, window, n_features)`` → 3 logits, the classes −1, 0, 1 in that order. Its initial
    weights come from torch's random state (seed it with ``torch.manual_seed``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    import torchnets  # imports torch

    return torchnets.build(arch, int(n_features), int(window), int(hidden), int(layers))


class ModelOutputError(ValueError):
    """A model output that cannot be written as a model file (the message names the port)."""


def _integer(value, what, where):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ModelOutputError(f"{where}: {what} must be an integer, got {value!r}")
    return int(value)


def _array(value, what, where):
    """A tensor (any device) or array-like as a numpy array of floating-point numbers."""
    try:
        if hasattr(value, "detach"):  # a torch tensor, on any device
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
    except Exception as exc:  # e.g. bfloat16, which numpy has no type for
        raise ModelOutputError(
            f"{where}: {what} cannot be read as an array of numbers ({exc}); use float32"
        ) from None
    if arr.dtype.kind not in "fiu":
        raise ModelOutputError(f"{where}: {what} must hold numbers, got dtype {arr.dtype}")
    if arr.dtype.kind != "f":
        arr = arr.astype("float64")
    return np.ascontiguousarray(arr)


def _timestamp(value, where):
    """An ISO-8601 UTC timestamp (a naive time is taken as UTC)."""
    import pandas as pd

    if isinstance(value, bool) or not isinstance(
        value, str | datetime.datetime | datetime.date | np.datetime64 | pd.Timestamp
    ):
        raise ModelOutputError(
            f"{where}: seen_until must be a timestamp (the last bar the training used), got "
            f"{value!r}"
        )
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ModelOutputError(
            f"{where}: seen_until {value!r} is not a timestamp ({exc})"
        ) from None
    if ts is pd.NaT:
        raise ModelOutputError(f"{where}: seen_until is NaT")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _json(value, what, where):
    if not isinstance(value, dict):
        raise ModelOutputError(f"{where}: {what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelOutputError(f"{where}: {what} must be plain JSON ({exc})") from None


def _history(value, where):
    if not isinstance(value, list | tuple):
        raise ModelOutputError(f"{where}: history must be a list of dicts, one per epoch")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ModelOutputError(f"{where}: history[{i}] must be a dict, got {entry!r}")
        row = {}
        for k, v in entry.items():
            if hasattr(v, "item"):  # a numpy or torch scalar
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ModelOutputError(f"{where}: history[{i}][{k!r}] must be a number, got {v!r}")
            row[str(k)] = v
        out.append(row)
    return out


def describe(value, where, default_seen_until=None):
    """The model file's JSON description and arrays for a model output's dict."""
    if not isinstance(value, dict):
        raise ModelOutputError(
            f"{where} must be a dict describing the model (arch, window, hidden, layers, "
            f"features, state_dict, mean, std, ...), got {type(value).__name__}"
        )
    unknown = [k for k in value if k not in MODEL_KEYS]
    if unknown:
        raise ModelOutputError(
            f"{where}: unknown key {unknown[0]!r}; a model output holds {', '.join(MODEL_KEYS)}"
        )
    missing = [k for k in REQUIRED if k not in value]
    if missing:
        raise ModelOutputError(f"{where}: the model lacks {', '.join(map(repr, missing))}")
    arch = value["arch"]
    if arch not in ARCHS:
        raise ModelOutputError(f"{where}: unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    features = value["features"]
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        raise ModelOutputError(f"{where}: features must be a list of column names")
    state = value["state_dict"]
    if not hasattr(state, "items"):
        raise ModelOutputError(
            f"{where}: state_dict must be the network's state_dict() (name -> tensor), got "
            f"{type(state).__name__}"
        )
    arrays = {
        "mean": _array(value["mean"], "mean", where).astype("float64"),
        "std": _array(value["std"], "std", where).astype("float64"),
    }
    keys = []
    for i, (name, tensor) in enumerate(state.items()):
        if not isinstance(name, str):
            raise ModelOutputError(f"{where}: state_dict key {name!r} is not a string")
        arrays[f"state.{i}"] = _array(tensor, f"state_dict[{name!r}]", where)
        keys.append(name)
    history = _history(value.get("history", []), where)
    seen_until = value.get("seen_until", default_seen_until)
    if seen_until is None:
        raise ModelOutputError(f"{where}: give seen_until, the last bar the training used")
    description = {
        "arch": arch,
        "window": _integer(value["window"], "window", where),
        "hidden": _integer(value["hidden"], "hidden", where),
        "layers": _integer(value["layers"], "layers", where),
        "features": list(features),
        "history": history,
        "best_epoch": _integer(value.get("best_epoch", len(history)), "best_epoch", where),
        "stopped_epoch": _integer(value.get("stopped_epoch", len(history)), "stopped_epoch", where),
        "seen_until": {"timestamp": _timestamp(seen_until, where)},
        "threads": _integer(value.get("threads", 1), "threads", where),
        "params": _json(value.get("params", {}), "params", where),
        "meta": _json(value.get("meta", {}), "meta", where),
        "state_keys": keys,
    }
    return description, arrays


def model_file(value, port, default_seen_until=None):
    """The model file's bytes for the dict a node returned for its ``model`` output ``port``
    (``default_seen_until``: the first input's last timestamp, when the dict gives none)."""
    description, arrays = describe(value, f"output {port!r}", default_seen_until)
    head = {"format": FORMAT, "version": VERSION, "kind": KIND, "model": description}
    npz = io.BytesIO()
    np.savez(npz, allow_pickle=False, **arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", json.dumps(head, sort_keys=True, allow_nan=True))
        zf.writestr("arrays.npz", npz.getvalue())
    return out.getvalue()
