"""The typed run path: RunSpec and RunRecord round-trips, overrides, and the run body without
Prefect giving the same result as the Prefect flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsl import compile_source
from dsl.ir import PipelineIR
from flows.spec import RunRecord, RunSpec, SpecError, read_run_record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sma_crossover.af"


def _ir() -> PipelineIR:
    result = compile_source(EXAMPLE.read_text(), filename=str(EXAMPLE))
    assert result.ok and result.ir is not None
    return result.ir


def _spec(**kw: object) -> RunSpec:
    return RunSpec(ir=_ir(), base_dir=str(EXAMPLE.parent), trigger="test", **kw)  # type: ignore[arg-type]


def test_spec_round_trips_through_json_and_is_frozen() -> None:
    spec = _spec(overrides={"fast": {"window": 5}}, seed=7, use_cache=False)
    text = json.dumps(spec.to_json())
    again = RunSpec.from_json(text)
    assert again == spec and RunSpec.from_json(json.loads(text)) == spec
    with pytest.raises(ValueError):
        spec.seed = 8  # type: ignore[misc]


def test_overrides_change_the_effective_ir_not_the_pipeline_identity() -> None:
    base = _spec()
    trial = base.with_overrides({"fast": {"window": 5}})
    assert trial.effective_ir().node("fast").params["window"] == 5
    assert base.effective_ir().node("fast").params["window"] == 10
    assert trial.ir.content_hash() == base.ir.content_hash()
    assert trial.ir_hash() != base.ir_hash()
    merged = trial.with_overrides({"fast": {"window": 6}, "slow": {"window": 40}})
    assert merged.overrides == {"fast": {"window": 6}, "slow": {"window": 40}}
    assert merged.summary()["node_versions"]["fast"].startswith("sma@")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"overrides": {"nope": {"window": 3}}}, "override of unknown node 'nope'"),
        ({"overrides": {"fast": {}}}, "sets no param"),
        ({"runners": {"builtin": "docker"}}, "always run in-process"),
        ({"runners": {"python": "docker"}}, "no node of that runtime"),
        ({"spec_version": 99}, "run spec version 99 is not supported"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(kw: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        RunSpec.from_json(_spec().to_json() | kw)


def test_a_record_written_before_the_typed_record_still_reads(tmp_path: Path) -> None:
    old = {
        "run_id": "20261121-100000-123-1a2b3c",
        "pipeline": "p",
        "status": "completed",
        "node_states": {"a": "completed"},
        "nodes": {"a": {"type": "sma", "version": "1.0.0", "state": "completed", "key": "k"}},
        "metrics": {"sharpe": 1.5},
        "something_new": 1,
    }
    (tmp_path / "run.json").write_text(json.dumps(old))
    record = read_run_record(tmp_path)
    assert record is not None and record.metrics == {"sharpe": 1.5}
    assert record.nodes["a"].key == "k" and record.spec is None and record.run_dir is None
    (tmp_path / "run.json").write_text("{not json")
    assert read_run_record(tmp_path) is None
    assert read_run_record(tmp_path / "missing") is None


_LOCAL_RUN = """
import json, sys
from pathlib import Path
from flows.graph import LocalExecutor, run_graph
from flows.settings import CoreSettings
from flows.spec import RunSpec
spec = RunSpec.from_json(Path(sys.argv[1]).read_text())
record = run_graph(spec, executor=LocalExecutor("local-1"),
                   settings=CoreSettings(data_dir=Path(sys.argv[2])), run_id="local-1")
assert not any(m == "prefect" or m.startswith("prefect.") for m in sys.modules), "prefect loaded"
print(json.dumps(record.to_json()))
"""


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_run_body_runs_without_prefect_and_matches_the_flow(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from flows.run import run_pipeline

    spec = _spec(track=False, overrides={"slow": {"window": 40}})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec.to_json()))
    local_dir = tmp_path / "local"
    proc = subprocess.run(
        [sys.executable, "-c", _LOCAL_RUN, str(spec_file), str(local_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    local = RunRecord.from_json(proc.stdout.strip().splitlines()[-1])
    assert local.status == "completed" and local.flow_run_id is None
    assert set(local.node_states.values()) == {"completed"}

    flow = run_pipeline(spec, settings=settings)
    assert flow.status == "completed", flow.error
    assert flow.result_fingerprint == local.result_fingerprint
    assert flow.metrics == local.metrics and flow.metrics["num_trades"] > 0
    assert flow.spec is not None and flow.spec["overrides"] == {"slow": {"window": 40}}
    assert flow.run_dir == settings.runs_dir / flow.run_id
    stored = read_run_record(settings.runs_dir / flow.run_id)
    assert stored == flow  # what the caller got is what was stored
    ran = PipelineIR.from_json((settings.runs_dir / flow.run_id / "ir.json").read_text())
    assert ran.node("slow").params["window"] == 40  # ir.json holds the IR that ran
    assert flow.ir_hash == spec.ir.content_hash()

    default = run_pipeline(_spec(track=False), settings=settings)
    assert default.status == "completed"
    assert default.result_fingerprint != flow.result_fingerprint  # the override mattered
    assert default.nodes["slow"].key != flow.nodes["slow"].key
    assert default.nodes["fast"].state == "cached"  # upstream of the override: shared


@pytest.mark.slow
def test_local_executor_skips_what_follows_a_failed_node(tmp_path: Path) -> None:
    from flows.graph import LocalExecutor, run_graph
    from flows.settings import CoreSettings

    spec = RunSpec(
        ir=_ir(), base_dir=str(tmp_path), track=False, trigger="test"
    )  # no data file under tmp_path: the loader fails
    record = run_graph(
        spec,
        executor=LocalExecutor("local-2"),
        settings=CoreSettings(data_dir=tmp_path / "data"),
        run_id="local-2",
    )
    assert record.status == "failed" and "node 'data'" in (record.error or "")
    assert record.node_states["data"] == "failed"
    assert {record.node_states[n] for n in ("fast", "slow", "signal", "result")} == {"skipped"}
    assert read_run_record(tmp_path / "data" / "runs" / "local-2") == record
    log = (tmp_path / "data" / "runs" / "local-2" / "run.log").read_text()
    assert "[data]" in log and "failed" in log


@pytest.mark.slow
def test_a_run_of_a_swept_pipeline_says_it_uses_the_written_params(tmp_path: Path) -> None:
    from flows.graph import LocalExecutor, not_executed_blocks, run_graph
    from flows.settings import CoreSettings

    text = EXAMPLE.read_text() + (
        "\nsweep grid {\n fast.window = [5, 10]\n objective maximize result.sharpe\n}\n"
    )
    compiled = compile_source(text, filename="swept.af")
    assert compiled.ir is not None and [d.code for d in compiled.diagnostics] == []
    assert not_executed_blocks(compiled.ir) == []  # a sweep runs as a sweep
    spec = RunSpec(ir=compiled.ir, base_dir=str(EXAMPLE.parent), track=False, trigger="test")
    record = run_graph(
        spec,
        executor=LocalExecutor("local-3"),
        settings=CoreSettings(data_dir=tmp_path),
        run_id="local-3",
    )
    assert record.status == "completed"
    log = (tmp_path / "runs" / "local-3" / "run.log").read_text()
    assert "AF008" not in log
    assert "INFO    [flow] this run executes the pipeline once, with the params written" in log
    assert "the sweep block runs as a sweep (`alphaforge sweep`" in log
