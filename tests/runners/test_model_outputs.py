"""A custom node's ``model`` output, host side (no Docker): the model file the sandbox's
``alphaforge_ml`` writes becomes a normal model artifact, and a model file that is malformed,
hostile or too large is refused with an error naming the node and the output."""

from __future__ import annotations

import importlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nodes.base import PortType
from nodes.builtin import _torchnets
from nodes.builtin.torchml import TorchModel
from runners.custom import CustomNodeManifest
from runners.io import read_value
from runners.jobs import SandboxFailure
from runners.lookahead import COMPARED_TYPES, compare_outputs
from runners.outputs import collect_outputs
from runners.sandbox import ENTRY_DIR

IDX = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC", name="ts")
FEATS = ["a", "b", "c"]
NODE = "node 'train', output 'model'"
MANIFEST = CustomNodeManifest(
    name="trainer",
    version="1.0.0",
    language="python",
    inputs=({"name": "train", "type": "frame"},),
    outputs=({"name": "model", "type": "model"},),
    code="def run(inputs, params):\n    return {}\n",
)


@pytest.fixture(scope="module")
def ml() -> Iterator[Any]:
    """The sandbox's helper module, imported from the entrypoints' folder as the image has it."""
    import sys

    sys.path.insert(0, str(ENTRY_DIR))
    try:
        yield importlib.import_module("alphaforge_ml")
    finally:
        sys.path.remove(str(ENTRY_DIR))


def _description(ml: Any, arch: str = "mlp", n_features: int = 3, **changes: Any) -> dict:
    import torch

    torch.manual_seed(0)
    net = ml.build_network(arch, n_features, 4, 8, 2)
    value = {
        "arch": arch,
        "window": 4,
        "hidden": 8,
        "layers": 2,
        "features": FEATS,
        "state_dict": net.state_dict(),
        "mean": np.array([0.1, -0.2, 0.3]),
        "std": np.array([1.0, 2.0, 0.5]),
        "history": [
            {"epoch": 1, "train_loss": 1.1, "val_loss": 1.2},
            {"epoch": 2, "train_loss": 0.9, "val_loss": 1.0},
        ],
        "best_epoch": 2,
        "seen_until": IDX[-1],
    }
    value.update(changes)
    return value


def _collect(tmp_path: Path, raw: bytes | None, cap: int = 1 << 20) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    if raw is not None:
        (out / "model.afmodel").write_bytes(raw)
    return collect_outputs(out, MANIFEST, IDX, cap, "train", tmp_path / "dest")


