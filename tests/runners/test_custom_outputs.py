"""Host-side validation of what a sandbox left in its output dir (no Docker needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from runners.custom import CustomNodeManifest
from runners.io import read_value
from runners.jobs import SandboxFailure, iso_index
from runners.outputs import collect_outputs

IDX = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC", name="ts")


def manifest(outputs: list[dict[str, Any]]) -> CustomNodeManifest:
    return CustomNodeManifest(
        name="n",
        version="1.0.0",
        language="python",
        outputs=outputs,
        code="def run(i, p): return {}",
    )


SIG = manifest([{"name": "s", "type": "signal"}])


def collect(out: Path, m: CustomNodeManifest = SIG, cap: int = 1 << 20) -> dict[str, str]:
    return collect_outputs(out, m, IDX, cap, "node7", out.parent / "dest")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def write(out: Path, name: str, data: Any) -> None:
    (out / name).write_text(json.dumps(data))


def test_a_valid_signal_becomes_an_artifact_with_the_input_index(out: Path) -> None:
    write(out, "s.json", {"kind": "series", "values": [0, 1, -1, 0.5]})
    s = read_value(collect(out)["s"])
    assert list(s) == [0, 1, -1, 0.5] and s.index.equals(IDX)


def test_a_frame_with_its_own_index_and_declared_columns(out: Path) -> None:
    m = manifest([{"name": "f", "type": "frame", "columns": ["a"]}])
    write(out, "f.json", {"index": iso_index(IDX), "columns": {"a": [1, None, 3, 4]}})
    frame = read_value(collect(out, m)["f"])
    assert np.isnan(frame["a"].iloc[1]) and frame.index.equals(IDX)
    write(out, "f.json", {"columns": {"b": [1, 2, 3, 4]}})
    with pytest.raises(SandboxFailure, match="lacks the declared columns"):
        collect(out, m)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"values": [0, 1, 2, 0]}, r"\[-1, 1\]"),
        ({"values": [0, None, 0, 0]}, "NaN"),
        ({"values": [0, 1]}, "has 2 rows, the input has 4"),
        ({"values": [0, 0, 0, "1"]}, "not a number"),
        ({"values": [0, 0, 0, True]}, "not a number"),
        ({"values": [0, 0, 0, 0], "index": ["2024-01-01"] * 4}, "differs from the input"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_bad_outputs_are_refused_naming_node_and_port(out: Path, data: Any, message: str) -> None:
    write(out, "s.json", data)
    with pytest.raises(SandboxFailure, match=message) as err:
        collect(out)
    assert err.value.kind == "INVALID_OUTPUT" and "node7" in str(err.value)


def test_infinity_and_missing_outputs_are_refused(out: Path) -> None:
    (out / "s.json").write_text('{"values": [0, Infinity, 0, 0]}')
    with pytest.raises(SandboxFailure, match="Infinity"):
        collect(out)
    os.unlink(out / "s.json")
    with pytest.raises(SandboxFailure, match="was not produced"):
        collect(out)


def test_symlinks_hardlinks_fifos_and_dirs_are_sandbox_violations(
    out: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text('{"values": [0, 0, 0, 0]}')
    cases = [
        lambda p: os.symlink(secret, p),
        lambda p: os.link(secret, p),
        lambda p: os.mkfifo(p),
        lambda p: os.mkdir(p),
    ]
    for make in cases:
        target = out / "s.json"
        make(target)
        with pytest.raises(SandboxFailure) as err:
            collect(out)
        assert err.value.kind == "SANDBOX_VIOLATION"
        if target.is_dir() and not target.is_symlink():
            target.rmdir()
        else:
            target.unlink()


def test_oversized_outputs_and_too_many_entries_are_output_limits(out: Path) -> None:
    write(out, "s.json", {"values": [0, 0, 0, 0]})
    (out / "junk").write_bytes(b"x" * 5000)
    with pytest.raises(SandboxFailure, match="more than 4096 bytes") as err:
        collect(out, cap=4096)
    assert err.value.kind == "OUTPUT_LIMIT"
    for i in range(40):
        (out / f"f{i}").write_text("x")
    with pytest.raises(SandboxFailure, match="entries") as err:
        collect(out)
    assert err.value.kind == "OUTPUT_LIMIT"
