"""Every construct of the language parses into what it means (checked through the IR/outline)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dsl import CompileResult
from dsl.ir import InputBinding, IntSpace
from tests.dsl.conftest import HEADER

Compile = Callable[..., CompileResult]


def _params(compile_: Compile, body: str, step: str = "x") -> dict:
    result = compile_(HEADER + body)
    item = next(o for o in result.outline if o.id == step)
    return item.params


def test_header_with_and_without_title(compile_: Compile) -> None:
    ir = compile_('pipeline my_strat "My \\"quoted\\" strategy"\nd = csv_ohlcv(path="a")\n').ir
    assert ir is not None and ir.name == "my_strat" and ir.title == 'My "quoted" strategy'
    ir = compile_('pipeline bare\nd = csv_ohlcv(path="a")\n').ir
    assert ir is not None and ir.name == "bare" and ir.title is None


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("100_000", 100_000),
        ("-3", -3),
        ("1e-4", 1e-4),
        ("2.5E3", 2500.0),
        ("1_000.5", 1000.5),
        (".5", 0.5),
        ('"a\\tb\\u00e9"', "a\tbé"),
        ('""', ""),
        ("true", True),
        ("false", False),
        ("none", None),
        ("[5, 10, 20]", [5, 10, 20]),
        ('[1, "a", [true, none],]', [1, "a", [True, None]]),
        ("[]", []),
        ("15m", "15m"),
        ("2h", "2h"),
        ("30d", "30d"),
        ("6M", "6M"),
        ("2y", "2y"),
        ("45s", "45s"),
        ("3w", "3w"),
        ("2021-01-01", "2021-01-01"),
        ("2021-01-01T09:30", "2021-01-01T09:30"),
        ("2021-01-01T09:30:15", "2021-01-01T09:30:15"),
    ],
)
def test_literals_become_json(compile_: Compile, literal: str, value: object) -> None:
    params = _params(compile_, f"x = sma(data.close, v={literal})\n")
    assert params == {"v": value}
    assert type(params["v"]) is type(value)


def test_comments_anywhere(compile_: Compile) -> None:
    text = (
        "# leading comment\n"
        "pipeline c  # after the header\n"
        "# between\n"
        'data = csv_ohlcv(path="a#b.csv")  # a # inside a string is not a comment\n'
    )
    result = compile_(text)
    assert result.ok, result.format()
    assert result.ir is not None and result.ir.node("data").params["path"] == "a#b.csv"


def test_references_bare_port_and_column(compile_: Compile) -> None:
    result = compile_(
        HEADER
        + "m = macd(data.close)\n"
        + "s = crossover(m, m.signal)\n"
        + "r = backtest(data, s)\n"
        + "e = sma(r.drawdown)\n"
    )
    assert result.ok, result.format()
    ir = result.ir
    assert ir is not None
    assert ir.node("m").inputs["series"] == InputBinding(node="data", port="bars", column="close")
    assert ir.node("s").inputs["fast"] == InputBinding(node="m", port="macd")
    assert ir.node("s").inputs["slow"] == InputBinding(node="m", port="signal")
    assert ir.node("e").inputs["series"] == InputBinding(node="r", port="equity", column="drawdown")


def test_keyword_arguments_bind_inputs_by_port_name(compile_: Compile) -> None:
    result = compile_(
        HEADER + "f = sma(series=data.close)\ns = crossover(slow=f, fast=data.open)\n"
    )
    ir = result.ir
    assert ir is not None, result.format()
    assert ir.node("s").inputs["slow"] == InputBinding(node="f", port="value")
    assert ir.node("s").inputs["fast"].column == "open"  # type: ignore[union-attr]


def test_variadic_port_takes_the_rest_positionally_or_a_list_by_name(compile_: Compile) -> None:
    body = (
        "a = crossover(data.close, data.open)\nb = crossover(data.high, data.low)\n"
        'c = combine(a, b, a, how="and")\nd = combine(signals=[a, b])\n'
    )
    ir = compile_(HEADER + body).ir
    assert ir is not None
    assert [b.node for b in ir.node("c").inputs["signals"]] == ["a", "b", "a"]  # type: ignore[union-attr]
    assert [b.node for b in ir.node("d").inputs["signals"]] == ["a", "b"]  # type: ignore[union-attr]


def test_optional_input_may_be_left_out(compile_: Compile) -> None:
    body = "s = crossover(data.close, data.open)\np = position_sizer(s, fraction=0.5)\n"
    ir = compile_(HEADER + body).ir
    assert ir is not None and set(ir.node("p").inputs) == {"signal"}


def test_for_loop_expands_names_and_values(compile_: Compile) -> None:
    body = "for w in [6, 12, 24] {\n    rsi_{w} = rsi(data.close, window=w)\n}\n"
    ir = compile_(HEADER + body).ir
    assert ir is not None
    assert ir.node_ids() == ["data", "rsi_6", "rsi_12", "rsi_24"]
    assert [ir.node(f"rsi_{w}").params["window"] for w in (6, 12, 24)] == [6, 12, 24]


def test_nested_loops_and_template_references(compile_: Compile) -> None:
    body = (
        'for s in ["fast", "slow"] {\n'
        "  for w in [5, 10] {\n"
        "    ma_{s}_{w} = sma(data.close, window=w)\n"
        "  }\n"
        "}\n"
        "for w in [5, 10] { x_{w} = crossover(ma_fast_{w}, ma_slow_{w}) }\n"
    )
    result = compile_(HEADER + body)
    ir = result.ir
    assert ir is not None, result.format()
    ids = ir.node_ids()
    assert {"ma_fast_5", "ma_fast_10", "ma_slow_5", "ma_slow_10", "x_5", "x_10"} <= set(ids)
    assert ir.node("x_10").inputs["slow"] == InputBinding(node="ma_slow_10", port="value")


def test_use_lines_parse_with_range_and_exact_pins(compile_: Compile) -> None:
    result = compile_(HEADER + "use my_rsi@1.2\nuse vol_target@=2.0.1\n")
    codes = [(d.code, d.message) for d in result.diagnostics if d.code == "AF401"]
    assert len(codes) == 2
    assert "my_rsi@1.2" in codes[0][1] and "vol_target@=2.0.1" in codes[1][1]


def test_sweep_grid_with_every_space_kind(compile_: Compile) -> None:
    body = (
        "fast = sma(data.close)\nslow = sma(data.close)\ns = crossover(fast, slow)\n"
        "b = bollinger(data.close)\nr = backtest(data, s)\n"
        "sweep grid {\n"
        "  fast.window = [5, 10]\n"
        "  slow.window = range(20, 40, 10)\n"
        "  b.window = int(10, 14, step=2)\n"
        "  b.k = float(1.0, 2.0, step=0.5)\n"
        '  s.mode = choice(["long_only", "long_short"])\n'
        "}\n"
    )
    result = compile_(HEADER + body)
    sweep = result.ir.sweep if result.ir else None
    assert sweep is not None, result.format()
    kinds = [(p.node, p.param, p.space.kind) for p in sweep.params]
    assert kinds == [
        ("fast", "window", "values"),
        ("slow", "window", "int"),  # a range is bounds and a step, never its values listed
        ("b", "window", "int"),
        ("b", "k", "float"),
        ("s", "mode", "values"),
    ]
    assert sweep.params[1].space == IntSpace(low=20, high=30, step=10)
    assert sweep.grid_size == 2 * 2 * 3 * 3 * 2


def test_where_expression_precedence(compile_: Compile) -> None:
    body = (
        "fast = sma(data.close)\nslow = sma(data.close)\ns = crossover(fast, slow)\n"
        "r = backtest(data, s)\n"
        "sweep grid {\n  fast.window = [2, 4]\n  slow.window = [4, 8]\n"
        "  where not fast.window * 2 + 1 > slow.window or (fast.window == 4 and slow.window != 4)\n"
        "}\n"
    )
    sweep = compile_(HEADER + body).ir.sweep  # type: ignore[union-attr]
    assert sweep is not None
    (w,) = sweep.where
    assert w.op == "or"
    left, right = w.args
    assert left.op == "not" and left.args[0].op == ">"
    plus = left.args[0].args[0]
    assert plus.op == "+" and plus.args[0].op == "*"
    assert right.op == "and"
    # (2,4): not 5>4 = F; (2,8): not 5>8 = T; (4,4): not 9>4 = F, 4==4 and 4!=4 F;
    # (4,8): not 9>8 = F, (4==4 and 8!=4) = T  -> 2 trials
    assert sweep.grid_size == 2


def test_random_and_optuna_sweeps_with_options_and_objective(compile_: Compile) -> None:
    base = "fast = sma(data.close)\ns = crossover(fast, data.open)\nr = backtest(data, s)\n"
    for method in ("random(trials=50, seed=1)", "optuna(trials=200, seed=7)"):
        body = (
            base
            + f"sweep {method} {{\n  fast.window = int(5, 50, log=true)\n"
            + "  r.fee_bps = float(0.0, 10.0)\n  objective minimize r.metrics.max_drawdown\n}\n"
        )
        result = compile_(HEADER + body)
        sweep = result.ir.sweep if result.ir else None
        assert sweep is not None, result.format()
        assert sweep.options["trials"] in (50, 200)
        assert sweep.objective is not None
        assert (sweep.objective.direction, sweep.objective.port, sweep.objective.key) == (
            "minimize",
            "metrics",
            "max_drawdown",
        )
        assert sweep.grid_size is None


SWEPT = (
    "fast = sma(data.close, window=10)\n"
    "signal = crossover(fast, data.close)\n"
    "result = backtest(data, signal)\n"
    "sweep grid {\n fast.window = [5, 10]\n objective maximize result.sharpe\n}\n"
)


def test_walkforward_with_defaults_and_anchoring(compile_: Compile) -> None:
    ir = compile_(HEADER + SWEPT + "walkforward(train=2y, test=6M)\n").ir
    assert ir is not None and ir.walkforward is not None
    wf = ir.walkforward
    assert (wf.train, wf.test, wf.step, wf.anchored) == ("2y", "6M", "6M", False)
    assert wf.train_seconds == 2 * 365 * 86400 and wf.step_seconds == 180 * 86400
    assert (wf.embargo, wf.embargo_seconds) == (None, 0)
    text = "walkforward(train=1y, test=3M, step=1M, anchored=true, embargo=5d)\n"
    ir = compile_(HEADER + SWEPT + text).ir
    assert ir is not None and ir.walkforward is not None and ir.walkforward.anchored
    assert (ir.walkforward.embargo, ir.walkforward.embargo_seconds) == ("5d", 5 * 86400)


def test_walkforward_needs_a_sweep_and_a_positive_embargo(compile_: Compile) -> None:
    result = compile_(HEADER + "walkforward(train=2y, test=6M)\n")
    assert [(d.code, d.line, d.col) for d in result.errors] == [("AF312", 3, 1)]
    assert "walkforward needs a sweep block" in result.errors[0].message
    result = compile_(HEADER + SWEPT + "walkforward(train=2y, test=6M, embargo=3)\n")
    assert [(d.code, d.line) for d in result.errors] == [("AF312", 10)]
    assert "`embargo` takes a duration" in result.errors[0].message


def test_stream_block(compile_: Compile) -> None:
    body = (
        "fast = sma(data.close)\n"
        "stream {\n"
        '    source = replay(dataset="btc_1h", speed=0)   # or binance_futures(...)\n'
        "    warmup = 30d\n"
        "    every 1h after 2m\n"
        '    emit fast to csv_append(path="out.csv", dedup_key=["ts", "symbol"])\n'
        '    emit data.close to postgres(table="predictions")\n'
        "}\n"
    )
    result = compile_(HEADER + body)
    stream = result.ir.stream if result.ir else None
    assert stream is not None, result.format()
    assert stream.source == "replay" and stream.source_params == {"dataset": "btc_1h", "speed": 0}
    assert (stream.warmup, stream.warmup_seconds) == ("30d", 30 * 86400)
    assert (stream.every_seconds, stream.after_seconds) == (3600, 120)
    assert [(s.node, s.port, s.column, s.sink) for s in stream.sinks] == [
        ("fast", "value", None, "csv_append"),
        ("data", "bars", "close", "postgres"),
    ]
    assert stream.sinks[0].params["dedup_key"] == ["ts", "symbol"]
    # emitted steps are terminals, so nothing is unused; the block is not executed yet
    assert [d.code for d in result.warnings] == ["AF008"]


@pytest.mark.parametrize("keyword", ["for", "in", "sweep", "where", "emit", "true", "none", "not"])
def test_keywords_cannot_be_step_names(compile_: Compile, keyword: str) -> None:
    result = compile_(HEADER + f"{keyword} = sma(data.close)\n")
    (d,) = result.diagnostics
    assert d.code == "AF001" and f"`{keyword}` is a keyword" in d.message
    assert (d.line, d.col, d.end_col) == (3, 1, 1 + len(keyword))


def test_keyword_as_pipeline_name(compile_: Compile) -> None:
    (d,) = compile_("pipeline objective\n").diagnostics
    assert d.code == "AF001" and "`objective` is a keyword" in d.message and d.col == 10


def test_names_that_merely_start_with_a_keyword_are_fine(compile_: Compile) -> None:
    result = compile_(
        HEADER + "format = sma(data.close)\nindex = sma(format)\nnotes = sma(index)\n"
    )
    assert result.ok, result.format()
