"""``strategy_backtest(data, strategy=..., <config>)`` in the compiler: the module resolved to
its code (in the IR), its CONFIG_SCHEMA keys as the step's params (checked at their values, with
defaults filled), AF220 / AF221 where the module cannot be used, and sweeps over config keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dsl import compile_source
from dsl.strategyref import StrategyLookupError
from live.strategyrefs import FileStrategyResolver, resolved_module

ROOT = Path(__file__).resolve().parents[2]
SMA = ROOT / "examples" / "strategies" / "sma_cross.py"

HEAD = 'pipeline p\ndata = csv_ohlcv(path="data.csv")\n'


def _compile(body: str, resolver: object = None) -> object:
    strategies = resolver if resolver is not None else FileStrategyResolver(SMA.parent)
    return compile_source(HEAD + body, filename="p.af", strategies=strategies)  # type: ignore[arg-type]


def _errors(result: object) -> list[tuple[str, int, int, str]]:
    return [
        (d.code, d.line, d.col, d.message)
        for d in result.diagnostics  # type: ignore[attr-defined]
        if d.severity == "error"
    ]


def test_the_module_and_its_config_are_written_into_the_ir() -> None:
    result = _compile('bt = strategy_backtest(data, strategy="sma_cross.py", fast=7, fee_bps=5)\n')
    assert _errors(result) == []
    node = result.ir.node("bt")  # type: ignore[attr-defined]
    code = SMA.read_text()
    assert node.params["code"] == code
    assert node.params["code_hash"] == hashlib.sha256(code.encode()).hexdigest()
    assert node.params["strategy"] == "sma_cross.py"
    # the config, with the schema's defaults filled in, beside the node's own params
    assert (node.params["fast"], node.params["slow"], node.params["qty"]) == (7, 20, 0.01)
    assert node.params["fee_bps"] == 5 and node.params["cash"] == 100_000


def test_a_changed_module_changes_the_ir_hash(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(SMA.read_text())
    step = 'bt = strategy_backtest(data, strategy="s.py")\n'
    first = _compile(step, FileStrategyResolver(tmp_path)).ir.content_hash()  # type: ignore[attr-defined]
    (tmp_path / "s.py").write_text(SMA.read_text().replace("Buy `qty`", "Buy qty"))
    second = _compile(step, FileStrategyResolver(tmp_path)).ir.content_hash()  # type: ignore[attr-defined]
    assert first != second


def test_config_values_are_checked_at_their_place() -> None:
    body = 'bt = strategy_backtest(data, strategy="sma_cross.py", fst=3, slow="x", qty=-1)\n'
    errors = _errors(_compile(body))
    line = 3
    col = body.index
    assert ("AF102", line, col("fst") + 1) == errors[0][:3]
    assert errors[1][:3] == ("AF104", line, col('"x"') + 1)
    assert "'x' is not of type 'integer'" in errors[1][3]
    assert errors[2][:3] == ("AF105", line, col("-1") + 1)
    assert len(errors) == 3


def test_a_misspelt_config_key_gets_the_right_name_suggested() -> None:
    result = _compile('bt = strategy_backtest(data, strategy="sma_cross.py", fst=3)\n')
    diag = next(d for d in result.diagnostics if d.code == "AF102")  # type: ignore[attr-defined]
    assert diag.suggestions == ["fast"]


def test_a_required_config_key_without_default_is_missing(tmp_path: Path) -> None:
    code = SMA.read_text().replace('"default": 5, ', "")
    (tmp_path / "s.py").write_text(code)
    errors = _errors(_compile('bt = strategy_backtest(data, strategy="s.py")\n',
                              FileStrategyResolver(tmp_path)))  # fmt: skip
    assert [(c, m) for c, _, _, m in errors] == [
        ("AF103", "`strategy_backtest` needs param `fast`")
    ]


def test_an_unknown_module_is_af220_at_the_reference_with_the_nearest_file() -> None:
    body = 'bt = strategy_backtest(data, strategy="sma_cros.py", fast=3)\n'
    errors = _errors(_compile(body))
    assert len(errors) == 1  # no error per config key on top
    code, line, col, message = errors[0]
    assert (code, line, col) == ("AF220", 3, body.index('"sma_cros') + 1)
    assert "no such file" in message and "did you mean sma_cross.py?" in message


def test_without_a_strategy_store_the_step_cannot_compile() -> None:
    result = compile_source(HEAD + 'bt = strategy_backtest(data, strategy="x", fast=3)\n')
    assert [(c, m) for c, _, _, m in _errors(result)] == [
        ("AF220", "cannot resolve strategy 'x': no strategy store is configured here")
    ]


def test_a_config_key_that_is_a_node_param_is_af221(tmp_path: Path) -> None:
    code = SMA.read_text().replace('"qty": {', '"cash": {"type": "number"}, "qty": {')
    (tmp_path / "s.py").write_text(code)
    errors = _errors(_compile('bt = strategy_backtest(data, strategy="s.py")\n',
                              FileStrategyResolver(tmp_path)))  # fmt: skip
    assert [c for c, *_ in errors] == ["AF221"]
    assert "cash" in errors[0][3]


def test_a_file_that_is_no_strategy_module_is_af220(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("x = 1\n")
    errors = _errors(_compile('bt = strategy_backtest(data, strategy="s.py")\n',
                              FileStrategyResolver(tmp_path)))  # fmt: skip
    assert [c for c, *_ in errors] == ["AF220"]
    assert "no strategy class" in errors[0][3]


def test_the_code_param_is_written_by_the_compiler_not_typed() -> None:
    errors = _errors(_compile('bt = strategy_backtest(data, strategy="sma_cross.py", code="x")\n'))
    assert [c for c, *_ in errors] == ["AF102"]


def test_a_sweep_varies_a_config_key_and_its_values_are_checked() -> None:
    ok = _compile(
        'bt = strategy_backtest(data, strategy="sma_cross.py")\n'
        "sweep grid {\n  bt.fast = [3, 5]\n  objective maximize bt.sharpe\n}\n"
    )
    assert _errors(ok) == []
    sweep = ok.ir.sweep  # type: ignore[attr-defined]
    assert [(p.node, p.param) for p in sweep.params] == [("bt", "fast")]
    bad = _compile(
        'bt = strategy_backtest(data, strategy="sma_cross.py")\n'
        "sweep grid {\n  bt.fast = [0, 5]\n  objective maximize bt.sharpe\n}\n"
    )
    assert [(c, line) for c, line, _, _ in _errors(bad)] == [("AF105", 5)]


def test_resolved_module_refuses_a_broken_module() -> None:
    with pytest.raises(StrategyLookupError, match="line 1: syntax error"):
        resolved_module("x", "def (:\n")


TICK_HEAD = "pipeline p\nbook = synthetic_book(seed=1, duration_s=10)\n"


def _compile_tick(body: str) -> object:
    return compile_source(
        TICK_HEAD + body, filename="p.af", strategies=FileStrategyResolver(SMA.parent)
    )


def test_a_tick_strategy_module_and_its_config_are_written_into_the_ir() -> None:
    step = 'bt = tick_strategy_backtest(book, strategy="tick_grid.py", levels=3, step_ms=50)\n'
    result = _compile_tick(step)
    assert _errors(result) == []
    node = result.ir.node("bt")  # type: ignore[attr-defined]
    code = (SMA.parent / "tick_grid.py").read_text()
    assert node.params["code"] == code
    assert node.params["code_hash"] == hashlib.sha256(code.encode()).hexdigest()
    assert node.params["levels"] == 3 and node.params["half_spread_ticks"] == 1.0  # default
    assert node.params["step_ms"] == 50


def test_a_tick_strategy_config_value_is_checked_at_its_value() -> None:
    result = _compile_tick('bt = tick_strategy_backtest(book, strategy="tick_grid.py", levels=0)\n')
    errors = _errors(result)
    assert len(errors) == 1 and errors[0][1] == 3 and "levels" in errors[0][3], errors


def test_the_strategy_kinds_are_told_apart() -> None:
    from nodes.strategycode import StrategyCodeError, read_module

    assert read_module(SMA.read_text()).kind == "bar"
    assert read_module((SMA.parent / "tick_grid.py").read_text()).kind == "tick"
    no_step = "from alphaforge_tick import TickStrategy\nclass T(TickStrategy):\n    pass\n"
    with pytest.raises(StrategyCodeError, match="has no on_step"):
        read_module(no_step)


def test_a_module_of_the_other_kind_is_af220_at_the_strategy() -> None:
    result = _compile_tick('bt = tick_strategy_backtest(book, strategy="sma_cross.py")\n')
    errors = _errors(result)
    assert [e[:2] for e in errors] == [("AF220", 3)], errors
    assert "is a bar strategy: use strategy_backtest" in errors[0][3]
    result = _compile('bt = strategy_backtest(data, strategy="tick_grid.py")\n')
    errors = _errors(result)
    assert [e[:2] for e in errors] == [("AF220", 3)], errors
    assert "is a tick strategy: use tick_strategy_backtest" in errors[0][3]


def test_a_sweep_varies_a_tick_strategy_config_key_and_its_values_are_checked() -> None:
    step = 'bt = tick_strategy_backtest(book, strategy="tick_grid.py", levels=3)\n'
    ok = _compile_tick(
        step + "sweep grid {\n  bt.half_spread_ticks = [0, 2.5]\n  bt.levels = range(1, 4)\n"
        "  objective maximize bt.total_return\n}\n"
    )
    assert _errors(ok) == []
    sweep = ok.ir.sweep  # type: ignore[attr-defined]
    targets = [(p.node, p.param) for p in sweep.params]
    assert targets == [("bt", "half_spread_ticks"), ("bt", "levels")]
    assert sweep.grid_size == 6
    body = (
        "sweep optuna(trials=4) {\n  bt.half_spread_ticks = float(-1, 6)\n"
        "  bt.half_spred_ticks = [1]\n  objective maximize bt.total_return\n}\n"
    )
    bad = _compile_tick(step + body)
    errors = _errors(bad)
    text = TICK_HEAD + step + body
    lines = text.splitlines()
    assert [e[:3] for e in errors] == [
        ("AF105", 5, lines[4].index("float(") + 1),  # the schema's minimum 0, at the space
        ("AF302", 6, lines[5].index("half_spred") + 1),
    ], errors
    assert "-1.0 is less than the minimum of 0" in errors[0][3]
    diag = next(d for d in bad.diagnostics if d.code == "AF302")  # type: ignore[attr-defined]
    assert diag.suggestions[0] == "half_spread_ticks"


@pytest.mark.parametrize(
    ("head", "step"),
    [
        (HEAD, 'bt = strategy_backtest(data, strategy="sma_cross.py")\n'),
        (TICK_HEAD, 'bt = tick_strategy_backtest(book, strategy="tick_grid.py")\n'),
    ],
    ids=["bar", "tick"],
)
def test_the_strategy_module_itself_cannot_be_swept(head: str, step: str) -> None:
    """The compiler writes the resolved module's code into the step: a trial with another
    ``strategy`` would run that code under the other name, so the target is refused."""
    body = 'sweep grid {\n  bt.strategy = ["sma_cross.py", "tick_grid.py"]\n'
    body += "  objective maximize bt.total_return\n}\n"
    result = compile_source(
        head + step + body, filename="p.af", strategies=FileStrategyResolver(SMA.parent)
    )
    errors = _errors(result)
    assert [e[:3] for e in errors] == [("AF302", 5, 6)], errors
    assert "`bt.strategy` cannot be swept" in errors[0][3]
