"""`use` lines resolved from a local folder of manifests (`--nodes DIR`, default ./nodes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from cli.nodes_dir import LocalNodeResolver, NodesDirError, matches
from dsl.nodespec import ResolveError
from runners.custom import template

ROOT = Path(__file__).resolve().parents[2]
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
SOURCE = """pipeline with_custom "A custom indicator"
use my_ema@{spec}
data = csv_ohlcv(path="sample_ohlcv.csv")
fast = my_ema(data.close, span=10)
slow = sma(data.close, window=40)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000)
"""


def _project(tmp_path: Path, spec: str = "1", folder: str = "nodes") -> Path:
    (tmp_path / folder).mkdir()
    for version, lang in (("1.0.0", "python"), ("1.2.0", "javascript"), ("2.0.0", "python")):
        m = template(lang, "indicator").model_copy(update={"name": "my_ema", "version": version})  # type: ignore[arg-type]
        (tmp_path / folder / f"my_ema-{version}.json").write_text(m.model_dump_json())
    shutil.copy(ROOT / "examples" / "data" / "sample_ohlcv.csv", tmp_path)
    af = tmp_path / "p.af"
    af.write_text(SOURCE.format(spec=spec))
    return af


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ("1.2.3", "1", True),
        ("1.2.3", "1.2", True),
        ("1.1.9", "1.2", False),
        ("2.0.0", "1.2", False),
        ("1.2.3", "^1.2.3", True),
        ("1.2.2", "^1.2.3", False),
        ("0.2.5", "^0.2.3", True),
        ("0.3.0", "^0.2.3", False),
        ("1.2.9", "~1.2", True),
        ("1.3.0", "~1.2", False),
        ("1.2.3", "=1.2.3", True),
        ("1.2.4", "=1.2.3", False),
        ("1.3.0-beta.1", "1", False),
        ("1.3.0-beta.2", "1.3.0-beta.1", True),
        ("1.3.0-beta.1", "=1.3.0-beta.1", True),
    ],
)
def test_version_specs(version: str, spec: str, ok: bool) -> None:
    assert matches(version, spec) is ok


def test_resolver_picks_the_highest_match_and_names_what_exists(tmp_path: Path) -> None:
    resolver = LocalNodeResolver.from_dir(_project(tmp_path).parent / "nodes")
    node = resolver.resolve("my_ema", "1")
    assert (node.version, node.language) == ("1.2.0", "javascript")
    assert node.code_hash == template("javascript", "indicator").code_hash()
    assert [p.name for p in node.outputs] == ["ema"]
    with pytest.raises(ResolveError, match=r"have 1\.0\.0, 1\.2\.0, 2\.0\.0"):
        resolver.resolve("my_ema", "3")
    with pytest.raises(ResolveError, match="no custom node 'other'"):
        resolver.resolve("other", "1")


def test_validate_and_compile_use_the_nodes_folder_next_to_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    af = _project(tmp_path, spec="=1.0.0")
    assert main(["validate", str(af)]) == 0
    assert "ok: " in capsys.readouterr().out
    assert main(["compile", str(af)]) == 0
    ir = json.loads(capsys.readouterr().out)
    fast = next(n for n in ir["nodes"] if n["id"] == "fast")
    assert (fast["type"], fast["version"], fast["runtime"]) == ("my_ema", "1.0.0", "python")
    assert fast["code_hash"] == template("python", "indicator").code_hash()


def test_nodes_option_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    af = _project(tmp_path, folder="elsewhere")
    assert main(["validate", str(af)]) == 2  # no ./nodes: the pin cannot resolve
    assert "my_ema@1" in capsys.readouterr().err
    assert main(["validate", str(af), "--nodes", str(tmp_path / "elsewhere")]) == 0
    (tmp_path / "elsewhere" / "broken.json").write_text('{"name": "x"}')
    assert main(["validate", str(af), "--nodes", str(tmp_path / "elsewhere")]) == 2
    assert "broken.json" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.usefixtures("prefect_api")
def test_run_with_a_custom_node_from_the_nodes_folder(tmp_path: Path, docker_engine: Any) -> None:
    af = _project(tmp_path)
    data = tmp_path / "data"
    proc = subprocess.run(
        [str(ALPHAFORGE), "run", str(af), "--json", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ},
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["status"] == "completed"
    assert payload["metrics"]["num_trades"] > 0
    record = json.loads((Path(payload["run_dir"]) / "run.json").read_text())
    assert record["sandbox"]["runner"] == "docker"
    assert list(record["sandbox"]["images"]) == ["javascript"]
    assert (
        data / "custom-nodes" / f"{template('javascript', 'indicator').code_hash()}.json"
    ).exists()


def test_a_manifest_may_keep_its_code_in_a_file_beside_it(tmp_path: Path) -> None:
    py = template("python", "indicator")
    wat = template("wasm", "indicator")
    (tmp_path / "ema.py").write_text(py.code)
    (tmp_path / "ema.wat").write_text(wat.code)
    for name, m, code_file in (("py_ema", py, "ema.py"), ("wat_ema", wat, "ema.wat")):
        raw = json.loads(m.model_dump_json())
        del raw["code"], raw["code_format"]
        raw.update(name=name, code_file=code_file)
        (tmp_path / f"{name}.json").write_text(json.dumps(raw))
    resolver = LocalNodeResolver.from_dir(tmp_path)
    assert resolver.resolve("py_ema", "1").code_hash == py.code_hash()
    assert resolver.resolve("wat_ema", "=1.0.0").code_hash == wat.code_hash()  # format: wat
    # a code file that is missing, or code given twice, names the manifest file
    bad = json.loads(py.model_dump_json()) | {"name": "bad", "code_file": "ema.py"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(NodesDirError, match=r"bad\.json.*either code or code_file"):
        LocalNodeResolver.from_dir(tmp_path)
    del bad["code"]
    (tmp_path / "bad.json").write_text(json.dumps(bad | {"code_file": "missing.py"}))
    with pytest.raises(NodesDirError, match=r"bad\.json.*missing\.py"):
        LocalNodeResolver.from_dir(tmp_path)


def test_an_invalid_manifest_lists_each_problem_at_its_field(tmp_path: Path) -> None:
    raw = json.loads(template("python", "indicator").model_dump_json())
    raw["outputs"][0]["type"] = "signalz"
    raw["inputs"].append(dict(raw["inputs"][0]))  # the same input name twice
    (tmp_path / "ema.json").write_text(json.dumps(raw))
    with pytest.raises(NodesDirError) as err:
        LocalNodeResolver.from_dir(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{tmp_path / 'ema.json'}: not a valid custom-node manifest:"
    assert lines[1].startswith("  outputs.0.type: Input should be 'ohlcv', 'series'")
    assert "errors.pydantic.dev" not in str(err.value) and "Value error" not in str(err.value)
    assert len(lines) == 2  # pydantic stops at the type error before the cross-field checks
    raw["outputs"][0]["type"] = "series"
    (tmp_path / "ema.json").write_text(json.dumps(raw))
    with pytest.raises(NodesDirError) as err:
        LocalNodeResolver.from_dir(tmp_path)
    assert str(err.value).splitlines()[1:] == ["  inputs.1.name: port name 'x' is used twice"]
