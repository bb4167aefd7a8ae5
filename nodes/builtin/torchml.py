"""Training and inference with PyTorch: ``train_torch`` (a labelled frame → a ``model``) and
``predict`` (a model and a frame → predictions by timestamp).

torch is imported only when one of these nodes runs (:mod:`nodes.builtin._torchnets`), so the
CLI and the API start without it. The ``model`` output is a :class:`TorchModel`: plain Python
and numpy (the weights as numpy arrays, the scaler, the feature list, the per-epoch losses and
the training metadata), stored as a model file (:mod:`nodes.modelfile`: JSON and numpy arrays,
never a pickle), cached by code and data hash like every output, and read without torch.

**Determinism.** Training seeds torch (``seed``), turns on
``torch.use_deterministic_algorithms`` and runs with a fixed number of CPU threads (``threads``,
default 1) for the time of the node, then restores the process's settings. On the same
machine, torch version and thread count, two trainings give bit-identical weights and
predictions. On a GPU the kernels (cuBLAS, cuDNN) sum in another order than the CPU's: results
differ from the CPU's in the last bits and then by more as training amplifies them; they repeat
run to run on the same GPU model, driver and torch only under the deterministic settings
(``CUBLAS_WORKSPACE_CONFIG`` is set for that), and an operation without a deterministic CUDA
implementation fails the node instead of running nondeterministically.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from nodes.base import ModelRef, Node, Params, Port, PortType, ResolvedModel, register
from nodes.builtin.ml import LABEL_COLUMNS, FeatureName, _frame
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["CLASSES", "Predict", "TorchModel", "TrainTorch"]

#: The label values, in the order of the networks' outputs (class 0 is −1).
CLASSES: tuple[int, int, int] = (-1, 0, 1)

_MAX_WINDOW = 512
_MAX_HIDDEN = 1024
_MAX_LAYERS = 8
_MAX_FEATURES = 1000
_MAX_THREADS = 256
_MAX_EPOCHS = 10_000
_ARCH_NAMES = ("mlp", "lstm", "tcn")
_FEATURE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HISTORY_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# torch's deterministic flag and thread count are process-wide: one torch node at a time sets them
_TORCH_LOCK = threading.RLock()


@dataclass
class TorchModel:
    """A trained network with everything ``predict`` needs and a later MLflow step logs.

    ``state`` holds the network's weights (``state_dict``) as numpy arrays; ``mean`` / ``std``
    the standardisation fitted on the training rows; ``history`` one dict per epoch
    (``epoch``, ``train_loss``, ``val_loss``); ``seen_until`` the last timestamp whose bar the
    training used (a training row, or the end of its label's horizon): ``predict`` leaves the
    rows up to it NaN unless told otherwise.
    """

    arch: str
    window: int
    hidden: int
    layers: int
    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    state: dict[str, np.ndarray]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_epoch: int
    seen_until: Any
    threads: int
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "torch_classifier"

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The model file's JSON description and arrays (:mod:`nodes.modelfile`)."""
        description = {
            "arch": self.arch,
            "window": self.window,
            "hidden": self.hidden,
            "layers": self.layers,
            "features": list(self.features),
            "history": [dict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "seen_until": _encode_time(self.seen_until),
            "threads": self.threads,
            "params": self.params,
            "meta": self.meta,
            "state_keys": list(self.state),
        }
        arrays = {"mean": self.mean, "std": self.std}
        arrays.update({f"state.{i}": v for i, v in enumerate(self.state.values())})
        return description, arrays

    @classmethod
    def from_parts(cls, d: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> TorchModel:
        """The model from a model file's parts; a malformed description is refused."""
        from nodes.modelfile import ModelFileError

        try:
            arch, window = str(d["arch"]), int(d["window"])
            features = [str(f) for f in d["features"]]
            keys = [str(k) for k in d["state_keys"]]
            mean, std = np.asarray(arrays["mean"], float), np.asarray(arrays["std"], float)
            state = {k: np.asarray(arrays[f"state.{i}"]) for i, k in enumerate(keys)}
            model = cls(
                arch=arch,
                window=window,
                hidden=int(d["hidden"]),
                layers=int(d["layers"]),
                features=features,
                mean=mean,
                std=std,
                state=state,
                history=[{k: float(v) for k, v in h.items()} for h in d["history"]],
                best_epoch=int(d["best_epoch"]),
                stopped_epoch=int(d["stopped_epoch"]),
                seen_until=_decode_time(d["seen_until"]),
                threads=int(d["threads"]),
                params=dict(d.get("params") or {}),
                meta=dict(d.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"the model description is malformed: {exc!r}") from exc
        if arch not in _ARCH_NAMES or not 1 <= window <= _MAX_WINDOW:
            raise ModelFileError(f"the model file names arch {arch!r}, window {window}")
        if mean.shape != (len(features),) or std.shape != (len(features),):
            raise ModelFileError("the model file's scaler does not match its features")
        return model

    def verify(self) -> None:
        """Check a model from an untrusted source (a sandbox's ``model`` output) through and
        through, before it is stored: the architecture within ``train_torch``'s bounds; a
        feature list ``predict`` can look up (names of columns, no label column, no repeats);
        a finite scaler with positive spreads; finite floating-point weights whose names and
        shapes are exactly those of the network ``predict`` rebuilds (built on torch's meta
        device: no memory for its weights, whatever the sizes say); a history of numbers with
        epochs 1, 2, …; ``best_epoch`` and ``stopped_epoch`` within it; ``seen_until`` a
        timestamp with a time zone; JSON ``params`` and ``meta`` (no ``meta`` key that would
        hide one of :meth:`summary`'s). Raises :class:`~nodes.modelfile.ModelFileError` saying
        what is wrong and where."""
        from nodes.modelfile import ModelFileError

        problem = self._problem()
        if problem:
            raise ModelFileError(problem)

    def _problem(self) -> str | None:
        bounds = (
            ("window", self.window, _MAX_WINDOW),
            ("hidden", self.hidden, _MAX_HIDDEN),
            ("layers", self.layers, _MAX_LAYERS),
            ("threads", self.threads, _MAX_THREADS),
        )
        if self.arch not in _ARCH_NAMES:
            return f"unknown arch {self.arch!r} (one of {', '.join(_ARCH_NAMES)})"
        for name, value, most in bounds:
            if not 1 <= value <= most:
                return f"{name} is {value}; it must lie in 1..{most}"
        n = len(self.features)
        if not 1 <= n <= _MAX_FEATURES:
            return f"{n} features; a model has 1..{_MAX_FEATURES}"
        for f in self.features:
            if not _FEATURE.match(f) or len(f) > 64:
                return f"feature {f[:80]!r} is not a column name (letters, digits, _)"
            if f in LABEL_COLUMNS:
                return f"feature {f!r} is a label column, not a feature"
        if len(set(self.features)) != n:
            return "a feature is named twice"
        for name, arr in (("mean", self.mean), ("std", self.std)):
            if arr.shape != (n,) or not np.isfinite(arr).all():
                return f"{name} must be {n} finite numbers, one per feature"
        if not (self.std > 0).all():
            return f"std must be positive (a feature's spread), got {self.std.min()}"
        return self._state_problem() or self._history_problem() or self._meta_problem()

    def _state_problem(self) -> str | None:
        import torch

        from nodes.builtin import _torchnets

        n = len(self.features)
        with torch.device("meta"):  # shapes only: nothing allocated, no random draws
            net = _torchnets.build(self.arch, n, self.window, self.hidden, self.layers)
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        where = f"{self.arch}(features={n}, window={self.window}, hidden={self.hidden}, "
        where += f"layers={self.layers})"
        missing = [k for k in expected if k not in self.state]
        if missing:
            return f"the weights lack {missing[0]!r}, which {where} has"
        extra = [k for k in self.state if k not in expected]
        if extra:
            return f"the weights hold {extra[0][:80]!r}, which {where} does not have"
        for key, shape in expected.items():
            arr = self.state[key]
            if arr.dtype.kind != "f":
                return f"weight {key!r} is {arr.dtype}, not floating-point numbers"
            if tuple(arr.shape) != shape:
                return f"weight {key!r} has shape {tuple(arr.shape)}; {where} needs {shape}"
            if not np.isfinite(arr).all():
                return f"weight {key!r} holds NaN or infinity"
        return None

    def _history_problem(self) -> str | None:
        if len(self.history) > _MAX_EPOCHS:
            return f"the history has {len(self.history)} epochs, more than {_MAX_EPOCHS}"
        for i, entry in enumerate(self.history):
            if entry.get("epoch") != i + 1:
                return f"history[{i}] must have epoch {i + 1}, got {entry.get('epoch')!r}"
            if len(entry) > 16:
                return f"history[{i}] has {len(entry)} values, more than 16"
            for key, value in entry.items():
                if not _HISTORY_KEY.match(key):
                    return f"history[{i}] has a value named {key[:80]!r} (letters, digits, _)"
                if math.isinf(value):
                    return f"history[{i}][{key!r}] is {value}"
        last = len(self.history)
        low = 1 if last else 0
        for name, epoch in (("best_epoch", self.best_epoch), ("stopped_epoch", self.stopped_epoch)):
            if not low <= epoch <= last:
                return (
                    f"{name} is {epoch}; with {last} epochs in the history it is in {low}..{last}"
                )
        return None

    def _meta_problem(self) -> str | None:
        ts = self.seen_until
        if not isinstance(ts, pd.Timestamp) or ts is pd.NaT or ts.tz is None:
            return f"seen_until must be a timestamp with a time zone, got {ts!r}"
        hidden = sorted(set(self.meta) & set(self.summary(with_meta=False)))
        if hidden:
            return f"meta may not hold {hidden[0]!r} (a field of the model's summary)"
        return None

    def network(self, torch: Any) -> Any:
        """The torch module with the trained weights, in eval mode (call under torch)."""
        from nodes.builtin import _torchnets

        net = _torchnets.build(self.arch, len(self.features), self.window, self.hidden, self.layers)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        net.eval()
        return net

    def summary(self, *, with_meta: bool = True) -> dict[str, Any]:
        """JSON-ready params and final metrics (what an MLflow run logs), and ``meta``."""
        best = self.history[self.best_epoch - 1] if self.history else {}
        own = {
            "arch": self.arch,
            "window": self.window,
            "hidden": self.hidden,
            "layers": self.layers,
            "features": list(self.features),
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_val_loss": best.get("val_loss"),
            "train_loss_at_best": best.get("train_loss"),
            "params": dict(self.params),
        }
        return {**own, **self.meta} if with_meta else own


class TrainTorchParams(Params):
    """The network, its training and its early stopping."""

    features: list[FeatureName] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Feature columns, in order. Left out: every numeric column except the "
        "label columns (label, label_return, label_end).",
    )
    label: FeatureName = Field("label", description="The target column, values -1, 0 or 1.")
    model: Literal["mlp", "lstm", "tcn"] = Field(
        "mlp",
        description="mlp: the window flattened into dense layers; lstm: a recurrent network "
        "over the window; tcn: causal dilated convolutions over the window.",
    )
    window: int = Field(
        16, ge=1, le=_MAX_WINDOW, description="Rows per sample: the row t and the window-1 before."
    )
    hidden: int = Field(
        32, ge=1, le=_MAX_HIDDEN, description="Units per hidden layer (channels of tcn)."
    )
    layers: int = Field(
        2,
        ge=1,
        le=_MAX_LAYERS,
        description="Hidden layers (mlp), stacked LSTMs (lstm), conv levels (tcn).",
    )
    epochs: int = Field(30, ge=1, le=10_000, description="Most passes over the training rows.")
    batch_size: int = Field(64, ge=1, le=65_536, description="Samples per gradient step.")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam's learning rate.")
    val: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="The last fraction of the rows (by time, never shuffled) for validation.",
    )
    patience: int | None = Field(
        5,
        ge=1,
        le=10_000,
        description="Stop after this many epochs without a lower validation loss and keep the "
        "best epoch's weights. None: train every epoch (and still keep the best).",
    )
    class_weights: bool = Field(
        True, description="Weigh each class by the inverse of its frequency in the training rows."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the weights and the batches.")
    threads: int = Field(
        1, ge=1, le=256, description="CPU threads (results are identical only for equal counts)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when available, else the CPU."
    )
    register_model: bool = Field(
        True,
        description="Register the model in the MLflow Model Registry when a tracked run ends "
        "(a new version, unless the latest identical one is reused).",
    )
    registry_name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="The registered model's name. Left out: <pipeline>.<step>.",
    )
    alias: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="An alias the registered version gets (e.g. champion); predict can load it "
        "by alias.",
    )

    @field_validator("alias")
    @classmethod
    def _not_latest(cls, alias: str | None) -> str | None:
        if alias is not None and alias.lower() == "latest":
            raise ValueError(
                "'latest' is reserved by MLflow (predict without version or alias takes the "
                "latest version); choose another alias, e.g. champion"
            )
        return alias


_PANEL_HINT = (
    'models are trained and applied on one symbol for now: keep one in the loader (symbol="...")'
)


@register
class TrainTorch(Node):
    """Train a small classifier of the label (−1, 0, 1) on windows of feature rows.

    A sample is the window of ``window`` consecutive rows ending at row t (features only), its
    target row t's label. The rows are split by time: the last ``val`` fraction validates, the
    rest trains (never shuffled across that boundary; the training samples are shuffled among
    themselves with the seed). Training rows whose ``label_end`` reaches the first validation
    row are dropped (purged) so the validation loss is out of sample. **Standardisation** (mean
    and std of each feature) is fitted on the training rows only, without the validation rows,
    and stored in the model. Cross-entropy loss (class-weighted with ``class_weights``), Adam;
    after each epoch the validation loss, and with ``patience`` the training stops once that
    many epochs passed without a lower one; the weights of the best epoch are kept.

    Outputs the ``model`` (weights, scaler, features, per-epoch losses, metadata) and its
    ``history`` (one row per epoch). Uses CUDA when available (``device``), else the CPU; the
    log names the device. Deterministic for a seed on a given machine (see the module doc).
    """

    name = "train_torch"
    category = "ml"
    panel_hint = _PANEL_HINT
    summary = "Train an MLP, LSTM or TCN classifier of -1/0/1 labels (PyTorch)"
    inputs = (Port("train", PortType.FRAME, "labelled training rows in time order (features)"),)
    outputs = (
        Port("model", PortType.MODEL, "the trained network with its scaler and features"),
        Port(
            "history",
            PortType.FRAME,
            "per epoch: train_loss, val_loss",
            columns=("train_loss", "val_loss"),
        ),
    )
    params_model = TrainTorchParams

    def run(self, inputs: Mapping[str, Any], params: TrainTorchParams) -> dict[str, Any]:
        """Check, standardise, window, train with early stopping."""
        node = self.name
        frame = _frame(inputs["train"], node)
        features = _feature_list(frame, params.features, params.label, node)
        x = _matrix(frame, features, node)
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise NodeError(
                f"{node}: feature {features[col]!r} is {x[row, col]} at {frame.index[row]}; "
                "drop such rows first (features(..., dropna=...))"
            )
        y = _labels(frame, params.label, node)
        n, w = len(frame), params.window
        n_fit = math.floor(n * (1.0 - params.val))
        ends = np.arange(w - 1, n)  # the last row of each sample
        fit_ends, val_ends = ends[ends < n_fit], ends[ends >= n_fit]
        purged = 0
        if "label_end" in frame.columns and len(val_ends):
            try:
                early = (frame["label_end"].to_numpy()[fit_ends] < frame.index[n_fit]).astype(bool)
            except TypeError as exc:
                raise NodeError(f"{node}: label_end must hold the rows' timestamps") from exc
            purged = int((~early).sum())
            fit_ends = fit_ends[early]
        if len(fit_ends) == 0 or len(val_ends) == 0:
            raise NodeError(
                f"{node}: {n} rows with window {w} and val {params.val} leave "
                f"{len(fit_ends)} training and {len(val_ends)} validation samples; "
                "give more rows, a smaller window or another val"
            )
        mean = x[:n_fit].mean(axis=0)  # the training rows only, never the validation rows
        std = x[:n_fit].std(axis=0)
        flat = [features[i] for i in np.flatnonzero(~(std > 0))]
        if flat:
            self.ctx.log(f"warning: features constant on the training rows: {flat}")
        std = np.where(std > 0, std, 1.0)
        z = ((x - mean) / std).astype(np.float32)
        seen_until = frame.index[n - 1]
        if "label_end" in frame.columns:
            with contextlib.suppress(TypeError, ValueError):
                seen_until = max(seen_until, frame["label_end"].max())
        with _torch_settings(params.seed, params.threads, params.device) as (torch, device):
            from nodes.builtin import _torchnets

            self.ctx.log(
                f"device {device} (torch {torch.__version__}, {params.threads} CPU thread(s)); "
                f"{params.model}: {len(fit_ends)} training samples, {len(val_ends)} validation "
                f"samples, {len(features)} features × window {w}"
                + (f"; {purged} purged (label_end in the validation rows)" if purged else "")
            )
            net = _torchnets.build(params.model, len(features), w, params.hidden, params.layers)
            net = net.to(device)
            result = _fit(torch, net, z, y, fit_ends, val_ends, params, device)
        history, best_epoch, state = result
        stopped = len(history)
        self.ctx.log(
            f"stopped after epoch {stopped}, best epoch {best_epoch} "
            f"(val loss {history[best_epoch - 1]['val_loss']:.6g})"
        )
        counts = np.bincount(y[fit_ends], minlength=3)
        model = TorchModel(
            arch=params.model,
            window=w,
            hidden=params.hidden,
            layers=params.layers,
            features=features,
            mean=mean,
            std=std,
            state=state,
            history=history,
            best_epoch=best_epoch,
            stopped_epoch=stopped,
            seen_until=seen_until,
            threads=params.threads,
            params=params.model_dump(mode="json"),
            meta={
                "device": str(device),
                "torch_version": str(torch.__version__),
                "train_samples": len(fit_ends),
                "val_samples": len(val_ends),
                "purged": purged,
                "train_start": str(frame.index[0]),
                "val_start": str(frame.index[n_fit]),
                "train_end": str(frame.index[n - 1]),
                "class_counts": {str(c): int(k) for c, k in zip(CLASSES, counts, strict=True)},
            },
        )
        table = pd.DataFrame(history).set_index("epoch")
        return {"model": model, "history": table}


def _feature_list(frame: pd.DataFrame, given: list[str] | None, label: str, node: str) -> list[str]:
    if label not in frame.columns:
        raise NodeError(f"{node}: the frame has no label column {label!r} (label it first)")
    if given is not None:
        missing = [c for c in given if c not in frame.columns]
        if missing:
            raise NodeError(
                f"{node}: the frame has no feature column {missing[0]!r} "
                f"(columns: {list(frame.columns)})"
            )
        leaking = [c for c in given if c in (*LABEL_COLUMNS, label)]
        if leaking:
            raise NodeError(f"{node}: {leaking[0]!r} is a label column, not a feature")
        if len(set(given)) != len(given):
            raise NodeError(f"{node}: a feature is named twice in {given}")
        return list(given)
    skip = {*LABEL_COLUMNS, label}
    chosen = [
        str(c)
        for c in frame.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(frame[c].dtype)
        and not pd.api.types.is_bool_dtype(frame[c].dtype)
    ]
    if not chosen:
        raise NodeError(f"{node}: the frame has no numeric feature column besides the labels")
    return chosen


def _matrix(frame: pd.DataFrame, features: list[str], node: str) -> np.ndarray:
    for name in features:
        dtype = frame[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise NodeError(f"{node}: feature {name!r} is not numeric ({dtype})")
    return frame[features].to_numpy(dtype=np.float64)


def _labels(frame: pd.DataFrame, label: str, node: str) -> np.ndarray:
    values = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isin(values, CLASSES)
    if not ok.all():
        i = int(np.argmin(ok))
        raise NodeError(
            f"{node}: label {values[i]} at {frame.index[i]}; labels must be -1, 0 or 1 "
            "(label_forward_return, label_triple_barrier)"
        )
    return (values + 1).astype(np.int64)  # class index 0, 1, 2


@contextlib.contextmanager
def _torch_settings(seed: int | None, threads: int, device: str) -> Iterator[tuple[Any, Any]]:
    """Import torch; seed it, turn on its deterministic algorithms and fix the CPU threads for
    the block, then put the process's settings back."""
    import torch

    with _TORCH_LOCK:
        yield from _settings(torch, seed, threads, device)


def _settings(torch: Any, seed: int | None, threads: int, device: str) -> Iterator[tuple[Any, Any]]:
    if device == "cuda" and not torch.cuda.is_available():
        raise NodeError("train_torch: device='cuda' but CUDA is not available here")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:  # cuBLAS is deterministic only with a fixed workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        if seed is not None:
            torch.manual_seed(seed)
        yield torch, torch.device("cuda" if use_cuda else "cpu")
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(was_threads)


def _fit(
    torch: Any,
    net: Any,
    z: np.ndarray,
    y: np.ndarray,
    fit_ends: np.ndarray,
    val_ends: np.ndarray,
    params: TrainTorchParams,
    device: Any,
) -> tuple[list[dict[str, float]], int, dict[str, np.ndarray]]:
    """Adam on the training samples, validation loss per epoch, early stopping; returns the
    history, the best epoch (1-based) and its weights as numpy arrays."""
    w = params.window
    windows = np.lib.stride_tricks.sliding_window_view(z, w, axis=0)  # (n-w+1, f, w)
    xs = torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1))).to(device)
    ys = torch.from_numpy(y).to(device)
    x_fit, y_fit = xs[fit_ends - (w - 1)], ys[fit_ends]
    x_val, y_val = xs[val_ends - (w - 1)], ys[val_ends]
    weight = None
    if params.class_weights:
        counts = np.bincount(y[fit_ends], minlength=3).astype(np.float64)
        inverse = np.where(counts > 0, counts.sum() / (3.0 * np.maximum(counts, 1)), 0.0)
        weight = torch.tensor(inverse, dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    gen = torch.Generator().manual_seed(params.seed)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    waited = 0
    n_fit = len(x_fit)
    for epoch in range(1, params.epochs + 1):
        net.train()
        order = torch.randperm(n_fit, generator=gen).to(device)
        total = 0.0
        for a in range(0, n_fit, params.batch_size):
            idx = order[a : a + params.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(x_fit[idx]), y_fit[idx])
            loss.backward()
            opt.step()
            total += float(loss.item()) * len(idx)
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(_logits(torch, net, x_val), y_val).item())
        history.append({"epoch": epoch, "train_loss": total / n_fit, "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if params.patience is not None and waited >= params.patience:
                break
    if best_state is None:  # every validation loss was NaN: keep the last weights
        best_epoch = len(history)
        best_state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
    return history, best_epoch, best_state


def _logits(torch: Any, net: Any, x: Any, chunk: int = 8192) -> Any:
    return torch.cat([net(x[a : a + chunk]) for a in range(0, len(x), chunk)])


class PredictParams(Params):
    """Which model and which rows get a prediction."""

    in_sample: bool = Field(
        False,
        description="Also predict the rows up to the last bar the training used (in-sample, "
        "optimistic). False: those rows are NaN.",
    )
    registered: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="A model of the MLflow Model Registry, by name, instead of the model input "
        "(a model an earlier run trained and registered).",
    )
    version: int | None = Field(
        None, ge=1, description="The registered model's version (left out: the latest)."
    )
    alias: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="The registered model's alias (e.g. champion), instead of a version.",
    )

    @model_validator(mode="after")
    def _one_version(self) -> PredictParams:
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        if self.registered is None and (self.version is not None or self.alias is not None):
            raise ValueError("version and alias choose a version of the registered model")
        return self

    def model_ref(self) -> ModelRef | None:
        """The registered version these params name (None: the model input)."""
        if self.registered is None:
            return None
        return ModelRef(self.registered, self.version, self.alias)


