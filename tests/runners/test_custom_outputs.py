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


def test_a_missing_output_is_refused(out: Path) -> None:
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


SER = manifest([{"name": "y", "type": "series"}])
FRAME = manifest([{"name": "f", "type": "frame"}])
MET = manifest([{"name": "m", "type": "metrics"}])
BIG = "1" + "0" * 4000  # a 4,001-digit integer


def refused(out: Path, m: CustomNodeManifest, text: str) -> SandboxFailure:
    port = m.outputs[0].name
    (out / f"{port}.json").write_text(text)
    with pytest.raises(SandboxFailure) as err:
        collect(out, m)
    return err.value


@pytest.mark.parametrize(
    ("m", "text", "kind", "code", "where"),
    [
        (SER, '{"values": [0, 1, Infinity, 0]}', "NON_FINITE_OUTPUT", "AF731", "row 2 (2024-01-03"),
        (SER, '{"values": [0, -Infinity, 0, 0]}', "NON_FINITE_OUTPUT", "AF731", "-inf"),
        (SER, '{"values": [0, 1e999, 0, 0]}', "NON_FINITE_OUTPUT", "AF731", "row 1"),
        (SIG, '{"values": [0, NaN, 0, 0]}', "NON_FINITE_OUTPUT", "AF731", "use 0 for no position"),
        (SIG, '{"values": [0, null, 0, 0]}', "NON_FINITE_OUTPUT", "AF731", "row 1"),
        (
            FRAME,
            '{"columns": {"a": [1, 2, 3, 4], "b": [1, 2, 3, -1e400]}}',
            "NON_FINITE_OUTPUT",
            "AF731",
            "column 'b', row 3",
        ),
        (SER, f'{{"values": [0, {BIG}, 0, 0]}}', "NUMBER_TOO_LARGE", "AF732", "4,001 digits"),
        (
            FRAME,
            f'{{"columns": {{"a": [0, 0, -{BIG}, 0]}}}}',
            "NUMBER_TOO_LARGE",
            "AF732",
            "column 'a', row 2",
        ),
        (MET, f'{{"values": {{"n": {BIG}}}}}', "NUMBER_TOO_LARGE", "AF732", "metric 'n'"),
        (MET, '{"values": {"n": Infinity}}', "NON_FINITE_OUTPUT", "AF731", "metric 'n' is +inf"),
        (MET, '{"values": {"n": NaN}}', "NON_FINITE_OUTPUT", "AF731", "use null"),
        (MET, '{"values": {"n": "high"}}', "INVALID_METRIC", "AF733", "a string ('high')"),
        (MET, '{"values": {"n": {"a": 1}}}', "INVALID_METRIC", "AF733", "an object"),
        (MET, '{"values": {"n": [1, 2]}}', "INVALID_METRIC", "AF733", "a list"),
        (MET, '{"values": {"n": true}}', "INVALID_METRIC", "AF733", "write 1 or 0"),
        (MET, '{"values": {"a<b>": 1}}', "INVALID_METRIC", "AF733", "not a usable metric name"),
        (MET, '{"values": {"../x": 1}}', "INVALID_METRIC", "AF733", "not a usable metric name"),
        (MET, '{"values": [1, 2]}', "INVALID_METRIC", "AF733", "object of names"),
        (MET, json.dumps({"values": {"x" * 300: 1}}), "OUTPUT_LIMIT", "AF734", "300 characters"),
        (
            MET,
            json.dumps({"values": {f"m{i}": i for i in range(1001)}}),
            "OUTPUT_LIMIT",
            "AF734",
            "1,001 metrics",
        ),
        (
            FRAME,
            json.dumps({"columns": {f"c{i}": [0, 0, 0, 0] for i in range(1001)}}),
            "OUTPUT_LIMIT",
            "AF734",
            "1,001 columns",
        ),
        (SER, "[" * 100_000 + "]" * 100_000, "INVALID_OUTPUT", "AF730", "nested too deeply"),
        (SER, '{"values": [0, 0, 0, 0], "index": ["9999999999"] }', "INVALID_OUTPUT", "AF730", ""),
    ],
)
def test_numbers_and_sizes_are_checked_with_a_named_error(
    out: Path, m: CustomNodeManifest, text: str, kind: str, code: str, where: str
) -> None:
    err = refused(out, m, text)
    assert (err.kind, err.code) == (kind, code), str(err)
    message = str(err)
    assert message.startswith("node 'node7', output ") and where in message
    assert "Traceback" not in message and str(out.parent) not in message


def test_valid_metrics_keep_integers_floats_and_null(out: Path) -> None:
    write(out, "m.json", {"values": {"n": 3, "hit rate": 0.5, "undefined": None, "big": 1e300}})
    assert read_value(collect(out, MET)["m"]) == {
        "n": 3,
        "hit rate": 0.5,
        "undefined": None,
        "big": 1e300,
    }


def test_nan_is_a_missing_value_in_a_series_and_a_frame(out: Path) -> None:
    (out / "y.json").write_text('{"values": [1, NaN, null, 2]}')
    s = read_value(collect(out, SER)["y"])
    assert s.isna().tolist() == [False, True, True, False]


def test_checking_10000_rows_stays_fast(out: Path) -> None:
    import time

    idx = pd.date_range("2024-01-01", periods=10_000, freq="min", tz="UTC", name="ts")
    write(out, "y.json", {"values": list(np.random.default_rng(0).normal(size=10_000))})
    t0 = time.perf_counter()
    collect_outputs(out, SER, idx, 1 << 24, "node7", out.parent / "dest")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ({"sharpe": float("inf")}, "metric 'sharpe' is inf"),
        ({"notes": ["ok", {"x": float("nan")}]}, "metric 'notes' is nan"),
        ({"n": 10**4000}, "metric 'n' is an integer too large"),
        ({"n": np.float64("-inf")}, "metric 'n' is -inf"),
    ],
)
def test_built_in_metrics_are_checked_for_finite_numbers_at_any_depth(
    metrics: dict[str, Any], words: str
) -> None:
    from runners.base import RunnerError
    from runners.io import check_value

    with pytest.raises(RunnerError, match=words):
        check_value(metrics, "metrics", "output 'metrics' of node 'result'")
    check_value(
        {"sharpe": None, "start": "2024-01-01", "notes": ["a"], "bars": 3, "ok": True},
        "metrics",
        "output 'metrics' of node 'result'",
    )
