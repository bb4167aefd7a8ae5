"""Operators set the sandbox caps through ALPHAFORGE_SANDBOX_* within hard ceilings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from runners.caps import (
    CEILINGS,
    ENV_PREFIX,
    SandboxSettingsError,
    clear_operator_caps,
    operator_caps,
)
from runners.custom import AdminCaps, CustomNodeManifest, ManifestCatalog, ResourceRequest
from runners.docker import user_code_runner
from runners.io import write_value
from runners.process import ALLOW_ENV, process_runner


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    operator_caps(fresh=True)
    yield
    monkeypatch.undo()
    operator_caps(fresh=True)


def test_without_settings_the_caps_are_security_mds_defaults() -> None:
    caps = operator_caps(fresh=True)
    assert caps == AdminCaps()
    assert (caps.memory_mb, caps.cpus, caps.pids, caps.wall_s) == (512, 1.0, 64, 30.0)
    assert caps.log_bytes == 1 << 20 and caps.tmp_mb == 16


def test_operator_values_become_the_caps_and_requests_are_clamped_to_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_MAX_MEMORY_MB", "4096")
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_MEMORY_MB", "1024")
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_MAX_WALL_S", "600")
    caps = operator_caps(fresh=True)
    assert (caps.memory_mb, caps.max_memory_mb, caps.max_wall_s) == (1024, 4096, 600.0)
    assert ResourceRequest().clamp(caps).memory_mb == 1024
    assert ResourceRequest(memory_mb=3000).clamp(caps).memory_mb == 3000
    limits = ResourceRequest(memory_mb=9000, wall_s=1000).clamp(caps)
    assert (limits.memory_mb, limits.wall_s) == (4096, 600.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MAX_MEMORY_MB",
            "99999",
            "ALPHAFORGE_SANDBOX_MAX_MEMORY_MB=99999 is above the ceiling 8192",
        ),
        ("PIDS", "100000", "ALPHAFORGE_SANDBOX_PIDS=100000 is above the ceiling 256"),
        ("MAX_WALL_S", "86400", "ALPHAFORGE_SANDBOX_MAX_WALL_S=86400 is above the ceiling 3600"),
        ("LOG_BYTES", str(1 << 30), "ALPHAFORGE_SANDBOX_LOG_BYTES=1073741824 is above the ceiling"),
        ("PIDS", "0", "ALPHAFORGE_SANDBOX_PIDS=0 is below the floor 8"),
        (
            "MEMORY_MB",
            "4096",
            "ALPHAFORGE_SANDBOX_MEMORY_MB=4096 is above ALPHAFORGE_SANDBOX_MAX_MEMORY_MB=2048",
        ),
        ("CPUS", "lots", "ALPHAFORGE_SANDBOX_CPUS: Input should be a valid number"),
    ],
)
def test_a_value_outside_the_ceilings_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(ENV_PREFIX + name, value)
    with pytest.raises(SandboxSettingsError, match="refusing to start the sandbox") as err:
        operator_caps(fresh=True)
    assert message in str(err.value)


def test_every_cap_has_a_ceiling() -> None:
    from dataclasses import fields

    assert {f.name for f in fields(AdminCaps)} == set(CEILINGS)
    defaults = AdminCaps()
    assert all(getattr(defaults, k) <= v for k, v in CEILINGS.items())


def test_the_sandbox_refuses_to_start_with_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked before the engine is even asked: the worker refuses user code at once."""
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_MAX_MEMORY_MB", "65536")
    monkeypatch.setenv(ALLOW_ENV, "1")
    clear_operator_caps()  # a new worker process: nothing read yet
    with pytest.raises(SandboxSettingsError, match="MAX_MEMORY_MB=65536 is above the ceiling"):
        user_code_runner(ManifestCatalog())


def test_an_operators_wall_time_cap_really_stops_a_node(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With ALPHAFORGE_SANDBOX_WALL_S=1 a node that sleeps 5 s fails TIMEOUT; with the default
    (30 s) the same node completes. Through the development process runner (it enforces wall
    time the same way) so the test needs no Docker engine; no caps are passed: the runner takes
    the operator's."""
    monkeypatch.setenv(ALLOW_ENV, "1")
    idx = pd.date_range("2024-01-01", periods=20, freq="h", tz="UTC", name="ts")
    write_value(pd.Series(np.arange(20.0), index=idx, name="x"), "series", tmp_path / "x.parquet")
    manifest = CustomNodeManifest(
        name="slow",
        version="1.0.0",
        language="python",
        inputs=[{"name": "x", "type": "series"}],
        outputs=[{"name": "y", "type": "series"}],
        code=(
            "import time\n\n"
            "def run(inputs, params):\n"
            "    time.sleep({s})\n"
            "    return {{'y': inputs['x']}}\n"
        ),
    )

    def run(sleep_s: float, out: str):  # type: ignore[no-untyped-def]
        m = manifest.model_copy(update={"code": manifest.code.format(s=sleep_s)})
        node = NodeIR(
            id="slow1",
            type=m.name,
            version=m.version,
            inputs={"x": InputBinding(node="d", port="x")},
            outputs={"y": "series"},
            runtime="python",
            code_hash=m.code_hash(),
        )
        runner = process_runner(ManifestCatalog([m]))  # its caps: operator_caps()
        return runner.run(node, {"x": str(tmp_path / "x.parquet")}, output_dir=tmp_path / out)

    monkeypatch.setenv("ALPHAFORGE_SANDBOX_WALL_S", "1")
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_MAX_WALL_S", "1")
    operator_caps(fresh=True)
    stopped = run(5, "a")
    assert stopped.error_kind == "TIMEOUT", stopped.error
    monkeypatch.delenv("ALPHAFORGE_SANDBOX_WALL_S")
    monkeypatch.delenv("ALPHAFORGE_SANDBOX_MAX_WALL_S")
    operator_caps(fresh=True)
    done = run(0.1, "b")
    assert done.ok, done.error
