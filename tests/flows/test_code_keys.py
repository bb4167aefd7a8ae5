"""The stale-cache regression: a node whose code changed is recomputed, through the real flow.

Each test edits code that computes a node — a real built-in module loaded from an edited copy,
or a test node's helper module (the way ``backtest`` calls ``_kernel``) — and runs the pipeline
with ``flows.run.run_pipeline`` on the session's Prefect server: the edited node and its
downstream are recomputed and give the new numbers (checked against numpy), what did not change
is served from the cache, and restoring the code brings back the first run's artifacts.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from dsl.ir import PipelineIR
from nodes import codehash
from nodes.base import Node, registry
from runners.io import read_value
from tests.flows.testnodes import node, ref

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api", "test_nodes")]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "data" / "sample_ohlcv.csv"


def _run(settings, base_dir: Path, ir: PipelineIR):  # type: ignore[no-untyped-def]
    from tests.flows.support import run_ir

    result = run_ir(settings, ir, base_dir, track=False)
    assert result.status == "completed", result.error
    return result


def _node_record(result, node_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads((result.run_dir / "nodes" / f"{node_id}.json").read_text())


def _output(result, node_id: str, port: str = "value") -> pd.Series:  # type: ignore[no-untyped-def]
    return read_value(_node_record(result, node_id)["output_paths"][port])


def _close() -> np.ndarray:
    return pd.read_csv(SAMPLE)["close"].to_numpy(dtype=float)


# ---- a real built-in, loaded from an edited copy of its module ------------------------------


def _load_module_from(name: str, path: Path) -> ModuleType:
    """Execute ``path`` as module ``name`` (what an edited installation would import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def edited_indicators(tmp_path: Path) -> Iterator[Path]:
    """``nodes.builtin.indicators`` with ``sma`` edited to a rolling max, loaded from a copy;
    the real module (and its node types in the registry) come back afterwards."""
    original = sys.modules["nodes.builtin.indicators"]
    source = Path(original.__file__ or "").read_text()
    old = '.mean().rename("sma")'
    assert source.count(old) == 1
    copy = tmp_path / "edited" / "indicators.py"
    copy.parent.mkdir()
    copy.write_text(source.replace(old, '.max().rename("sma")'))
    try:
        yield copy
    finally:
        sys.modules["nodes.builtin.indicators"] = original
        for value in vars(original).values():
            if (
                isinstance(value, type)
                and issubclass(value, Node)
                and value.__module__ == ("nodes.builtin.indicators")
                and "name" in vars(value)
            ):
                registry().register(value)  # the original class replaces the edited one
        codehash.clear_cache()


def _sma_ir() -> PipelineIR:
    return PipelineIR(
        name="code_keys",
        nodes=(
            node("data", "csv_ohlcv", {"path": str(SAMPLE)}),
            node("avg", "sma", {"window": 5}, series=ref("data", "bars", "close")),
            node("z", "zscore", {"window": 10}, series=ref("avg", "value")),
        ),
    )


def test_an_edited_builtin_module_is_recomputed_and_unchanged_nodes_stay_cached(
    settings, tmp_path: Path, edited_indicators: Path
) -> None:
    ir = _sma_ir()
    close = _close()
    first = _run(settings, tmp_path, ir)
    assert first.node_states == dict.fromkeys(ir.node_ids(), "completed")
    mean5 = np.convolve(close, np.ones(5) / 5, mode="valid")
    np.testing.assert_allclose(_output(first, "avg").to_numpy()[4:], mean5, rtol=1e-12)
    fp_first = _node_record(first, "avg")["code_fingerprint"]
    assert fp_first and fp_first == _node_record(first, "z")["code_fingerprint"]  # same module

    again = _run(settings, tmp_path, ir)
    assert again.node_states == dict.fromkeys(ir.node_ids(), "cached")

    _load_module_from("nodes.builtin.indicators", edited_indicators)  # re-registers sma & co
    edited = _run(settings, tmp_path, ir)
    assert edited.node_states == {"data": "cached", "avg": "completed", "z": "completed"}
    max5 = np.lib.stride_tricks.sliding_window_view(close, 5).max(axis=1)
    np.testing.assert_allclose(_output(edited, "avg").to_numpy()[4:], max5, rtol=1e-12)
    assert not np.allclose(max5, mean5)
    rec = _node_record(edited, "avg")
    assert rec["code_fingerprint"] != fp_first and rec["key"] != _node_record(first, "avg")["key"]
    manifest = json.loads(
        (Path(rec["output_paths"]["value"]).parent / "_manifest.json").read_text()
    )
    assert manifest["code_fingerprint"] == rec["code_fingerprint"]
    assert _node_record(edited, "data")["key"] == _node_record(first, "data")["key"]


def test_restoring_the_code_serves_the_first_artifacts_again(
    settings, tmp_path: Path, edited_indicators: Path
) -> None:
    ir = _sma_ir()
    first = _run(settings, tmp_path, ir)
    original = sys.modules["nodes.builtin.indicators"]
    _load_module_from("nodes.builtin.indicators", edited_indicators)
    assert _run(settings, tmp_path, ir).node_states["avg"] == "completed"
    sys.modules["nodes.builtin.indicators"] = original
    for name in ("sma", "zscore"):
        registry().register(getattr(original, registry().get(name).__qualname__))
    back = _run(settings, tmp_path, ir)
    assert back.node_states == dict.fromkeys(ir.node_ids(), "cached")
    assert _node_record(back, "avg")["key"] == _node_record(first, "avg")["key"]
    pd.testing.assert_series_equal(_output(back, "avg"), _output(first, "avg"))


# ---- a helper module a node calls (the way backtest calls _kernel) --------------------------

NODE_SOURCE = """
from nodes.base import Node, Port, PortType, register
from {pkg}._helper import scale


@register
class Scaled(Node):
    name = "t_scaled_{tag}"
    inputs = (Port("series", PortType.SERIES),)
    outputs = (Port("value", PortType.SERIES),)

    def run(self, inputs, params):
        return {{"value": scale(inputs["series"])}}
"""

HELPER_SOURCE = "def scale(x):\n    return x * {factor}\n"


@pytest.fixture
def helper_package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A package on sys.path: ``node.py`` registers ``t_scaled_<tag>``, which calls
    ``_helper.scale``; yields (package name, package dir) and unregisters it afterwards."""
    tag = uuid.uuid4().hex[:8]
    pkg = f"afx_codekeys_{tag}"
    root = tmp_path / "code"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "node.py").write_text(NODE_SOURCE.format(pkg=pkg, tag=tag))
    (root / pkg / "_helper.py").write_text(HELPER_SOURCE.format(factor=2.0))
    sys.path.insert(0, str(root))
    try:
        importlib.import_module(f"{pkg}.node")
        yield pkg, root / pkg
    finally:
        sys.path.remove(str(root))
        registry()._types.pop(f"t_scaled_{tag}", None)
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]
        codehash.clear_cache()


def test_an_edited_helper_module_recomputes_the_node_that_calls_it(
    settings, tmp_path: Path, helper_package: tuple[str, Path]
) -> None:
    pkg, pkg_dir = helper_package
    type_name = f"t_scaled_{pkg.rsplit('_', 1)[1]}"
    ir = PipelineIR(
        name="code_keys_helper",
        nodes=(
            node("data", "csv_ohlcv", {"path": str(SAMPLE)}),
            node("scaled", type_name, series=ref("data", "bars", "close")),
            node("avg", "sma", {"window": 3}, series=ref("scaled", "value")),
        ),
    )
    close = _close()
    first = _run(settings, tmp_path, ir)
    np.testing.assert_allclose(_output(first, "scaled").to_numpy(), close * 2.0, rtol=1e-15)

    (pkg_dir / "_helper.py").write_text(HELPER_SOURCE.format(factor=3.0))
    importlib.reload(importlib.import_module(f"{pkg}._helper"))
    importlib.reload(importlib.import_module(f"{pkg}.node"))  # re-registers: forgets the hashes
    second = _run(settings, tmp_path, ir)
    assert second.node_states == {"data": "cached", "scaled": "completed", "avg": "completed"}
    np.testing.assert_allclose(_output(second, "scaled").to_numpy(), close * 3.0, rtol=1e-15)
    mean3 = np.convolve(close * 3.0, np.ones(3) / 3, mode="valid")
    np.testing.assert_allclose(_output(second, "avg").to_numpy()[2:], mean3, rtol=1e-12)
    # sma's own code did not change: its key moved only because its input's key did
    assert (
        _node_record(second, "avg")["code_fingerprint"]
        == _node_record(first, "avg")["code_fingerprint"]
    )

    third = _run(settings, tmp_path, ir)
    assert third.node_states == dict.fromkeys(ir.node_ids(), "cached")


# ---- a custom node: its code hash and the sandbox's own code --------------------------------

SCALE_PIPELINE = """pipeline pinned "Pinned"
use scale@1
data = csv_ohlcv(path="sample_ohlcv.csv")
x = scale(data.close)
"""


def test_a_custom_node_is_recomputed_when_the_sandbox_code_changes(
    settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the development process runner (no engine needed): the custom node is cached
    on a second run, and recomputed once a sandbox entrypoint file its runtime's fingerprint is
    taken from (``runners.registry.SANDBOX_DIR``, pointed at an edited copy) changed."""
    from docker.errors import DockerException

    import runners.docker.runner as runner_mod
    from cli.nodes_dir import LocalNodeResolver
    from dsl import compile_source
    from runners import registry as runners_registry
    from runners.custom import CustomNodeManifest
    from runners.nodestore import ManifestStore

    def no_engine(**_: object) -> object:
        raise DockerException("no engine on this machine")

    monkeypatch.setattr(runner_mod, "docker_client", no_engine)
    monkeypatch.setenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", "1")
    manifest = CustomNodeManifest(
        name="scale",
        version="1.0.0",
        language="python",
        inputs=({"name": "x", "type": "series"},),  # type: ignore[arg-type]
        outputs=({"name": "y", "type": "series"},),  # type: ignore[arg-type]
        code="def run(inputs, params):\n    return {'y': inputs['x'] * 2}\n",
    )
    ManifestStore(settings.root / "custom-nodes").put(manifest)
    compiled = compile_source(SCALE_PIPELINE, resolver=LocalNodeResolver([manifest]))
    assert compiled.ir is not None, compiled.format()
    ir = compiled.ir
    base_dir = SAMPLE.parent

    first = _run(settings, base_dir, ir)
    assert first.node_states == {"data": "completed", "x": "completed"}
    np.testing.assert_allclose(_output(first, "x", "y").to_numpy(), _close() * 2)
    from runners.registry import code_fingerprint

    assert _node_record(first, "x")["code_fingerprint"] == code_fingerprint(ir.node("x"))
    assert _run(settings, base_dir, ir).node_states == {"data": "cached", "x": "cached"}

    edited = tmp_path / "sandbox"
    shutil.copytree(runners_registry.SANDBOX_DIR, edited)
    with (edited / "python_entry.py").open("a") as fh:
        fh.write("\n# a fix to the entrypoint\n")
    monkeypatch.setattr(runners_registry, "SANDBOX_DIR", edited)
    codehash.clear_cache()
    again = _run(settings, base_dir, ir)
    assert again.node_states == {"data": "cached", "x": "completed"}
    assert _node_record(again, "x")["key"] != _node_record(first, "x")["key"]