def _members(raw: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _edit(raw: bytes, change: Callable[[dict], None]) -> bytes:
    """The model file with its description changed by ``change`` (in place)."""
    members = _members(raw)
    head = json.loads(members["model.json"])
    change(head["model"])
    members["model.json"] = json.dumps(head).encode()
    return _zip(members)


def _arrays(raw: bytes, change: Callable[[dict], None], *, pickles: bool = False) -> bytes:
    """The model file with its arrays changed by ``change`` (in place)."""
    members = _members(raw)
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
        arrays = {k: np.array(npz[k]) for k in npz.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=pickles, **arrays)
    members["arrays.npz"] = buf.getvalue()
    return _zip(members)


def test_the_sandbox_networks_are_train_torchs(ml: Any) -> None:
    """``torchnets.py`` beside the entrypoint is nodes/builtin/_torchnets.py itself (a link; the
    image build copies it): the same names and shapes as what predict rebuilds."""
    assert (ENTRY_DIR / "torchnets.py").resolve() == Path(_torchnets.__file__).resolve()
    for arch in ("mlp", "lstm", "tcn"):
        ours = ml.build_network(arch, 3, 5, 8, 2).state_dict()
        theirs = _torchnets.build(arch, 3, 5, 8, 2).state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    with pytest.raises(ValueError, match="unknown arch 'gru'; choose one of mlp, lstm, tcn"):
        ml.build_network("gru", 3, 5, 8, 2)


@pytest.mark.parametrize("arch", ["mlp", "lstm", "tcn"])
def test_a_model_output_becomes_a_model_artifact(ml: Any, tmp_path: Path, arch: str) -> None:
    value = _description(ml, arch)
    paths = _collect(tmp_path, ml.model_file(value, "model"))
    assert paths["model"].endswith("model.afmodel")
    model = read_value(paths["model"])
    assert isinstance(model, TorchModel)
    assert (model.arch, model.window, model.hidden, model.layers) == (arch, 4, 8, 2)
    assert model.features == FEATS and model.best_epoch == 2 and model.stopped_epoch == 2
    assert model.seen_until == IDX[-1] and model.threads == 1
    for key, tensor in value["state_dict"].items():
        assert model.state[key].dtype == np.float32
        assert model.state[key].tobytes() == tensor.numpy().tobytes()
    np.testing.assert_array_equal(model.mean, value["mean"])
    assert model.history == value["history"]


def test_seen_until_defaults_to_the_first_inputs_last_timestamp(ml: Any, tmp_path: Path) -> None:
    value = _description(ml)
    del value["seen_until"]
    with pytest.raises(ml.ModelOutputError, match="give seen_until"):
        ml.model_file(value, "model")
    raw = ml.model_file(value, "model", default_seen_until=IDX[-3])
    assert read_value(_collect(tmp_path, raw)["model"]).seen_until == IDX[-3]
    # a naive time is UTC
    naive = ml.model_file({**value, "seen_until": "2024-01-02 05:00"}, "model")
    assert read_value(_collect(tmp_path, naive)["model"]).seen_until == pd.Timestamp(
        "2024-01-02 05:00", tz="UTC"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(state=v["state_dict"]), "unknown key 'state'; a model output holds"),
        (lambda v: v.pop("mean"), "the model lacks 'mean'"),
        (lambda v: v.update(arch="gru"), "unknown arch 'gru'"),
        (lambda v: v.update(window=4.5), "window must be an integer"),
        (lambda v: v.update(state_dict=[1, 2]), "state_dict must be the network's state_dict"),
        (lambda v: v.update(features="abc"), "features must be a list of column names"),
        (lambda v: v.update(seen_until=3), "seen_until must be a timestamp"),
        (lambda v: v.update(meta={"x": object()}), "meta must be plain JSON"),
        (lambda v: v.update(history=[{"epoch": 1, "loss": "low"}]), r"history\[0\]\['loss'\]"),
        (
            lambda v: v["state_dict"].update(
                {"net.0.bias": v["state_dict"]["net.0.bias"].bfloat16()}
            ),
            r"state_dict\['net\.0\.bias'\] cannot be read as an array of numbers .*use float32",
        ),
        (lambda v: v.update(mean=["x", "y", "z"]), "mean must hold numbers, got dtype <U1"),
    ],
)
def test_the_sandbox_helper_names_what_is_wrong(ml: Any, change: Any, message: str) -> None:
    value = _description(ml)
    change(value)
    with pytest.raises(ml.ModelOutputError, match=r"^output 'model': .*" + message):
        ml.model_file(value, "model")
    with pytest.raises(ml.ModelOutputError, match="must be a dict describing the model"):
        ml.model_file(pickle.dumps([1.0, 2.0]), "model")


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def _shape_mismatch(ml: Any) -> bytes:
    """A network for 4 features in a model of 3: the first layer's weights do not fit."""
    raw: bytes = ml.model_file(_description(ml, "mlp", n_features=4), "model")
    return raw


