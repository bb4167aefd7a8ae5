"""The momentum rotation example end to end: the bundled universe imported into the catalog
from the command line, the pipeline run with shared capital, the run recording the exact
version it read; a changed file makes a new version and the old IR still reads the old one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "momentum_rotation.af"
UNIVERSE = ROOT / "examples" / "data" / "universe"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def _cli(args: list[str], data_dir: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALPHAFORGE_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("ALPHAFORGE_CATALOG_URL", None)
    env.pop("ALPHAFORGE_NAMESPACE", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_universe_is_what_the_seeded_script_writes(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from make_universe_data import generate
    finally:
        sys.path.pop(0)
    files = generate(tmp_path)
    assert len(files) >= 20
    for f in files:
        assert (UNIVERSE / f.name).read_bytes() == f.read_bytes(), f.name


def test_momentum_rotation_from_the_cli_records_the_version_it_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    imported = _cli(["data", "import", str(UNIVERSE), "--name", "universe", "--json"], data_dir)
    info = json.loads(imported.stdout)
    version = info["version"]
    assert len(version) == 64 and len(info["symbols"]) == 24

    ran = _cli(["run", str(EXAMPLE), "--json"], data_dir)
    out = json.loads(ran.stdout)
    assert out["status"] == "completed", out["error"]
    run_dir = Path(out["run_dir"])
    record = json.loads((run_dir / "run.json").read_text())
    assert record["datasets"]["data"]["fingerprint"] == f"catalog:{version}"
    ir = json.loads((run_dir / "ir.json").read_text())
    (data_node,) = [n for n in ir["nodes"] if n["id"] == "data"]
    assert data_node["params"]["version"] == version
    metrics = out["metrics"]
    assert metrics["num_trades"] > 20 and metrics["turnover"] > 0
    # shared capital: at most 5 names held at once, never more than the equity
    weights = _weights(run_dir, data_dir)
    assert (weights.gt(0).sum(axis=1) <= 5).all()
    assert (weights.sum(axis=1) <= 1.0 + 1e-9).all()

    # a changed file: a new version; the pipeline now reads it, the old IR the old one
    changed = tmp_path / "universe"
    shutil.copytree(UNIVERSE, changed)
    s01 = pd.read_parquet(changed / "S01.parquet")
    s01.loc[s01.index[-1], "close"] = s01["close"].iloc[-1] * 1.01
    s01.loc[s01.index[-1], "high"] = max(s01["high"].iloc[-1], s01["close"].iloc[-1])
    s01.to_parquet(changed / "S01.parquet", index=False)
    again = json.loads(
        _cli(["data", "import", str(changed), "--name", "universe", "--json"], data_dir).stdout
    )
    assert again["version"] != version
    versions = json.loads(_cli(["data", "versions", "universe", "--json"], data_dir).stdout)
    assert [v["version"] for v in versions][-2:] == [version, again["version"]]

    ir_file = tmp_path / "old_ir.json"
    ir_file.write_text(json.dumps(ir))
    rerun = json.loads(_cli(["run", str(ir_file), "--json", "--no-cache"], data_dir).stdout)
    assert rerun["status"] == "completed", rerun["error"]
    rerun_record = json.loads((Path(rerun["run_dir"]) / "run.json").read_text())
    assert rerun_record["datasets"]["data"]["fingerprint"] == f"catalog:{version}"
    assert rerun_record["result_fingerprint"] == record["result_fingerprint"]
    assert rerun["metrics"] == metrics


def _weights(run_dir: Path, data_dir: Path) -> pd.DataFrame:
    """The realized weights over time, from the backtest's stored outputs."""
    from flows.artifacts import ArtifactStore
    from runners.io import read_value

    key = json.loads((run_dir / "run.json").read_text())["nodes"]["result"]["key"]
    store = ArtifactStore(str(data_dir / "artifacts"), cache_dir=data_dir / "artifact-cache")
    return read_value(store.output_paths(key)["weights"])
