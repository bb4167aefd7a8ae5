"""The model file (nodes.modelfile): a trained model round-trips exactly, and a file that is
not one, or carries a pickle, is refused with a clear error instead of being executed."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from nodes import modelfile
from nodes.builtin.torchml import TorchModel
from nodes.modelfile import ModelFileError
from tests.nodes.conftest import run_node

# one xdist worker runs the whole module, so its module-scoped trained model
# is made once (spread test by test, each worker made its own)
pytestmark = pytest.mark.xdist_group("modelfile")

FEATS = ["a", "b"]


@pytest.fixture(scope="module")
def model() -> TorchModel:
    rng = np.random.default_rng(3)
    index = pd.date_range("2024-01-01", periods=160, freq="h", tz="UTC", name="ts")
    frame = pd.DataFrame(rng.normal(size=(160, 2)), columns=FEATS, index=index)
    frame["label"] = np.sign(frame["a"]).astype(int)
    out = run_node(
        "train_torch",
        {"train": frame},
        features=FEATS,
        model="tcn",
        window=5,
        epochs=2,
        hidden=4,
        seed=1,
    )
    return out["model"]  # type: ignore[no-any-return]


def test_a_model_round_trips_bit_for_bit(model: TorchModel) -> None:
    back = modelfile.loads(modelfile.dumps(model))
    assert isinstance(back, TorchModel)
    assert back.state.keys() == model.state.keys()
    for k, v in model.state.items():
        assert back.state[k].dtype == v.dtype and back.state[k].tobytes() == v.tobytes()
    assert back.mean.tobytes() == model.mean.tobytes() and back.std.tobytes() == model.std.tobytes()
    assert back.seen_until == model.seen_until and back.seen_until.tz is not None
    assert back.history == model.history and back.features == FEATS
    assert (back.arch, back.window, back.hidden, back.layers) == ("tcn", 5, 4, model.layers)
    assert back.meta == model.meta and back.params == model.params


def test_the_file_holds_json_and_arrays_only(model: TorchModel) -> None:
    with zipfile.ZipFile(io.BytesIO(modelfile.dumps(model))) as zf:
        assert sorted(zf.namelist()) == ["arrays.npz", "model.json"]
        head = json.loads(zf.read("model.json"))
        assert head["format"] == "alphaforge.model" and head["kind"] == "torch_classifier"
        # every array loads without pickle
        with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
            assert {"mean", "std"} <= set(npz.files)


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _parts(model: TorchModel) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(modelfile.dumps(model))) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_a_pickle_is_refused_not_run(model: TorchModel, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ModelFileError, match="not a model file"):
        modelfile.loads(pickle.dumps(model))
    # an object array inside the npz needs pickle to load: refused, never unpickled
    parts = _parts(model)
    npz = io.BytesIO()
    np.savez(npz, mean=np.array([_Boom()], dtype=object), std=np.ones(2))
    parts["arrays.npz"] = npz.getvalue()
    with pytest.raises(ModelFileError, match="damaged"):
        modelfile.loads(_zip(parts))
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: {**p, "extra.py": b"import os"}, "not a model file: it holds"),
        (lambda p: {"model.json": p["model.json"]}, "not a model file: it holds"),
        (lambda p: {**p, "model.json": b"{not json"}, "damaged"),
        (lambda p: {**p, "model.json": json.dumps({"format": "x"}).encode()}, "no 'alphaforge"),
        (
            lambda p: {
                **p,
                "model.json": json.dumps({**json.loads(p["model.json"]), "version": 99}).encode(),
            },
            "format version 99",
        ),
        (
            lambda p: {
                **p,
                "model.json": json.dumps({**json.loads(p["model.json"]), "kind": "x"}).encode(),
            },
            "unknown kind 'x'",
        ),
        (
            lambda p: {
                **p,
                "model.json": json.dumps(
                    {
                        **json.loads(p["model.json"]),
                        "model": {**json.loads(p["model.json"])["model"], "arch": "rnn"},
                    }
                ).encode(),
            },
            "arch 'rnn'",
        ),
        (
            lambda p: {
                **p,
                "model.json": json.dumps(
                    {
                        **json.loads(p["model.json"]),
                        "model": {**json.loads(p["model.json"])["model"], "features": ["a"]},
                    }
                ).encode(),
            },
            "scaler does not match",
        ),
    ],
)
def test_a_damaged_or_foreign_file_says_what_is_wrong(
    model: TorchModel, change: object, message: str
) -> None:
    bad = _zip(change(_parts(model)))  # type: ignore[operator]
    with pytest.raises(ModelFileError, match=message):
        modelfile.loads(bad)


def test_not_a_zip() -> None:
    with pytest.raises(ModelFileError, match="not a zip"):
        modelfile.loads(b"hello")
