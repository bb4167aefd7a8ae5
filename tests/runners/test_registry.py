"""Open registries: runtimes and languages, runners by runtime, the one port-type table."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from dsl.compiler import compile_source
from dsl.ir import InputBinding, NodeIR
from dsl.nodespec import ResolvedNode
from nodes import base
from nodes.base import (
    FRAME_LIKE,
    PORT_TYPES,
    Port,
    PortForm,
    PortType,
    UnknownRuntimeError,
    is_assignable,
    languages,
    register_runtime,
    runtime,
    runtime_for_language,
)
from runners import registry as runners_registry
from runners.base import NodeResult, RunnerError
from runners.custom import INPUT_TYPES, OUTPUT_TYPES, CustomNodeManifest, template
from runners.inprocess import InProcessRunner
from runners.io import file_name, read_value, write_value
from runners.registry import (
    RunnerContext,
    code_fingerprint,
    register_runner,
    runner_for,
    runtimes_with_runners,
)


@pytest.fixture
def echo_runtime() -> Iterator[str]:
    """A runtime registered for one test (``echo``: a runner that copies its input)."""
    register_runtime("echo", language="echo", summary="test runtime")

    class EchoRunner:
        def run(self, node_ir: NodeIR, input_paths, *, output_dir: Path) -> NodeResult:  # type: ignore[no-untyped-def]
            output_dir.mkdir(parents=True, exist_ok=True)
            value = read_value(input_paths["x"])
            out = output_dir / file_name("y", "series")
            write_value(value * 10, "series", out)
            return NodeResult(status="completed", output_paths={"y": str(out)})

    register_runner("echo", lambda ctx, node: EchoRunner(), lambda node: f"echo:{node.code_hash}")
    try:
        yield "echo"
    finally:
        runners_registry._RUNNERS.pop("echo", None)
        base._RUNTIMES.pop("echo", None)


# ---- runtimes and languages -----------------------------------------------------------------


def test_the_shipped_runtimes_each_have_a_runner() -> None:
    assert set(base.runtimes()) == {"builtin", "python", "javascript", "wasm"}
    assert languages() == ("python", "javascript", "wasm")
    assert set(runtimes_with_runners()) == set(base.runtimes())
    assert runners_registry.runner_entry("builtin").sandboxed is False
    assert all(runners_registry.runner_entry(x).sandboxed for x in languages())


def test_an_unknown_runtime_or_language_is_named_with_the_known_ones() -> None:
    with pytest.raises(
        UnknownRuntimeError, match=r"unknown runtime 'pyton'; did you mean 'python'"
    ):
        runtime("pyton")
    with pytest.raises(UnknownRuntimeError, match=r"\(known: python, javascript, wasm\)"):
        runtime_for_language("rust")
    with pytest.raises(Exception, match="already registered"):
        register_runtime("python", language="cpython")


def test_a_new_runtime_is_usable_once_registered(echo_runtime: str, tmp_path: Path) -> None:
    node = NodeIR(
        id="e",
        type="echo_node",
        version="1.0.0",
        inputs={"x": InputBinding(node="d", port="x")},
        outputs={"y": "series"},
        runtime=echo_runtime,
        code_hash="sha256:e",
    )
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC", name="ts")
    write_value(pd.Series([1.0, 2.0, 3.0], index=idx), "series", tmp_path / "x.parquet")
    runner = runner_for(RunnerContext(run_id="r", base_dir=tmp_path), node)
    result = runner.run(node, {"x": str(tmp_path / "x.parquet")}, output_dir=tmp_path / "o")
    assert read_value(result.output_paths["y"]).tolist() == [10.0, 20.0, 30.0]
    assert code_fingerprint(node) == "echo:sha256:e"


def test_a_runtime_without_a_runner_here_fails_clearly(tmp_path: Path) -> None:
    register_runtime("remote_gpu", summary="declared, no runner in this process")
    try:
        node = NodeIR(id="g", type="x", version="1.0.0", runtime="remote_gpu", code_hash="h")
        with pytest.raises(RunnerError, match="no runner for runtime 'remote_gpu' in this process"):
            runner_for(RunnerContext(run_id="r", base_dir=tmp_path), node)
        with pytest.raises(RunnerError, match="no runner for runtime 'remote_gpu'"):
            code_fingerprint(node)
        with pytest.raises(UnknownRuntimeError):
            register_runner("nowhere", lambda c, n: InProcessRunner(base_dir=tmp_path), str)
    finally:
        base._RUNTIMES.pop("remote_gpu", None)


def test_the_ir_takes_any_well_formed_runtime_name_and_refuses_junk() -> None:
    assert NodeIR(id="a", type="t", version="1", runtime="tick_level").runtime == "tick_level"
    with pytest.raises(ValidationError, match="runtime"):
        NodeIR(id="a", type="t", version="1", runtime="Bad Name!")


def test_builtin_nodes_run_in_process_and_custom_nodes_in_the_sandbox(tmp_path: Path) -> None:
    ctx = RunnerContext(run_id="r", base_dir=tmp_path)
    sma = NodeIR(id="s", type="sma", version="1.0.0")
    assert isinstance(runner_for(ctx, sma), InProcessRunner)
    custom = NodeIR(id="c", type="my", version="1.0.0", runtime="python", code_hash="h")
    with pytest.raises(RunnerError, match="needs the custom-nodes store"):
        runner_for(ctx, custom)  # no store in the context: refused before any sandbox starts


def test_a_custom_nodes_code_fingerprint_follows_its_code_hash_and_the_sandbox_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nodes import codehash

    a = NodeIR(id="c", type="my", version="1.0.0", runtime="python", code_hash="sha256:1")
    b = a.model_copy(update={"code_hash": "sha256:2"})
    js = a.model_copy(update={"runtime": "javascript"})
    assert len({code_fingerprint(a), code_fingerprint(b), code_fingerprint(js)}) == 3
    with pytest.raises(RunnerError, match="has no code hash"):
        code_fingerprint(a.model_copy(update={"code_hash": None}))
    # an edited in-container entrypoint changes the python runtime's fingerprint, not js's
    before = (code_fingerprint(a), code_fingerprint(js))
    edited = tmp_path / "sandbox"
    edited.mkdir()
    for f in runners_registry.SANDBOX_DIR.iterdir():
        if f.is_file():
            (edited / f.name).write_bytes(f.read_bytes())
    with (edited / "arrow_ipc.py").open("a") as fh:
        fh.write("\n# a fix\n")
    monkeypatch.setattr(runners_registry, "SANDBOX_DIR", edited)
    codehash.clear_cache()
    assert code_fingerprint(a) != before[0] and code_fingerprint(js) == before[1]


def test_strategy_backtests_fingerprint_covers_the_strategy_sandbox_and_no_other_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """strategy_backtest reaches the strategy sandbox through its context: the host's modules
    and the strategy entrypoints are in its fingerprint (an edit re-runs it), not in sma's."""
    from nodes import codehash

    bt = NodeIR(id="b", type="strategy_backtest", version="1.0.0")
    sma = NodeIR(id="s", type="sma", version="1.0.0")
    modules = {*codehash.module_closure("runners.inprocess", ("nodes", "runners"))}
    assert "runners.papertrade.service" not in modules and "runners.strategyhost" not in modules
    before = (code_fingerprint(bt), code_fingerprint(sma))
    edited = tmp_path / "sandbox"
    edited.mkdir()
    for f in runners_registry.SANDBOX_DIR.iterdir():
        if f.is_file():
            (edited / f.name).write_bytes(f.read_bytes())
    with (edited / "strategy_entry.py").open("a") as fh:
        fh.write("\n# a fix\n")
    monkeypatch.setattr(runners_registry, "SANDBOX_DIR", edited)
    codehash.clear_cache()
    assert code_fingerprint(bt) != before[0] and code_fingerprint(sma) == before[1]


