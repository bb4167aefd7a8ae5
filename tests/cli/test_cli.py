"""The `alphaforge` command: exit codes 0/1/2, diagnostics, --json shape, runs and nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.flows.testnodes import crossover_ir

ROOT = Path(__file__).resolve().parents[2]
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
SMA = ROOT / "examples" / "sma_crossover.af"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script in a subprocess, as a user runs it."""
    return subprocess.run(
        [str(ALPHAFORGE), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ},
        timeout=300,
    )


def test_validate_ok_prints_a_summary_and_exits_0(capsys) -> None:
    assert main(["validate", str(SMA)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and "sma_crossover" in out and "5 steps" in out


def test_validate_accepts_sweep_blocks_and_refuses_a_lone_walkforward(tmp_path, capsys) -> None:
    # sweep and walkforward blocks run as sweeps now: no AF008 "not executed" warning for them
    af = tmp_path / "blocks.af"
    swept = (
        (SMA.parent / "sma_sweep.af").read_text().replace("data/", str(SMA.parent / "data") + "/")
    )
    af.write_text(swept + "\nwalkforward(train=2y, test=6M, step=6M, embargo=5d)\n")
    assert main(["validate", str(af)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ") and "AF008" not in out + err
    af.write_text(SMA.read_text() + "\nwalkforward(train=2y, test=6M, step=6M)\n")
    assert main(["validate", str(af)]) != 0
    out, err = capsys.readouterr()
    (line,) = [x for x in (out + err).splitlines() if "AF312" in x]
    assert "walkforward needs a sweep block" in line and f"{af}:" in line


def test_validate_prints_gcc_style_diagnostics_and_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.af"
    bad.write_text('pipeline p\n\ndata = csv_ohlcv(path="x.csv")\nfast = smaa(data.close)\n')
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err and "error" in err and "sma" in err


@pytest.mark.parametrize("command", ["validate", "compile", "run"])
def test_a_missing_file_exits_2(command, tmp_path, capsys) -> None:
    assert main([command, str(tmp_path / "nope.af")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_compile_prints_the_ir_as_json(capsys) -> None:
    assert main(["compile", str(SMA)]) == 0
    ir = json.loads(capsys.readouterr().out)
    assert ir["name"] == "sma_crossover"
    assert [n["id"] for n in ir["nodes"]] == ["data", "fast", "slow", "signal", "result"]


def test_nodes_list_and_show(capsys) -> None:
    assert main(["nodes", "list", "--json"]) == 0
    names = {spec["name"] for spec in json.loads(capsys.readouterr().out)}
    assert {"csv_ohlcv", "sma", "crossover", "backtest"} <= names
    assert main(["nodes", "show", "sma"]) == 0
    out = capsys.readouterr().out
    assert "window" in out and "series" in out


def test_nodes_show_of_an_unknown_name_suggests_and_exits_2(capsys) -> None:
    assert main(["nodes", "show", "smaa"]) == 2
    assert "did you mean 'sma'" in capsys.readouterr().err


def test_runs_show_of_an_unknown_id_exits_2(tmp_path, capsys) -> None:
    assert main(["runs", "show", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "no run matching 'nope'" in capsys.readouterr().err


def test_convert_writes_af_text_that_compiles_with_the_written_wiring(tmp_path, capsys) -> None:
    doc = {
        "name": "from_json",
        "pipeline": [
            {
                "id": "data",
                "type": "csv_ohlcv",
                "params": {"path": str(SMA.parent / "data" / "sample_ohlcv.csv")},
            },
            {"id": "fast", "type": "sma", "depends_on": ["data.close"], "params": {"window": 10}},
            {"id": "slow", "type": "sma", "depends_on": ["data.close"], "params": {"window": 30}},
            {"id": "signal", "type": "crossover", "depends_on": ["fast", "slow"]},
            {"id": "result", "type": "backtest", "depends_on": ["data", "signal"]},
        ],
    }
    src, out = tmp_path / "p.json", tmp_path / "p.af"
    src.write_text(json.dumps(doc))
    assert main(["convert", str(src), "-o", str(out)]) == 0, capsys.readouterr().err
    assert "fast = sma(data.close, window=10)" in out.read_text()
    assert main(["compile", str(out)]) == 0
    ir = json.loads(capsys.readouterr().out)
    assert ir["name"] == "from_json"
    assert [n["id"] for n in ir["nodes"]] == ["data", "fast", "slow", "signal", "result"]
    wired = {k: (v["node"], v["port"]) for k, v in ir["nodes"][3]["inputs"].items()}
    assert wired == {"fast": ("fast", "value"), "slow": ("slow", "value")}


def test_convert_of_unknown_node_types_still_writes_the_text_and_exits_2(tmp_path, capsys) -> None:
    src = tmp_path / "seed.yaml"
    src.write_text(
        "pipeline:\n  - data:\n      using: data.binance\n      outputs: {frame: ohlcv}\n"
    )
    assert main(["convert", str(src)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("pipeline seed\n") and "ohlcv = binance()" in captured.out
    assert "seed.af:4:9: error AF101" in captured.err  # where the edit is needed
    assert "converted, but it does not validate yet (1 error(s))" in captured.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pipeline: [a, [", "neither JSON nor YAML"),
        ('{"pipeline": [{"id": "a", "type": "t", "params": {"x": {"k": 1}}}]}', "a dict cannot"),
    ],
)
def test_convert_of_bad_input_says_what_and_exits_2(tmp_path, capsys, text, message) -> None:
    src = tmp_path / "bad.json"
    src.write_text(text)
    assert main(["convert", str(src)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:" in err and message in err and "Traceback" not in err


# ---- runs through Prefect (a real server, see conftest) ------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_run_json_prints_one_object_and_nothing_else(tmp_path) -> None:
    proc = _cli("run", str(SMA), "--json", "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert {"run_id", "status", "run_dir", "metrics", "mlflow_run_id", "flow_run_id"} <= set(
        payload
    )
    assert payload["status"] == "completed" and payload["metrics"]["num_trades"] > 0
    assert Path(payload["run_dir"]).is_relative_to(tmp_path / "data")
    assert "Traceback" not in proc.stderr and "Task run" not in proc.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_run_prints_progress_metrics_and_where_results_are(tmp_path) -> None:
    data = tmp_path / "data"
    proc = _cli("run", "examples/sma_crossover.af", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for node_id in ("data", "fast", "slow", "signal", "result"):
        assert f"✓ {node_id}" in out
    assert "sharpe" in out and "run dir" in out and "MLflow run" in out and "Prefect run" in out
    assert "Finished in state" not in out + proc.stderr  # Prefect's own lines stay in run.log
    again = _cli("run", "examples/sma_crossover.af", "--data-dir", str(data))
    assert again.returncode == 0 and "↺ result" in again.stdout and "cached" in again.stdout
    listing = _cli("runs", "list", "--json", "--data-dir", str(data))
    runs = json.loads(listing.stdout)
    assert len(runs) == 2 and runs[0]["run_id"] > runs[1]["run_id"]
    shown = _cli("runs", "show", runs[1]["run_id"][:22], "--data-dir", str(data))
    assert shown.returncode == 0 and "completed" in shown.stdout and "result" in shown.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_run_with_bad_data_exits_1_with_the_data_error(tmp_path) -> None:
    (tmp_path / "bad.csv").write_text(
        "date,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1,2,0.5,,10\n"
    )
    af = tmp_path / "bad.af"
    af.write_text(SMA.read_text().replace("data/sample_ohlcv.csv", "bad.csv"))
    proc = _cli("run", str(af), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 1
    assert "NAN_PRICE" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert "✗ data" in proc.stdout and "- result" in proc.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "test_nodes")
def test_run_of_ir_json_with_a_failing_node_exits_1(tmp_path, capsys) -> None:
    ir_file = tmp_path / "p.json"
    ir_file.write_text(crossover_ir(fail=True).to_json())
    code = main(["run", str(ir_file), "--json", "--data-dir", str(tmp_path / "data")])
    assert code == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "failed"
    assert payload["node_states"]["broken"] == "failed"
    assert payload["node_states"]["result"] == "skipped"
    assert "the oracle is closed" in payload["error"]


# ---- the embedded Prefect server (no PREFECT_API_URL) ----------------------------------------


def _processes_with_env(needle: str) -> list[int]:
    """Pids of live processes whose environment mentions ``needle`` (from /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_run_whose_embedded_prefect_server_starts_too_slowly_says_what_to_do(tmp_path) -> None:
    """A 1 s start-up allowance stands in for a loaded machine: the server cannot answer that
    soon (importing it alone takes longer), and the user is told the two ways out."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.run(
        [str(ALPHAFORGE), "run", str(SMA), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())  # rich wraps long lines
    assert "the embedded Prefect server did not start within 1 s" in err, err
    assert "ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S=300" in err
    assert "ALPHAFORGE_PREFECT_API_URL=" in err
    assert "Traceback" not in proc.stdout + proc.stderr
    # the half-started server went with the command (Prefect stops it at exit)
    assert _processes_with_env(str(data / "prefect")) == []


def test_apply_prefect_env_gives_the_embedded_server_our_start_up_allowance(
    monkeypatch, tmp_path
) -> None:
    from flows.settings import EPHEMERAL_STARTUP_TIMEOUT_ENV, CoreSettings

    monkeypatch.setenv("ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S", "240")
    monkeypatch.setenv(EPHEMERAL_STARTUP_TIMEOUT_ENV, "20")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ALPHAFORGE_PREFECT_API_URL", raising=False)
    CoreSettings(data_dir=tmp_path / "data").apply_prefect_env()
    assert os.environ[EPHEMERAL_STARTUP_TIMEOUT_ENV] == "240"
    monkeypatch.delenv("ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S")
    CoreSettings(data_dir=tmp_path / "data").apply_prefect_env()
    assert os.environ[EPHEMERAL_STARTUP_TIMEOUT_ENV] == "120"  # Prefect's own 20 s is too short


def test_only_the_start_up_time_out_gets_the_start_up_advice(tmp_path) -> None:
    from flows.settings import CoreSettings, prefect_startup_failure

    settings = CoreSettings(data_dir=tmp_path, prefect_startup_timeout_s=90)
    prefect = RuntimeError(
        "Timed out while attempting to connect to ephemeral Prefect API server. stdout: ..."
    )
    try:
        try:
            raise prefect
        except RuntimeError as inner:
            raise ValueError("flow run failed") from inner
    except ValueError as outer:
        wrapped = outer
    for exc in (prefect, wrapped):  # Prefect's own, or wrapped by the engine on its way up
        hint = prefect_startup_failure(exc, settings)
        assert hint is not None and "within 90 s" in hint and "_TIMEOUT_S=300" in hint
    assert prefect_startup_failure(RuntimeError("connection refused"), settings) is None
