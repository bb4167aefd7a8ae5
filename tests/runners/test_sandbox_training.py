# ruff: noqa: F811  (pytest fixtures imported from the hostile suite are parameters here)
"""Training in the sandbox (issue 12 item 5), in the real Docker sandbox and image: a Python
custom node trains train_torch's MLP with torch and returns it through its ``model`` output;
the host stores it as a model file that the built-in ``predict`` uses; a training asks for
more time and memory (clamped to the admin caps, and said so) and is killed past them; bad
model outputs are refused naming the output; a node that does not use torch never loads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cli.nodes_dir import load_manifest
from dsl.ir import InputBinding, NodeIR
from nodes.builtin import _torchnets
from nodes.builtin.torchml import TorchModel
from runners.base import NodeResult
from runners.custom import AdminCaps, CustomNodeManifest, ManifestCatalog
from runners.io import read_value, write_value
from runners.sandbox import ENTRY_DIR
from tests.hostile.conftest import Sandbox, sandbox  # noqa: F401
from tests.nodes.conftest import run_node

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nodes" / "sandbox_mlp.json"
FEATS = ["a", "b", "c"]
PARAMS = {"features": FEATS, "window": 4, "hidden": 8, "layers": 1, "epochs": 12, "seed": 3}


def _labelled(n: int = 300) -> pd.DataFrame:
    """Three noisy features; the label the sign of a + b/2 (0 in a dead band), looking 1 row
    ahead (``label_end``)."""
    rng = np.random.default_rng(5)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="ts")
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATS, index=index)
    score = frame["a"] + 0.5 * frame["b"]
    frame["label"] = np.where(score > 0.3, 1.0, np.where(score < -0.3, -1.0, 0.0))
    frame["label_end"] = index.shift(1)
    return frame


def _manifest(code: str, **fields: Any) -> CustomNodeManifest:
    return CustomNodeManifest(
        name="trainer",
        version="1.0.0",
        language="python",
        inputs=({"name": "train", "type": "frame"},),
        outputs=({"name": "model", "type": "model"},),
        code=code,
        **fields,
    )


def _run(
    box: Sandbox,
    manifest: CustomNodeManifest,
    frame: pd.DataFrame,
    params: dict[str, Any] | None = None,
    caps: AdminCaps | None = None,
) -> NodeResult:
    """``manifest`` on ``frame`` (its one input) in a fresh DockerRunner, node id ``train``."""
    from runners.docker import DockerRunner

    path = box.tmp / "train.parquet"
    write_value(frame, "frame", path)
    runner = DockerRunner(
        ManifestCatalog([manifest]), caps=caps, client=box.client, work_root=box.work_root
    )
    box.run_ids.append(runner.run_id)
    node = NodeIR(
        id="train",
        type=manifest.name,
        version=manifest.version,
        params=params or {},
        inputs={"train": InputBinding(node="data", port="train")},
        outputs={p.name: p.type.value for p in manifest.outputs},
        runtime="python",
        code_hash=manifest.code_hash(),
    )
    return runner.run(node, {"train": str(path)}, output_dir=box.tmp / f"out-{runner.run_id}")


def _train_on_the_host(manifest: CustomNodeManifest, frame: pd.DataFrame) -> dict[str, Any]:
    """The same code in this process (one torch thread, as in the sandbox), torch's
    process-wide settings put back afterwards."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    sys.path.insert(0, str(ENTRY_DIR))
    torch.set_num_threads(1)
    try:
        namespace: dict[str, Any] = {}
        exec(compile(manifest.code, "sandbox_mlp.py", "exec"), namespace)
        params = {"layers": 1, "lr": 0.01, "val": 0.2, **PARAMS}
        return namespace["run"]({"train": frame}, params)["model"]  # type: ignore[no-any-return]
    finally:
        sys.path.remove(str(ENTRY_DIR))
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _host_predictions(model: TorchModel, frame: pd.DataFrame) -> np.ndarray:
    """p(up) - p(down) per row from the stored weights, computed here without ``predict``."""
    import torch

    net = _torchnets.build("mlp", len(FEATS), model.window, model.hidden, model.layers)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state.items()})
    net.eval()
    z = ((frame[FEATS].to_numpy() - model.mean) / model.std).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(z, model.window, axis=0)
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 2, 1))))
        proba = torch.softmax(logits, dim=1).double().numpy()
    out = np.full(len(frame), np.nan)
    out[model.window - 1 :] = proba[:, 2] - proba[:, 0]
    return out