HOSTILE: dict[str, tuple[Callable[[Any, bytes], bytes], str]] = {
    "wrong_shape": (
        lambda ml, raw: _shape_mismatch(ml),
        r"weight 'net\.0\.weight' has shape \(8, 16\); mlp\(features=3, window=4, hidden=8, "
        r"layers=2\) needs \(8, 12\)",
    ),
    "unknown_arch": (lambda ml, raw: _edit(raw, lambda d: d.update(arch="gru")), "arch 'gru'"),
    "missing_weight": (
        lambda ml, raw: _edit(raw, lambda d: d["state_keys"].__setitem__(0, "net.9.weight")),
        "the weights lack 'net.0.weight'",
    ),
    "integer_weights": (
        lambda ml, raw: _arrays(raw, lambda a: a.update({"state.0": a["state.0"].astype("i8")})),
        "weight 'net.0.weight' is int64, not floating-point numbers",
    ),
    "nan_weight": (
        lambda ml, raw: _arrays(raw, lambda a: a["state.1"].__setitem__(0, np.nan)),
        "weight 'net.0.bias' holds NaN or infinity",
    ),
    "zero_std": (
        lambda ml, raw: _arrays(raw, lambda a: a["std"].__setitem__(1, 0.0)),
        "std must be positive",
    ),
    "label_feature": (
        lambda ml, raw: _edit(raw, lambda d: d.update(features=["a", "label", "c"])),
        "feature 'label' is a label column",
    ),
    "history_epochs": (
        lambda ml, raw: _edit(raw, lambda d: d["history"][1].update(epoch=5)),
        r"history\[1\] must have epoch 2, got 5",
    ),
    "infinite_loss": (
        lambda ml, raw: _edit(raw, lambda d: d["history"][0].update(val_loss=float("inf"))),
        r"history\[0\]\['val_loss'\] is inf",
    ),
    "best_epoch": (
        lambda ml, raw: _edit(raw, lambda d: d.update(best_epoch=9)),
        "best_epoch is 9; with 2 epochs in the history it is in 1..2",
    ),
    "huge_layers": (
        lambda ml, raw: _edit(raw, lambda d: d.update(hidden=10**6)),
        "hidden is 1000000; it must lie in 1..1024",
    ),
    "seen_until_number": (
        lambda ml, raw: _edit(raw, lambda d: d.update(seen_until={"value": 5})),
        "seen_until must be a timestamp with a time zone",
    ),
    "meta_hides_summary": (
        lambda ml, raw: _edit(raw, lambda d: d.update(meta={"arch": "tcn"})),
        "meta may not hold 'arch'",
    ),
    "a_pickle": (lambda ml, raw: pickle.dumps(_Boom()), r"not a model file \(not a zip archive\)"),
    "pickled_array": (
        lambda ml, raw: _arrays(
            raw, lambda a: a.update(mean=np.array([_Boom()], dtype=object)), pickles=True
        ),
        "damaged: .*allow_pickle",
    ),
    "extra_member": (
        lambda ml, raw: _zip({**_members(raw), "code.py": b"import os"}),
        "is not a model file: it holds",
    ),
    "claimed_huge_array": (
        lambda ml, raw: _zip(
            {
                **_members(raw),
                "arrays.npz": _zip(
                    {"mean.npy": _npy_header((10**9,)) + b"\0" * 64, "std.npy": b""}
                ),
            }
        ),
        r"damaged: array 'mean\.npy' claims 8000000000 bytes",
    ),
}


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy header (magic included) claiming an array of float64 of ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_bad_model_file_is_refused_naming_node_and_output(
    ml: Any, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = HOSTILE[case]
    raw = make(ml, ml.model_file(_description(ml), "model"))
    with pytest.raises(SandboxFailure, match=f"^{NODE}: .*{message}") as err:
        _collect(tmp_path, raw)
    assert err.value.kind == "INVALID_OUTPUT"
    assert "pwned" not in capsys.readouterr().out  # nothing was unpickled
    assert not (tmp_path / "dest" / "model.afmodel").exists()


def test_a_model_file_is_held_to_the_output_cap_unpacked(ml: Any, tmp_path: Path) -> None:
    """Zeros compress to almost nothing: the file is under the cap, what it unpacks to is not
    (checked from the archive's directory before anything is decompressed)."""
    import torch

    net = ml.build_network("mlp", 3, 64, 512, 2)
    zeros = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    value = _description(ml, window=64, hidden=512, state_dict=zeros)
    raw = ml.model_file(value, "model")
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(raw)).infolist())
    cap = len(raw) * 4
    assert unpacked > cap
    with pytest.raises(SandboxFailure, match=f"^{NODE}: .*unpacks to {unpacked} bytes, more than"):
        _collect(tmp_path, raw, cap=cap)
    # a file over the cap itself is the output limit, as for any output
    with pytest.raises(SandboxFailure, match="wrote more than") as err:
        _collect(tmp_path, raw, cap=len(raw) - 1)
    assert err.value.kind == "OUTPUT_LIMIT"
    assert read_value(_collect(tmp_path, raw, cap=unpacked)["model"]).hidden == 512


def test_a_model_output_not_written_is_named(tmp_path: Path) -> None:
    with pytest.raises(SandboxFailure, match=f"^{NODE}: was not produced"):
        _collect(tmp_path, None)


def test_only_a_python_node_may_declare_a_model_output() -> None:
    from pydantic import ValidationError

    for language, code_format in (("javascript", "source"), ("wasm", "wat")):
        with pytest.raises(ValidationError, match="only a Python node can output a model"):
            CustomNodeManifest(
                name="js_trainer",
                version="1.0.0",
                language=language,
                outputs=({"name": "model", "type": "model"},),
                code="(module)" if language == "wasm" else "function run() {}",
                code_format=code_format,
            )
    with pytest.raises(ValidationError, match="a model output has no columns"):
        MANIFEST.model_validate(
            {**MANIFEST.model_dump(), "outputs": [{"name": "m", "type": "model", "columns": ["x"]}]}
        )


def test_the_lookahead_check_and_the_lab_preview_take_a_model(ml: Any, tmp_path: Path) -> None:
    """A model has no rows over time: the look-ahead check leaves it out (a node with only a
    model output is skipped); the test run's preview shows its summary."""
    from flows.nodelab import preview

    assert PortType.MODEL not in COMPARED_TYPES
    model = read_value(_collect(tmp_path, ml.model_file(_description(ml), "model"))["model"])
    verdict = compare_outputs(
        {"model": model}, {"model": model}, {"model": "model"}, whole_rows=50, prefix_rows=30
    )
    assert verdict["status"] == "skipped"
    shown = preview(model, "model")
    assert shown["rows"] == 10 and shown["tail"] == []
    rows = dict(shown["head"])
    assert shown["type"] == "model" and shown["columns"] == ["metric", "value"]
    assert rows["arch"] == "mlp" and json.loads(rows["features"]) == FEATS
    assert rows["best_epoch"] == 2 and rows["epochs"] == 2
    assert rows["weights"] == sum(np.asarray(a).size for a in model.state.values())
    json.dumps(shown, allow_nan=False)  # what the API sends
