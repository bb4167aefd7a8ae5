"""The development process runner: off unless enabled, loud about it, still limited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from runners.custom import CustomNodeManifest, ManifestCatalog, template
from runners.docker import SandboxUnavailable, user_code_runner
from runners.io import read_value, write_value
from runners.process import ALLOW_ENV, ProcessRunnerDisabled, process_runner
from runners.sandboxed import SandboxedRunner


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, pd.Series]:
    idx = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC", name="ts")
    x = pd.Series(np.linspace(1, 2, 50), index=idx, name="x")
    write_value(x, "series", tmp_path / "x.parquet")
    return tmp_path / "x.parquet", read_value(tmp_path / "x.parquet")


def run(m: CustomNodeManifest, path: Path, out: Path) -> Any:
    node = NodeIR(
        id="dev1",
        type=m.name,
        version=m.version,
        inputs={"x": InputBinding(node="d", port="x")},
        outputs={p.name: p.type.value for p in m.outputs},
        runtime=m.language,
        code_hash=m.code_hash(),
    )
    return process_runner(ManifestCatalog([m])).run(node, {"x": str(path)}, output_dir=out)


def test_process_runner_is_off_unless_the_operator_enables_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(ProcessRunnerDisabled, match=ALLOW_ENV):
        process_runner(ManifestCatalog())


@pytest.mark.parametrize("language", ["python", "javascript", "wasm"])
def test_templates_run_and_every_log_says_no_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, series: Any, language: str
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")
    path, x = series
    result = run(template(language, "indicator"), path, tmp_path / "o")  # type: ignore[arg-type]
    assert result.ok, result.error
    assert result.logs[0].startswith("[dev1] WARNING: ran WITHOUT a sandbox")
    assert result.usage["sandboxed"] is False
    want = x.ewm(span=20, adjust=False).mean()
    got = read_value(result.output_paths["ema"])
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False)


def test_process_runner_still_enforces_wall_time_and_output_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, series: Any
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")
    path, _ = series

    def hostile(code: str, **resources: Any) -> CustomNodeManifest:
        return CustomNodeManifest(
            name="h",
            version="1.0.0",
            language="python",
            inputs=[{"name": "x", "type": "series"}],
            outputs=[{"name": "y", "type": "series"}],
            code=code,
            resources=resources,
        )

    sleeper = hostile("import time\ndef run(i, p):\n    time.sleep(100)\n", wall_s=1)
    assert run(sleeper, path, tmp_path / "a").error_kind == "TIMEOUT"
    printer = hostile("def run(i, p):\n    while True: print('x' * 999)\n")
    assert run(printer, path, tmp_path / "b").error_kind == "OUTPUT_LIMIT"


def test_without_docker_user_code_is_refused_unless_process_runner_enabled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match="refusing to run user code"):
        user_code_runner(ManifestCatalog())
    monkeypatch.setenv(ALLOW_ENV, "1")
    runner = user_code_runner(ManifestCatalog())
    assert isinstance(runner, SandboxedRunner) and runner.executor.name == "process"


def test_a_model_output_from_the_process_runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, series: Any
) -> None:
    """The development runner finds the model helper and train_torch's networks beside its
    entrypoint (``runners/sandbox``) and stores a model output as the sandbox does."""
    monkeypatch.setenv(ALLOW_ENV, "1")
    path, x = series
    code = (
        "import torch\n"
        "from alphaforge_ml import build_network\n"
        "def run(inputs, params):\n"
        "    torch.manual_seed(0)\n"
        "    net = build_network('tcn', 1, 6, 4, 2)\n"
        "    return {'model': {'arch': 'tcn', 'window': 6, 'hidden': 4, 'layers': 2,\n"
        "                      'features': ['x'], 'state_dict': net.state_dict(),\n"
        "                      'mean': [1.5], 'std': [0.3]}}\n"
    )
    manifest = CustomNodeManifest(
        name="dev_trainer",
        version="1.0.0",
        language="python",
        inputs=[{"name": "x", "type": "series"}],
        outputs=[{"name": "model", "type": "model"}],
        code=code,
    )
    result = run(manifest, path, tmp_path / "o")
    assert result.ok, (result.error, result.logs[-20:])
    model = read_value(result.output_paths["model"])
    assert (model.arch, model.features, model.history) == ("tcn", ["x"], [])
    assert model.seen_until == x.index[-1]  # the input's last timestamp, when not given
    import torch

    from nodes.builtin import _torchnets

    torch.manual_seed(0)
    expected = _torchnets.build("tcn", 1, 6, 4, 2).state_dict()
    assert all(model.state[k].tobytes() == v.numpy().tobytes() for k, v in expected.items())