def test_a_python_node_trains_a_model_that_predict_uses(sandbox: Sandbox) -> None:
    manifest = load_manifest(EXAMPLE)  # the documented example, code and manifest
    assert manifest.resources.wall_s == 120 and manifest.resources.memory_mb == 1024
    frame = _labelled()
    caps = AdminCaps(max_wall_s=90.0, max_memory_mb=2048)
    result = _run(sandbox, manifest, frame, PARAMS, caps)
    assert result.ok, (result.error, result.logs[-30:])
    log = "\n".join(result.logs)
    # the larger limits it asked for, clamped to the operator's caps and said so
    assert "[train] requested wall_s 120 clamped to the admin cap 90" in log
    assert "memory 1024 MiB" in log and "wall 90 s" in log
    assert "[train] best epoch " in log  # the node's own print

    path = Path(result.output_paths["model"])
    assert path.name == "model.afmodel"
    model = read_value(path)
    assert isinstance(model, TorchModel)
    assert (model.arch, model.window, model.hidden, model.layers) == ("mlp", 4, 8, 1)
    assert model.features == FEATS and len(model.history) == 12
    assert model.seen_until == frame["label_end"].max()
    assert model.params == {"epochs": 12, "lr": 0.01, "val": 0.2, "seed": 3}

    # the same code on the host trains the same network, bit for bit (the same torch build
    # on the same CPU, one thread, seeded, deterministic algorithms)
    here = _train_on_the_host(manifest, frame)
    assert list(model.state) == list(here["state_dict"])
    for key, tensor in here["state_dict"].items():
        assert model.state[key].dtype == np.float32
        assert model.state[key].tobytes() == tensor.numpy().tobytes(), key
    assert model.history == here["history"]

    # the built-in predict takes it as a train_torch model: its predictions are the network's
    predicted = run_node("predict", {"model": model, "data": frame}, in_sample=True)
    got = predicted["prediction"].to_numpy()
    np.testing.assert_allclose(got, _host_predictions(model, frame), rtol=0, atol=1e-12)
    assert np.isfinite(got[model.window - 1 :]).all()
    # out of sample by default: the rows the training saw are left NaN
    oos = run_node("predict", {"model": model, "data": frame})["prediction"]
    assert oos.isna().all()


def test_a_training_past_its_wall_time_is_killed(sandbox: Sandbox) -> None:
    code = (
        "import torch\n"
        "def run(inputs, params):\n"
        "    print('training', flush=True)\n"
        "    x = torch.randn(64, 64)\n"
        "    while True:\n"
        "        x = torch.tanh(x @ x)\n"
    )
    manifest = _manifest(code, resources={"wall_s": 3600})
    result = _run(sandbox, manifest, _labelled(50), caps=AdminCaps(max_wall_s=8.0))
    log = "\n".join(result.logs)
    assert result.error_kind == "TIMEOUT", (result.error, log[-2000:])
    assert result.error == "node 'train' ran past its 8 s wall time"
    assert "[train] requested wall_s 3600 clamped to the admin cap 8" in log
    assert "[train] training" in log


def test_a_training_past_its_memory_is_killed(sandbox: Sandbox) -> None:
    code = (
        "import torch\n"
        "def run(inputs, params):\n"
        "    print('allocating', flush=True)\n"
        "    block = torch.ones(1 << 28)  # 1 GiB of float32, every page touched\n"
        "    return {'model': {}}\n"
    )
    manifest = _manifest(code, resources={"memory_mb": 8192})
    result = _run(sandbox, manifest, _labelled(50), caps=AdminCaps(max_memory_mb=768))
    log = "\n".join(result.logs)
    assert result.error_kind == "MEMORY_LIMIT", (result.error, log[-2000:])
    assert result.error == "node 'train' exceeded its memory limit of 768 MiB"
    assert "[train] requested memory_mb 8192 clamped to the admin cap 768" in log
    assert "[train] allocating" in log


