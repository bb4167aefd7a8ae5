"""The compiler's contracts: IR shape and hashes, order, outline, limits, resolver, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import Field

from dsl import (
    CompileResult,
    Diagnostic,
    DslError,
    ResolvedNode,
    ResolveError,
    compile_file,
    compile_or_raise,
)
from dsl.ir import PipelineIR
from dsl.parser import MAX_NESTING, MAX_SOURCE_CHARS, MAX_SYNTAX_ERRORS
from nodes.base import NodeRegistry, Params, Port, PortType, registry
from nodes.errors import AlphaForgeError
from tests.dsl.conftest import HEADER

Compile = Callable[..., CompileResult]

SMA_CROSS = """# Moving-average crossover.
pipeline sma_crossover "Moving Average Crossover (Sample)"

data   = csv_ohlcv(path="sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
"""


def test_ir_round_trips_through_json(compile_: Compile) -> None:
    ir = compile_(
        SMA_CROSS + "sweep grid {\n fast.window = [5, 10]\n where fast.window < 8\n}\n"
    ).ir
    assert ir is not None
    again = PipelineIR.from_json(ir.to_json())
    assert again == ir
    assert again.content_hash() == ir.content_hash()


def test_ir_nodes_carry_versions_outputs_validated_params_and_spans(compile_: Compile) -> None:
    ir = compile_(SMA_CROSS).ir
    assert ir is not None
    fast = ir.node("fast")
    assert (fast.type, fast.version, fast.runtime, fast.code_hash) == (
        "sma",
        "1.0.0",
        "builtin",
        None,
    )
    assert fast.outputs == {"value": "series"}
    assert fast.span is not None and (fast.span.line, fast.span.col) == (5, 1)
    assert (fast.span.end_line, fast.span.end_col) == (5, 36)  # end exclusive
    # defaults are filled in: the IR says everything the run will use
    written = {"cash": 100_000.0, "fee_bps": 5.0, "slippage_bps": 2.0}
    backtest = registry().get("backtest").params_model
    assert backtest is not None
    assert ir.node("result").params == backtest(**written).model_dump(mode="json")
    assert written.items() <= ir.node("result").params.items()
    assert ir.node("data").params["timezone"] == "UTC"
    assert ir.source_hash == hashlib.sha256(SMA_CROSS.encode()).hexdigest()


def test_content_hash_ignores_whitespace_comments_and_positions(compile_: Compile) -> None:
    a = compile_(SMA_CROSS).ir
    reformatted = (
        'pipeline   sma_crossover   "Moving Average Crossover (Sample)"  # header\n\n\n'
        '# the data\ndata=csv_ohlcv( path = "sample_ohlcv.csv" )\n'
        "fast = sma(data.close,\n           window=10,)   # trailing comma\n"
        "slow = sma(data.close, window=30)\nsignal = crossover(fast, slow)\n"
        "result = backtest(data, signal, cash=100000, fee_bps=5, slippage_bps=2)\n"
    )
    b = compile_(reformatted).ir
    assert a is not None and b is not None
    assert a.source_hash != b.source_hash
    assert a.nodes[1].span != b.nodes[1].span
    assert a.content_hash() == b.content_hash()


def test_content_hash_changes_with_a_param(compile_: Compile) -> None:
    a = compile_(SMA_CROSS).ir
    b = compile_(SMA_CROSS.replace("window=10", "window=11")).ir
    assert a is not None and b is not None and a.content_hash() != b.content_hash()


def test_nodes_in_topological_order_ties_by_source_order(compile_: Compile) -> None:
    text = (
        "pipeline order\n"
        "result = backtest(data, signal)\n"  # forward references are allowed
        "signal = crossover(fast, slow)\n"
        "slow = sma(data.close, window=30)\n"
        "fast = sma(data.close, window=10)\n"
        'data = csv_ohlcv(path="a.csv")\n'
    )
    ir = compile_(text).ir
    assert ir is not None
    assert ir.node_ids() == ["data", "slow", "fast", "signal", "result"]
    assert ir.dependents("data") == ["slow", "fast", "result"]


def test_many_errors_are_reported_at_once(compile_: Compile) -> None:
    text = (
        HEADER
        + "fast = sma(dat.close, windw=10)\n"
        + "slow = smaa(data.close)\n"
        + "signal = crossover(data, fast)\n"
        + "result = backtest(data, signal, cash=-1)\n"
        + "fast = ema(data.close)\n"
    )
    result = compile_(text)
    assert result.ir is None and not result.ok
    codes = [d.code for d in result.errors]
    assert codes == ["AF203", "AF102", "AF101", "AF201", "AF105", "AF204"]


def test_several_syntax_errors_in_one_pass_and_outline_of_what_parsed(compile_: Compile) -> None:
    text = HEADER + "a = sma(data.close\nb = sma(data.close, window=3)\nc = = 1\nd = sma((\n"
    result = compile_(text)
    lines = [(d.code, d.line) for d in result.diagnostics]
    assert lines == [("AF001", 3), ("AF001", 5), ("AF001", 6)]
    assert [o.id for o in result.outline] == ["data", "b"]


def test_syntax_error_recovery_is_capped(compile_: Compile) -> None:
    text = HEADER + "".join(f"x{i} = = 1\n" for i in range(MAX_SYNTAX_ERRORS + 10))
    result = compile_(text)
    assert len(result.errors) == MAX_SYNTAX_ERRORS
    assert [d.severity for d in result.diagnostics].count("info") == 1


def test_outline_is_available_despite_semantic_errors(compile_: Compile) -> None:
    result = compile_(HEADER + 'fast = sma(dat.close, window=10, foo="x")\n')
    assert result.ir is None
    fast = next(o for o in result.outline if o.id == "fast")
    assert (fast.type, fast.line, fast.col, fast.end_line) == ("sma", 3, 1, 3)
    assert fast.inputs == ["dat.close"] and fast.params == {"window": 10, "foo": "x"}


def test_warnings_do_not_stop_the_ir(compile_: Compile) -> None:
    result = compile_(SMA_CROSS + "spare = ema(data.close)\n")
    assert result.ok and result.ir is not None
    (w,) = result.warnings
    assert w.code == "AF206" and "spare" in w.message


def test_diagnostic_formats(compile_: Compile) -> None:
    result = compile_(HEADER + "fast = smaa(data.close)\n")
    (d,) = result.diagnostics
    assert (
        d.format("p.af") == "p.af:3:8: error AF101: unknown node type `smaa`; did you mean `sma`?"
    )
    data = json.loads(json.dumps(d.to_json()))
    assert data == {
        "code": "AF101",
        "severity": "error",
        "message": "unknown node type `smaa`; did you mean `sma`?",
        "line": 3,
        "col": 8,
        "end_line": 3,
        "end_col": 12,
        "hint": None,
        "suggestions": ["sma"],
    }
    assert Diagnostic.model_validate(data) == d


def test_compile_or_raise_and_dsl_error(reg: NodeRegistry) -> None:
    assert compile_or_raise(SMA_CROSS, registry=reg).name == "sma_crossover"
    with pytest.raises(DslError) as info:
        compile_or_raise(HEADER + "x = nope()\n", filename="f.af", registry=reg)
    err = info.value
    assert isinstance(err, AlphaForgeError) and err.code == "AF101"
    assert str(err).startswith("f.af:3:5: error AF101")
    assert [d.code for d in err.diagnostics if d.is_error] == ["AF101"]


def test_compile_file_names_the_file(tmp_path: Path, reg: NodeRegistry) -> None:
    path = tmp_path / "s.af"
    path.write_text(SMA_CROSS.replace("window=10", "window=0"))
    result = compile_file(path, registry=reg)
    assert result.format(str(path)).startswith(f"{path}:5:")


def test_source_size_limit() -> None:
    result = compile_or_none("#" * (MAX_SOURCE_CHARS + 1))
    assert [d.code for d in result.diagnostics] == ["AF002"]


def test_nesting_limit() -> None:
    deep = "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1)
    result = compile_or_none(HEADER + f"x = sma(data.close, v={deep})\n")
    (d,) = result.diagnostics
    assert (d.code, d.line) == ("AF003", 3)


def test_expression_chains_do_not_overflow_the_stack(compile_: Compile) -> None:
    chain = " ".join(["not"] * 5001)
    result = compile_(SMA_CROSS + f"sweep grid {{\n fast.window = [5]\n where {chain} false\n}}\n")
    assert result.ir is not None and result.ir.sweep is not None
    assert result.ir.sweep.where[0].op == "not" and result.ir.sweep.where[0].args[0].op == "const"
    sums = " + ".join(["1"] * 300)
    result = compile_(SMA_CROSS + f"sweep grid {{\n fast.window = [5]\n where {sums} > 0\n}}\n")
    assert [d.code for d in result.errors] == ["AF003"]


def test_for_expansion_is_bounded(compile_: Compile) -> None:
    values = ", ".join(str(i) for i in range(200))
    text = (
        HEADER
        + f"for a in [{values}] {{ for b in [{values}] {{ x_{{a}}_{{b}} = sma(data.close) }} }}\n"
    )
    result = compile_(text)
    assert "AF004" in [d.code for d in result.diagnostics]


def compile_or_none(text: str) -> CompileResult:
    from dsl import compile_source
    from tests.dsl.conftest import builtin_registry

    return compile_source(text, registry=builtin_registry())


# -- custom nodes through a resolver ---------------------------------------------------------


class RsiParams(Params):
    period: int = Field(14, ge=2)


class FakeResolver:
    """Knows my_rsi 1.2.3 (params model) and vol_target 2.0.1 (JSON schema)."""

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        ports_in = (Port("series", PortType.SERIES),)
        if name == "my_rsi" and spec in ("1.2", "^1.2"):
            return ResolvedNode(
                name="my_rsi",
                version="1.2.3",
                code_hash="sha256:abc",
                language="python",
                inputs=ports_in,
                outputs=(Port("value", PortType.SERIES),),
                params_model=RsiParams,
            )
        if name == "vol_target" and spec == "=2.0.1":
            return ResolvedNode(
                name="vol_target",
                version="2.0.1",
                code_hash="sha256:def",
                language="javascript",
                inputs=(Port("signal", PortType.SIGNAL),),
                outputs=(Port("signal", PortType.SIGNAL),),
                params_schema={
                    "type": "object",
                    "properties": {"target": {"type": "number", "exclusiveMinimum": 0}},
                    "required": ["target"],
                },
            )
        raise ResolveError(f"no version of {name} matches {spec}")


def test_resolved_use_pins_go_into_the_ir(compile_: Compile) -> None:
    text = (
        HEADER
        + "use my_rsi@1.2\nuse vol_target@=2.0.1\n"
        + "r = my_rsi(data.close, period=7)\n"
        + "s = threshold(r, lower=30.0, upper=70.0)\n"
        + "v = vol_target(s, target=0.15)\n"
        + "result = backtest(data, v)\n"
    )
    result = compile_(text, resolver=FakeResolver())
    ir = result.ir
    assert ir is not None, result.format()
    assert [(u.name, u.requested, u.version, u.code_hash, u.language) for u in ir.uses] == [
        ("my_rsi", "1.2", "1.2.3", "sha256:abc", "python"),
        ("vol_target", "=2.0.1", "2.0.1", "sha256:def", "javascript"),
    ]
    r = ir.node("r")
    assert (r.runtime, r.code_hash, r.version, r.params) == (
        "python",
        "sha256:abc",
        "1.2.3",
        {"period": 7},
    )
    assert ir.node("v").params == {"target": 0.15}


def test_custom_node_params_are_checked(compile_: Compile) -> None:
    text = (
        HEADER
        + "use my_rsi@1.2\nuse vol_target@=2.0.1\n"
        + "r = my_rsi(data.close, period=1, perod=3)\n"
        + "v = vol_target(data.close, target=0)\n"
    )
    result = compile_(text, resolver=FakeResolver())
    got = [(d.code, d.line, d.col) for d in result.errors]
    assert got == [("AF105", 5, 31), ("AF102", 5, 34), ("AF201", 6, 16), ("AF105", 6, 35)]


def test_unresolvable_pin_and_broken_resolver(compile_: Compile) -> None:
    result = compile_(HEADER + "use my_rsi@9\nr = my_rsi(data.close)\n", resolver=FakeResolver())
    assert [d.code for d in result.diagnostics] == ["AF401"]
    assert "no version of my_rsi matches 9" in result.diagnostics[0].message

    class Broken:
        def resolve(self, name: str, spec: str) -> ResolvedNode:
            raise RuntimeError("registry down")

    result = compile_(HEADER + "use my_rsi@1\nr = my_rsi(data.close)\n", resolver=Broken())
    assert [d.code for d in result.diagnostics] == ["AF402"]


def test_resolver_warnings_become_af407_at_the_use_line(compile_: Compile) -> None:
    class Warns:
        def resolve(self, name: str, spec: str) -> ResolvedNode:
            node = FakeResolver().resolve(name, spec)
            return dataclasses.replace(node, warnings=("my_rsi@1.2.3 failed the look-ahead",))

    text = (
        HEADER
        + "use my_rsi@1.2\nr = my_rsi(data.close)\n"
        + "s = threshold(r, lower=30.0, upper=70.0)\nresult = backtest(data, s)\n"
    )
    result = compile_(text, resolver=Warns())
    assert result.ok
    (warning,) = [d for d in result.diagnostics if d.code == "AF407"]
    assert (warning.severity, warning.line, warning.message) == (
        "warning",
        HEADER.count("\n") + 1,
        "my_rsi@1.2.3 failed the look-ahead",
    )
    assert not [d for d in compile_(text, resolver=FakeResolver()).diagnostics if d.code == "AF407"]


def test_pin_shadowing_a_builtin_is_refused(compile_: Compile) -> None:
    result = compile_(HEADER + "use sma@1.0\nx = sma(data.close)\n")
    assert {d.code for d in result.diagnostics} == {"AF405", "AF401"}


def test_a_manifest_is_one_node_for_the_cli_the_api_and_the_catalog() -> None:
    """One conversion (``ResolvedNode.from_manifest``) serves the CLI's folder resolver, the
    API's owner resolver and the API's catalog: the ports (columns of inputs too), the params
    schema and the code hash are the manifest's everywhere."""
    from api.models.custom_node import CustomNodeVersion
    from api.services.manifests import catalog_entry
    from cli.nodes_dir import LocalNodeResolver
    from dsl.nodespec import ResolvedNode
    from runners.custom import CustomNodeManifest

    manifest = CustomNodeManifest(
        name="spread",
        version="1.2.0",
        language="python",
        summary="close minus open",
        inputs=(
            {"name": "bars", "type": "ohlcv"},
            {"name": "x", "type": "frame", "columns": ["a"]},
        ),  # type: ignore[arg-type]
        outputs=({"name": "y", "type": "frame", "columns": ["spread"]},),  # type: ignore[arg-type]
        params_schema={"type": "object", "properties": {"k": {"type": "number"}}},
        code="def run(inputs, params):\n    return {}\n",
    )
    node = ResolvedNode.from_manifest(manifest, warnings=("careful",))
    assert [(p.name, p.type, p.columns) for p in node.inputs] == [
        ("bars", PortType.OHLCV, None),
        ("x", PortType.FRAME, ("a",)),
    ]
    assert node.outputs == (Port("y", PortType.FRAME, columns=("spread",)),)
    assert (node.code_hash, node.language, node.doc) == (
        manifest.code_hash(),
        "python",
        "close minus open",
    )
    assert node.params_schema == manifest.params_schema and node.warnings == ("careful",)
    assert LocalNodeResolver([manifest]).resolve("spread", "^1") == node

    row = CustomNodeVersion(
        node_id=1,
        version="1.2.0",
        code_hash=manifest.code_hash(),
        manifest_json=manifest.model_dump_json(),
    )
    entry = catalog_entry("spread", row)
    assert [p.model_dump() for p in entry.inputs] == [p.to_json() for p in node.inputs]
    assert [p.model_dump() for p in entry.outputs] == [p.to_json() for p in node.outputs]
    assert entry.use == "spread@1.2.0" and entry.custom
