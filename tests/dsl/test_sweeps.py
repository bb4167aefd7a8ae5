"""Sweep validation: spaces, targets, constraints over the grid, objectives."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from dsl import CompileResult
from dsl.ir import FloatSpace, IntSpace, ValuesSpace
from dsl.sweeps import MAX_COMBINATIONS, MAX_GRID_COMBINATIONS

Compile = Callable[..., CompileResult]

BASE = """pipeline s
data = csv_ohlcv(path="a.csv")
fast = sma(data.close, window=10)
slow = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal)
"""


def _sweep(compile_: Compile, block: str) -> CompileResult:
    return compile_(BASE + block)


def test_grid_size_counts_trials_left_by_constraints(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep grid {\n fast.window = [5, 10, 20]\n slow.window = range(20, 100, 10)\n"
        " where fast.window < slow.window\n where slow.window - fast.window >= 15\n"
        " objective maximize result.sharpe\n}\n",
    )
    sweep = result.ir.sweep if result.ir else None
    assert sweep is not None, result.format()
    expected = sum(1 for f in (5, 10, 20) for s in range(20, 100, 10) if f < s and s - f >= 15)
    assert sweep.grid_size == expected == 8 + 7 + 6


def test_constraint_may_use_a_fixed_param_of_an_unswept_step(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep grid {\n fast.window = [5, 10, 40, 50]\n where fast.window < slow.window\n}\n",
    )
    sweep = result.ir.sweep if result.ir else None
    assert sweep is not None and sweep.grid_size == 2  # slow.window is 30
    assert sweep.where[0].args[1].op == "const" and sweep.where[0].args[1].value == 30


def test_constraints_excluding_everything_are_an_error(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep grid {\n fast.window = [40, 50]\n slow.window = [10, 20]\n"
        " where fast.window < slow.window\n}\n",
    )
    (d,) = result.errors
    assert d.code == "AF304" and "all 4 combinations" in d.message
    assert (d.line, d.col) == (10, 8)


def test_empty_grid(compile_: Compile) -> None:
    result = _sweep(compile_, "sweep grid {\n fast.window = []\n}\n")
    assert [(d.code, d.line, d.col) for d in result.errors] == [("AF303", 8, 16)]
    result = _sweep(compile_, "sweep grid {\n}\n")
    assert [d.code for d in result.errors] == ["AF303"]


def test_unknown_targets(compile_: Compile) -> None:
    result = _sweep(compile_, "sweep grid {\n fst.window = [5]\n fast.widow = [5]\n}\n")
    got = [(d.code, d.col, d.suggestions) for d in result.errors]
    assert got == [("AF301", 2, ["fast"]), ("AF302", 7, ["window"])]


@pytest.mark.parametrize(
    ("target", "space", "expected"),
    [
        ("fast.window", "[1, 2]", ValuesSpace(values=(1, 2))),
        ("result.fee_bps", "range(5)", IntSpace(low=0, high=4)),
        ("fast.window", "range(2, 8, 3)", IntSpace(low=2, high=5, step=3)),
        ("fast.window", "range(10, 0, -3)", IntSpace(low=1, high=10, step=3)),
        ("fast.window", "int(5, 50)", IntSpace(low=5, high=50)),
        ("fast.window", "int(5, 50, step=5)", IntSpace(low=5, high=50, step=5)),
        ("fast.window", "int(5, 500, log=true)", IntSpace(low=5, high=500, log=True)),
        ("result.fee_bps", "float(0.5, 2)", FloatSpace(low=0.5, high=2.0)),
        ("result.cash", "float(0.01, 1.0, log=true)", FloatSpace(low=0.01, high=1.0, log=True)),
        ("fast.window", "choice([1, 2, 3])", ValuesSpace(values=(1, 2, 3))),
    ],
)
def test_space_forms(compile_: Compile, target: str, space: str, expected: object) -> None:
    result = compile_(
        BASE + f"sweep optuna(trials=10) {{\n {target} = {space}\n"
        " objective maximize result.sharpe\n}\n"
    )
    sweep = result.ir.sweep if result.ir else None
    assert sweep is not None, result.format()
    assert sweep.params[0].space == expected


@pytest.mark.parametrize(
    ("space", "code"),
    [
        ("int(50, 5)", "AF303"),
        ("float(2.0, 1.0)", "AF303"),
        ("range(5, 5)", "AF303"),
        ("range(1, 5, 0)", "AF307"),
        ("int(0, 5, log=true)", "AF307"),
        ("int(1, 5, step=-1)", "AF307"),
        ("int(1, 5, stepp=1)", "AF307"),
        ("int(1.5, 5)", "AF307"),
        ("int(1)", "AF307"),
        ("choice(1, 2)", "AF307"),
        ("unif(1, 2)", "AF307"),
        ("[1, fast]", "AF307"),
    ],
)
def test_bad_spaces(compile_: Compile, space: str, code: str) -> None:
    result = _sweep(
        compile_,
        f"sweep random(trials=5) {{\n fast.window = {space}\n"
        " objective maximize result.sharpe\n}\n",
    )
    assert [d.code for d in result.errors] == [code], result.format()


def test_space_values_are_validated_by_the_params_model(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep optuna(trials=5) {\n fast.window = int(0, 10)\n"
        " objective maximize result.sharpe\n}\n",
    )
    (d,) = result.errors
    assert d.code == "AF105" and "sweep value 0" in d.message


def test_huge_space_constraints_are_not_enumerated(compile_: Compile) -> None:
    n = int(MAX_COMBINATIONS**0.5) + 10
    result = _sweep(
        compile_,
        f"sweep random(trials=50) {{\n fast.window = int(1, {n})\n slow.window = int(1, {n})\n"
        " where fast.window < slow.window\n objective maximize result.sharpe\n}\n",
    )
    assert result.ir is not None and result.ir.sweep is not None
    assert result.ir.sweep.grid_size is None
    assert [(d.code, d.severity) for d in result.diagnostics] == [("AF313", "info")]


def test_a_grid_over_the_cap_is_an_error_at_the_sweep_line(compile_: Compile) -> None:
    # 10^10 combinations: counted from the ranges' sizes, never listed, never in the IR
    assigns = "".join(f" p{i}.window = range(2, 12)\n" for i in range(10))
    steps = "".join(f"p{i} = sma(data.close, window=5)\n" for i in range(10))
    source = BASE + steps + "sweep grid {\n" + assigns + "}\n"
    t0 = time.perf_counter()
    result = compile_(source)
    assert time.perf_counter() - t0 < 5
    (err,) = result.errors
    assert err.code == "AF314" and (err.line, err.col) == (17, 7), result.format()
    assert "10,000,000,000 combinations" in err.message
    assert f"the limit is {MAX_GRID_COMBINATIONS:,}" in err.message and err.hint


def test_a_grid_at_the_cap_compiles_and_ranges_stay_bounds_in_the_ir(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep grid {\n fast.window = range(1, 101)\n slow.window = int(1, 100)\n}\n",
    )
    assert result.ir is not None and result.ir.sweep is not None, result.format()
    assert result.ir.sweep.grid_size == MAX_GRID_COMBINATIONS
    assert result.ir.sweep.params[0].space == IntSpace(low=1, high=100)
    result = _sweep(
        compile_,
        "sweep grid {\n fast.window = range(1, 1000000)\n slow.window = range(1, 100)\n}\n",
    )
    assert [d.code for d in result.errors] == ["AF314"], result.format()
    result = _sweep(
        compile_,
        "sweep random(trials=20) {\n fast.window = range(1, 1000000)\n"
        " objective maximize result.sharpe\n}\n",
    )
    assert result.ir is not None and result.ir.sweep is not None, result.format()
    assert result.ir.sweep.params[0].space == IntSpace(low=1, high=999_999)


def test_a_sampled_sweep_over_the_trial_cap_is_an_error(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        "sweep random(trials=1000000) {\n fast.window = int(2, 50)\n"
        " objective maximize result.sharpe\n}\n",
    )
    (err,) = result.errors
    assert err.code == "AF314" and err.line == 7 and "1,000,000 trials" in err.message


def test_constraint_that_cannot_be_evaluated(compile_: Compile) -> None:
    result = _sweep(
        compile_,
        'sweep grid {\n fast.window = [5]\n signal.mode = ["long_only"]\n'
        " where fast.window < signal.mode\n}\n",
    )
    assert [d.code for d in result.errors] == ["AF310"]


def test_objective_checks(compile_: Compile) -> None:
    def objective(text: str) -> list[tuple[str, list[str]]]:
        r = _sweep(compile_, f"sweep grid {{\n fast.window = [5]\n objective {text}\n}}\n")
        return [(d.code, d.suggestions) for d in r.errors]

    assert objective("maximize result.sharpe") == []
    assert objective("maximize result.metrics.sharpe") == []
    assert objective("maximize result.sharpee") == [("AF305", ["sharpe"])]
    assert objective("maximize rslt.sharpe") == [("AF305", ["result"])]
    assert objective("maximize result.equity.sharpe") == [("AF305", [])]
    assert objective("maximum result.sharpe") == [("AF305", ["maximize"])]
    assert objective("maximize fast.value") == [("AF305", [])]


def test_random_and_optuna_need_trials_and_an_objective(compile_: Compile) -> None:
    result = _sweep(compile_, "sweep optuna {\n fast.window = int(2, 9)\n}\n")
    assert [d.code for d in result.errors] == ["AF306", "AF311"]
    result = _sweep(
        compile_,
        'sweep optuna(trials=0, seed="x", sampler="tpe") {\n fast.window = int(2, 9)\n'
        " objective maximize result.sharpe\n}\n",
    )
    assert [d.code for d in result.errors] == ["AF306", "AF306"]
    result = _sweep(compile_, "sweep grid(trials=3) {\n fast.window = [2]\n}\n")
    assert [d.code for d in result.errors] == ["AF306"]


def test_objective_must_be_a_numeric_metric(compile_: Compile) -> None:
    for key in ("notes", "ppy_source", "start"):
        result = _sweep(
            compile_,
            f"sweep grid {{\n fast.window = [5, 10]\n objective maximize result.{key}\n}}\n",
        )
        found = [d for d in result.diagnostics if d.code == "AF305"]
        assert found and "is not a number" in found[0].message, result.format()
    ok = _sweep(
        compile_, "sweep grid {\n fast.window = [5, 10]\n objective maximize result.sharpe\n}\n"
    )
    assert not [d for d in ok.diagnostics if d.severity == "error"], ok.format()


OPTUNA_BODY = " {\n fast.window = int(2, 9)\n objective maximize result.sharpe\n}\n"


@pytest.mark.parametrize(
    ("options", "value", "message", "suggestions"),
    [
        ('sampler="tpee"', '"tpee"', "unknown Optuna sampler `tpee`", ["tpe"]),
        ('sampler="cmaes"', '"cmaes"', "unknown Optuna sampler `cmaes`", []),
        ('pruner="medain"', '"medain"', "unknown Optuna pruner `medain`", ["median"]),
        ('pruner="hyperbnd"', '"hyperbnd"', "unknown Optuna pruner `hyperbnd`", ["hyperband"]),
        ("timeout=0", "0", "`timeout` must be more than 0", []),
        ("timeout=-2.5", "-2.5", "`timeout` must be more than 0", []),
        ("seed=-1", "-1", "`seed` must be 0 or more", []),
        ('pruner="median", prune_steps=1', "1", "`prune_steps` must be from 2 to 10", []),
        ('pruner="median", prune_steps=11', "11", "`prune_steps` must be from 2 to 10", []),
    ],
)
def test_bad_optuna_option_values_are_af306_at_the_value(
    compile_: Compile, options: str, value: str, message: str, suggestions: list[str]
) -> None:
    header = f"sweep optuna(trials=10, {options})"
    result = _sweep(compile_, header + OPTUNA_BODY)
    (d,) = result.errors
    assert d.code == "AF306" and message in d.message, result.format()
    assert (d.line, d.col) == (7, header.rindex(value) + 1)
    assert d.suggestions == suggestions


@pytest.mark.parametrize(
    ("options", "value", "message", "hint"),
    [
        ("pruner=median", "median", "`pruner` takes a quoted string", 'pruner="median" (one of'),
        ("sampler=7", "7", "`sampler` takes a quoted string", 'sampler="tpe" (one of'),
        ('seed="7"', '"7"', "`seed` takes an integer", None),
        ('timeout="10"', '"10"', "`timeout` takes a number", None),
    ],
)
def test_an_optuna_option_of_the_wrong_type_says_what_it_takes(
    compile_: Compile, options: str, value: str, message: str, hint: str | None
) -> None:
    header = f"sweep optuna(trials=10, {options})"
    result = _sweep(compile_, header + OPTUNA_BODY)
    (d,) = result.errors
    assert d.code == "AF306" and message in d.message, result.format()
    assert (d.line, d.col) == (7, header.rindex(value) + 1)
    if hint is None:
        assert not d.hint, d.hint
    else:
        assert hint in (d.hint or ""), d.hint


def test_good_optuna_options_compile_into_the_ir(compile_: Compile) -> None:
    from dsl.ir import OPTUNA_PRUNERS, OPTUNA_SAMPLERS

    for sampler in OPTUNA_SAMPLERS:
        for pruner in OPTUNA_PRUNERS:
            result = _sweep(
                compile_,
                f'sweep optuna(trials=10, seed=0, sampler="{sampler}", pruner="{pruner}", '
                f"prune_steps=3, timeout=1.5)" + OPTUNA_BODY,
            )
            sweep = result.ir.sweep if result.ir else None
            assert sweep is not None, result.format()
            assert sweep.options == {
                "trials": 10,
                "seed": 0,
                "sampler": sampler,
                "pruner": pruner,
                "prune_steps": 3,
                "timeout": 1.5,
            }
    plain = _sweep(compile_, "sweep optuna(trials=10)" + OPTUNA_BODY)
    assert plain.ir is not None and plain.ir.sweep is not None
    assert plain.ir.sweep.options == {"trials": 10}


def test_random_sweeps_take_no_pruner(compile_: Compile) -> None:
    result = _sweep(compile_, 'sweep random(trials=5, pruner="median")' + OPTUNA_BODY)
    (d,) = result.errors
    assert d.code == "AF306" and "has no option `pruner`" in d.message