@register
class Predict(Node):
    """Apply a ``train_torch`` model to a frame: one prediction per row, by timestamp.

    The frame needs the model's feature columns (any others are ignored); they are standardised
    with the scaler stored in the model. Row t's prediction uses rows t−window+1 … t of the
    frame: rows without a full window before them, or with a missing feature in it, are NaN;
    so are the rows up to the last bar the training used (``in_sample=false``), so feeding the
    whole feature frame gives out-of-sample predictions only. ``prediction`` = p(up) − p(down)
    in [−1, 1] (for ``gate`` with center 0), ``confidence`` = the most likely class's
    probability (``gate``'s confidence input), ``proba`` the three probabilities.
    """

    name = "predict"
    category = "ml"
    panel_hint = _PANEL_HINT
    summary = "Predictions of a trained model on a frame: p(up) - p(down), confidence"
    inputs = (
        Port(
            "model",
            PortType.MODEL,
            "a train_torch model (or give registered=...)",
            optional=True,
            or_param="registered",
        ),
        Port("data", PortType.FRAME, "a frame with the model's feature columns, in time order"),
    )
    outputs = (
        Port("prediction", PortType.SERIES, "p(up) - p(down) per row, NaN without a window"),
        Port("confidence", PortType.SERIES, "the most likely class's probability per row"),
        Port(
            "proba",
            PortType.FRAME,
            "class probabilities per row",
            columns=("p_down", "p_flat", "p_up"),
        ),
    )
    params_model = PredictParams

    def fingerprint(self, params: PredictParams) -> str | None:
        """The registered version's identity and file hash (an alias that moved is a new
        key); None for a model input (its own key covers it)."""
        ref = params.model_ref()
        if ref is None:
            return None
        return self._resolve(ref).fingerprint

    def _resolve(self, ref: ModelRef) -> ResolvedModel:
        if self.ctx.models is None:
            raise NodeError(
                f"{self.name}: registered={ref.name!r} needs a model registry, and none is "
                "configured for this run (run it through Prefect/MLflow: alphaforge run)"
            )
        return self.ctx.models.resolve(ref, node=self.name)

    def _model(self, inputs: Mapping[str, Any], params: PredictParams) -> Any:
        ref = params.model_ref()
        given = inputs.get("model")
        if ref is None:
            if given is None:
                raise NodeError(f"{self.name}: give a model input or registered=<name>")
            return given
        if given is not None:
            raise NodeError(f"{self.name}: give a model input or registered=..., not both")
        from nodes import modelfile

        found = self._resolve(ref)
        self.ctx.log(
            f"registered model {found.name} version {found.version} (from {ref}; training run "
            f"{found.run_id}, sha256 {found.sha256[:12]})"
        )
        return modelfile.load(found.path)

    def run(self, inputs: Mapping[str, Any], params: PredictParams) -> dict[str, Any]:
        """Standardise, window, run the network in eval mode."""
        node = self.name
        model = self._model(inputs, params)
        if not isinstance(model, TorchModel):
            raise NodeError(f"{node}: model must come from train_torch, got {type(model).__name__}")
        frame = _frame(inputs["data"], node)
        missing = [c for c in model.features if c not in frame.columns]
        if missing:
            raise NodeError(
                f"{node}: the frame lacks the model's feature column {missing[0]!r} "
                f"(the model uses {model.features})"
            )
        x = _matrix(frame, model.features, node)
        z = ((x - model.mean) / model.std).astype(np.float32)
        n, w = len(frame), model.window
        proba = np.full((n, 3), np.nan)
        if n >= w:
            finite = np.isfinite(z).all(axis=1)
            ok_window = np.lib.stride_tricks.sliding_window_view(finite, w).all(axis=1)
            ends = np.flatnonzero(ok_window) + (w - 1)
            if not params.in_sample:
                ends = ends[_after(frame.index, model.seen_until, node)[ends]]
            if len(ends):
                proba[ends] = _probabilities(model, z, ends)
        masked = "" if params.in_sample else f", rows up to {model.seen_until} left NaN"
        self.ctx.log(f"{int(np.isfinite(proba[:, 0]).sum())} of {n} rows predicted{masked}")
        index = frame.index
        return {
            "prediction": pd.Series(proba[:, 2] - proba[:, 0], index=index, name="prediction"),
            "confidence": pd.Series(proba.max(axis=1), index=index, name="confidence"),
            "proba": pd.DataFrame(proba, index=index, columns=["p_down", "p_flat", "p_up"]),
        }