# ---- the compiler checks languages against the registry -------------------------------------


class _Resolver:
    def __init__(self, language: str) -> None:
        self.language = language

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        return ResolvedNode(
            name=name,
            version="1.0.0",
            code_hash="sha256:x",
            language=self.language,
            inputs=(Port("series", PortType.SERIES),),
            outputs=(Port("value", PortType.SERIES),),
        )


HEADER = 'pipeline p "P"\ndata = csv_ohlcv(path="x.csv")\n'


def test_a_pin_in_an_unregistered_language_is_af408_at_the_use_line(echo_runtime: str) -> None:
    text = HEADER + "use my_node@1\nv = my_node(data.close)\n"
    bad = compile_source(text, resolver=_Resolver("cobol"))
    (diag,) = [d for d in bad.diagnostics if d.code == "AF408"]
    assert diag.line == 3 and "unknown language 'cobol'" in diag.message
    assert "python, javascript, wasm, echo" in diag.message
    assert bad.ir is None
    ok = compile_source(text, resolver=_Resolver(echo_runtime))
    assert ok.ir is not None, ok.format()
    assert ok.ir.node("v").runtime == "echo" and ok.ir.uses[0].language == "echo"


def test_a_manifest_in_an_unregistered_language_is_refused() -> None:
    m = template("python", "indicator")
    with pytest.raises(ValidationError, match=r"unknown language 'rust' \(known: python"):
        CustomNodeManifest.model_validate(m.model_dump() | {"language": "rust"})


