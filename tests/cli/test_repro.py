"""Reproducibility end to end: `alphaforge rerun`, `diff`, `runs export|import` as a user runs
them (the console script in a subprocess, against the session's Prefect server).

One original run of the sample pipeline is shared by the module; its re-run, the changed-param
run and the bundle build on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
EXAMPLES = ROOT / "examples"

# one xdist worker runs the whole module, so its module-scoped run and rerun (two CLI
# processes) are made once (spread test by test, each worker made its own)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.xdist_group("repro"),
]


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALPHAFORGE_DATA_DIR": str(data)}
    return subprocess.run(
        [str(ALPHAFORGE), *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def _record(data: Path, run_id: str) -> dict[str, Any]:
    return json.loads((data / "runs" / run_id / "run.json").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A pipeline folder of our own (its CSV may be edited), a data dir, the original run."""
    root = tmp_path_factory.mktemp("repro")
    (root / "data").mkdir()
    shutil.copyfile(EXAMPLES / "data" / "sample_ohlcv.csv", root / "data" / "sample_ohlcv.csv")
    shutil.copyfile(EXAMPLES / "sma_crossover.af", root / "sma.af")
    data = root / "store"
    proc = _cli("run", str(root / "sma.af"), "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "data": data, "run_id": _json(proc)["run_id"]}


@pytest.fixture(scope="module")
def rerun(work: dict[str, Any]) -> dict[str, Any]:
    """`alphaforge rerun` of the original run, in its own process."""
    proc = _cli("rerun", work["run_id"], "--json", data=work["data"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _json(proc)


def _canonical_equity_sha(path: Path) -> str:
    """The canonical text of an equity file, written here without flows.fingerprints: pyarrow
    columns, Python's repr for floats, numpy's ISO text for the UTC timestamps."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = sorted(table.column_names)
    cells = []
    for name in columns:
        col = table.column(name)
        if str(col.type).startswith("timestamp"):
            raw = col.to_numpy().astype("datetime64[ns]")
            cells.append([f"{t}Z" for t in np.datetime_as_string(raw, unit="ns")])
        else:
            cells.append([repr(float(v)) for v in col.to_pylist()])
    lines = [json.dumps(columns)] + [",".join(row) for row in zip(*cells, strict=True)]
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def test_rerun_in_another_process_reproduces_every_fingerprint(work, rerun) -> None:
    assert rerun["identical"] is True and rerun["differences"] == []
    original = _record(work["data"], work["run_id"])
    again = _record(work["data"], rerun["rerun"])
    assert again["rerun_of"] == work["run_id"] and again["run_id"] != work["run_id"]
    assert set(original["fingerprints"]["result"]) == {"equity", "orders", "trades"}
    assert again["fingerprints"] == original["fingerprints"]
    assert again["result_fingerprint"] == original["result_fingerprint"]
    # a fresh computation: every node ran (none from the cache), into the re-run's own store
    assert set(again["node_states"].values()) == {"completed"}
    assert (work["data"] / "runs" / rerun["rerun"] / "artifacts").is_dir()
    # the fingerprint is of the values, as the documented canonical text says
    equity = work["data"] / "runs" / work["run_id"] / "equity.parquet"
    assert original["fingerprints"]["result"]["equity"] == _canonical_equity_sha(equity)
    # the definition is stored whole
    lock = original["package_lock"]
    assert lock["packages"]["pandas"] and lock["python"] == sys.version.split()[0]
    assert len(lock["hash"]) == 64 and again["package_lock"]["hash"] == lock["hash"]
    source = original["datasets"]["data"]["source"]["file"]
    assert source == str(work["root"] / "data" / "sample_ohlcv.csv")
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    assert original["datasets"]["data"]["fingerprint"] == digest
    assert original["seeds"] == {"spec": None, "nodes": {}}


def test_diff_of_a_run_and_its_rerun_finds_no_difference_in_results(work, rerun) -> None:
    proc = _cli("diff", work["run_id"], rerun["rerun"], data=work["data"])
    assert proc.returncode == 0, proc.stderr
    assert "no difference in results" in proc.stdout
    for section in ("definition", "data", "code"):
        assert f"{section}: no difference" in proc.stdout


def test_diff_of_a_changed_param_shows_the_param_and_the_metric_deltas(work) -> None:
    changed = work["root"] / "sma_fee.af"
    changed.write_text((work["root"] / "sma.af").read_text().replace("fee_bps=5", "fee_bps=25"))
    proc = _cli("run", str(changed), "--json", data=work["data"])
    assert proc.returncode == 0, proc.stderr
    other = _json(proc)["run_id"]
    proc = _cli("diff", work["run_id"], other, "--json", data=work["data"])
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert diff["definition"]["nodes_changed"] == {"result": {"params": {"fee_bps": [5, 25]}}}
    assert diff["data"] == {} and diff["results"]["identical"] is False
    a, b = _record(work["data"], work["run_id"]), _record(work["data"], other)
    fees = diff["results"]["metrics"]["total_fees"]
    assert fees["delta"] == pytest.approx(b["metrics"]["total_fees"] - a["metrics"]["total_fees"])
    assert fees["delta"] > 0  # five times the fee rate costs more
    equity = diff["results"]["outputs"]["result.equity"]
    assert equity["equal"] is False and equity["first_difference"]["row"] is not None
    human = _cli("diff", work["run_id"], other, data=work["data"]).stdout
    assert "fee_bps: 5 -> 25" in human and "total_fees" in human and "the results differ" in human


def test_rerun_refuses_data_that_changed_since_the_run(work) -> None:
    csv = work["root"] / "data" / "sample_ohlcv.csv"
    saved = csv.read_bytes()
    try:
        lines = saved.decode().splitlines(keepends=True)
        lines.pop(5)  # one bar less: still valid data, not the data the run read
        csv.write_text("".join(lines))
        proc = _cli("rerun", work["run_id"], data=work["data"])
    finally:
        csv.write_bytes(saved)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "the data changed: node 'data'" in err and "sample_ohlcv.csv" in err
    assert "alphaforge runs export" in err or "alphaforge run FILE" in err


def test_a_bundle_reruns_identically_in_another_installation(work, tmp_path) -> None:
    bundle = tmp_path / "run.afbundle"
    proc = _cli("runs", "export", work["run_id"], "-o", str(bundle), data=work["data"])
    assert proc.returncode == 0, proc.stderr
    fresh = tmp_path / "elsewhere"
    proc = _cli("runs", "import", str(bundle), "--data-dir", str(fresh), data=fresh)
    assert proc.returncode == 0, proc.stderr
    # the original's data folder is gone for this installation: only the bundle's copy counts
    proc = _cli("rerun", work["run_id"], "--json", data=fresh)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = _json(proc)
    assert result["identical"] is True
    again = _record(fresh, result["rerun"])
    assert again["fingerprints"] == _record(work["data"], work["run_id"])["fingerprints"]
    assert again["datasets"]["data"]["source"]["file"].startswith(str(fresh))


@pytest.mark.docker
def test_a_custom_python_node_in_the_sandbox_reruns_identically(docker_engine, tmp_path) -> None:
    data = tmp_path / "store"
    proc = _cli("run", str(EXAMPLES / "donchian_custom_node.af"), "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    run_id = _json(proc)["run_id"]
    original = _record(data, run_id)
    assert list(original["custom_nodes"]) == ["signal"]
    assert (data / "custom-nodes" / f"{original['custom_nodes']['signal']}.json").is_file()
    assert original["sandbox"]["runner"] == "docker"
    assert original["sandbox"]["images"]["python"].startswith("sha256:")
    proc = _cli("rerun", run_id, "--json", data=data)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = _json(proc)
    assert result["identical"] is True and result["warnings"] == []
    again = _record(data, result["rerun"])
    assert again["node_states"]["signal"] == "completed"  # ran again in a fresh container
    assert again["sandbox"] == original["sandbox"]
    assert again["fingerprints"] == original["fingerprints"] != {}