def _encode_time(value: Any) -> dict[str, Any]:
    """A training time (a timestamp, a number, text) as JSON that decodes to the same value."""
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return {"text": str(value)}
    return {"value": value}


def _decode_time(raw: Any) -> Any:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"seen_until {raw!r}")
    ((kind, value),) = raw.items()
    if kind == "timestamp":
        return pd.Timestamp(value)
    if kind in ("value", "text"):
        return value
    raise ValueError(f"seen_until kind {kind!r}")


def _after(index: pd.Index, seen_until: Any, node: str) -> np.ndarray:
    try:
        return np.asarray(index > seen_until, dtype=bool)
    except TypeError as exc:
        raise NodeError(
            f"{node}: the frame's index ({index.dtype}) is not comparable with the model's "
            f"training times ({seen_until!r}); give in_sample=true or a frame by timestamp"
        ) from exc


def _probabilities(model: TorchModel, z: np.ndarray, ends: np.ndarray) -> np.ndarray:
    with _torch_settings(None, model.threads, "cpu") as (torch, _device):
        net = model.network(torch)
        windows = np.lib.stride_tricks.sliding_window_view(z, model.window, axis=0)
        xs = torch.from_numpy(np.ascontiguousarray(windows[ends - (model.window - 1)]))
        with torch.no_grad():
            logits = _logits(torch, net, xs.transpose(1, 2))
            return torch.softmax(logits, dim=1).double().numpy()  # type: ignore[no-any-return]