# ---- the port-type table --------------------------------------------------------------------


def test_assignability_and_frame_like_come_from_the_table() -> None:
    for target in PortType:
        for source in PortType:
            want = source == target or source in PORT_TYPES[target].accepts
            assert is_assignable(source, target) is want
    assert is_assignable(PortType.SIGNAL, PortType.SERIES)
    assert not is_assignable(PortType.SERIES, PortType.SIGNAL)
    assert is_assignable(PortType.OHLCV, PortType.FRAME)
    assert {t for t, i in PORT_TYPES.items() if i.form == PortForm.TABLE} == FRAME_LIKE
    assert set(PORT_TYPES) == set(PortType)


def test_the_sandbox_types_and_the_artifact_files_come_from_the_table() -> None:
    assert {t for t, i in PORT_TYPES.items() if i.sandbox_input} == INPUT_TYPES
    assert {t for t, i in PORT_TYPES.items() if i.sandbox_output} == OUTPUT_TYPES
    suffix = {PortForm.TABLE: "parquet", PortForm.SERIES: "parquet", PortForm.METRICS: "json",
              PortForm.EVENTS: "npz"}  # fmt: skip
    for t, info in PORT_TYPES.items():
        assert file_name("p", t) == f"p.{suffix.get(info.form, 'afmodel')}"


def test_a_table_change_is_seen_by_every_consumer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Edit one row (trades become time-indexed with a required ``pnl`` column, and a frame no
    longer accepts trades): the compiler's assignability and the runner's value check follow."""
    from runners.io import check_value

    row = dataclasses.replace(PORT_TYPES[PortType.TRADES], time_indexed=True, columns=("pnl",))
    frame_row = dataclasses.replace(PORT_TYPES[PortType.FRAME], accepts=frozenset({PortType.OHLCV}))
    monkeypatch.setitem(PORT_TYPES, PortType.TRADES, row)
    monkeypatch.setitem(PORT_TYPES, PortType.FRAME, frame_row)
    assert not is_assignable(PortType.TRADES, PortType.FRAME)
    with pytest.raises(RunnerError, match="trades table must be indexed by timestamps"):
        check_value(pd.DataFrame({"pnl": [1.0]}), "trades", "out")
    idx = pd.DatetimeIndex(["2024-01-01"], tz="UTC")
    with pytest.raises(RunnerError, match=r"trades table lacks columns \['pnl'\]"):
        check_value(pd.DataFrame({"x": [1.0]}, index=idx), "trades", "out")
    check_value(pd.DataFrame({"pnl": [1.0]}, index=idx), "trades", "out")