MODEL = (
    "import torch\n"
    "from alphaforge_ml import build_network\n"
    "def model(n_features, **changes):\n"
    "    net = build_network('mlp', n_features, 4, 8, 1)\n"
    "    value = {'arch': 'mlp', 'window': 4, 'hidden': 8, 'layers': 1,\n"
    "             'features': ['a', 'b', 'c'], 'state_dict': net.state_dict(),\n"
    "             'mean': [0.0, 0.0, 0.0], 'std': [1.0, 1.0, 1.0]}\n"
    "    value.update(changes)\n"
    "    return value\n"
)
BAD_OUTPUTS = {
    # the entrypoint refuses what it cannot write as a model file
    "unknown_arch": (
        MODEL + "def run(inputs, params):\n    return {'model': model(3, arch='gru')}\n",
        {},
        "INVALID_OUTPUT",
        "node 'train' failed (exit 2): output 'model': unknown arch 'gru'; choose one of mlp, "
        "lstm, tcn",
    ),
    "a_returned_pickle": (
        "import pickle\ndef run(inputs, params):\n    return {'model': pickle.dumps([1])}\n",
        {},
        "INVALID_OUTPUT",
        "node 'train' failed (exit 2): output 'model' must be a dict describing the model",
    ),
    # the host refuses what does not match the architecture it names
    "wrong_shapes": (
        MODEL + "def run(inputs, params):\n    return {'model': model(5)}\n",
        {},
        "INVALID_OUTPUT",
        "node 'train', output 'model': weight 'net.0.weight' has shape (8, 20); mlp(features=3, "
        "window=4, hidden=8, layers=1) needs (8, 12)",
    ),
    # a pickle written straight into /out, past the entrypoint: never unpickled
    "a_pickle_in_out": (
        "import os, pickle, sys\n"
        "def run(inputs, params):\n"
        "    with open(os.path.join(sys.argv[-1], 'model.afmodel'), 'wb') as fh:\n"
        "        fh.write(pickle.dumps({'arch': 'mlp'}))\n"
        "    os._exit(0)\n",
        {},
        "INVALID_OUTPUT",
        "node 'train', output 'model': its model file model.afmodel is not a model file (not a "
        "zip archive)",
    ),
    # a model file over the node's output cap (1 MiB): said before it is written
    "oversize": (
        MODEL + "def run(inputs, params):\n"
        "    net = build_network('mlp', 3, 64, 512, 2)\n"
        "    return {'model': model(3, window=64, hidden=512, layers=2,\n"
        "                           state_dict=net.state_dict())}\n",
        {"output_mb": 1},
        "OUTPUT_LIMIT",
        "node 'train' exceeded its output cap: output 'model': its model file is ",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_a_bad_model_output_is_refused_naming_the_output(sandbox: Sandbox, case: str) -> None:
    code, resources, kind, message = BAD_OUTPUTS[case]
    result = _run(sandbox, _manifest(code, resources=resources), _labelled(50))
    assert result.error_kind == kind, (result.error, result.logs[-20:])
    assert result.error is not None and result.error.startswith(message), result.error
    assert not result.output_paths


def test_a_node_that_does_not_use_torch_never_loads_it(sandbox: Sandbox) -> None:
    """torch is in the image, but nothing of it (nor of the model helper) is imported before
    the node's code or for its outputs: a node without it starts as fast as before."""
    code = (
        "import sys\n"
        "HEAVY = ('torch', 'sympy', 'networkx', 'jinja2', 'alphaforge_ml', 'torchnets')\n"
        "def run(inputs, params):\n"
        "    loaded = [m for m in HEAVY if m in sys.modules]\n"
        "    print('loaded:', loaded)\n"
        "    return {'report': {'loaded': len(loaded), 'modules': len(sys.modules)}}\n"
    )
    out = sandbox.run("python", code)
    assert out.result.ok, out.result.error
    assert "loaded: []" in out.log
    assert out.report is not None and out.report["loaded"] == 0
    # and torch is there for a node that does use it
    probe = (
        "import torch\n"
        "def run(inputs, params):\n"
        "    return {'report': {'threads': torch.get_num_threads(),\n"
        "                       'version': int(torch.__version__.startswith('2.13.0'))}}\n"
    )
    used = sandbox.run("python", probe)
    assert used.result.ok, used.result.error
    assert used.report == {"threads": 1, "version": 1}  # OMP_NUM_THREADS=1 in the sandbox
