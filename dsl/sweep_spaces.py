"""Search spaces of a sweep: ``[values]``, ``range(a, b, step)``, ``int(lo, hi, step=, log=)``,
``float(lo, hi, step=, log=)`` and ``choice([...])``.

``range`` is Python's: the end is excluded. ``int`` and ``float`` include both bounds. A range
is kept as an :class:`~dsl.ir.IntSpace` (bounds and step), so its values are never listed.
"""

from __future__ import annotations

import math
from typing import Any

from dsl import tree as t
from dsl.diagnostics import did_you_mean
from dsl.ir import FloatSpace, IntSpace, ValuesSpace
from dsl.source import Reporter

MAX_VALUES = 100_000
FUNCTIONS = ("range", "int", "float", "choice")
Space = ValuesSpace | IntSpace | FloatSpace


def build_space(space: t.Space, rep: Reporter, *, grid: bool) -> Space | None:
    """The IR of a space, or None after reporting AF303 (empty) or AF307 (malformed)."""
    if space.fn is None:
        assert space.values is not None
        return _values(space.values, rep)
    if space.fn not in FUNCTIONS:
        rep.report(
            "AF307",
            f"unknown search space `{space.fn}` (range, int, float or choice)",
            space.fn_span,
            suggestions=did_you_mean(space.fn, FUNCTIONS),
        )
        return None
    pos, kw = _split(space, rep)
    if pos is None or kw is None:
        return None
    if space.fn == "choice":
        if len(pos) != 1 or not isinstance(pos[0], t.ListV) or kw:
            rep.report("AF307", "write `choice([a, b, ...])`", space.span)
            return None
        return _values(pos[0], rep)
    if space.fn == "range":
        return _range(space, pos, kw, rep)
    return _numeric(space, pos, kw, rep, grid=grid)


def space_size(space: Space) -> int | None:
    """How many values a space yields, computed without listing them (None: continuous)."""
    if isinstance(space, ValuesSpace):
        return len(space.values)
    if isinstance(space, IntSpace):
        return (space.high - space.low) // space.step + 1
    if space.step is None:
        return None
    steps = (space.high - space.low) / space.step
    if not math.isfinite(steps) or steps > 1e18:  # a step too small to count in a float
        return 10**18
    return int(steps + 1e-9) + 1


def finite_values(space: Space) -> list[Any] | None:
    """Every value of a finite space (None for continuous or too-large ones)."""
    if isinstance(space, ValuesSpace):
        return list(space.values)
    n = space_size(space)
    if n is None or n > MAX_VALUES:
        return None
    if isinstance(space, IntSpace):
        return list(range(space.low, space.high + 1, space.step))
    assert space.step is not None
    return [round(space.low + i * space.step, 12) for i in range(n)]


def _values(values: t.ListV, rep: Reporter) -> ValuesSpace | None:
    ref = t.contains_ref(values)
    if ref is not None:
        rep.report(
            "AF307", f"search values must be literals; `{ref.text}` is a reference", ref.span
        )
        return None
    if not values.items:
        rep.report("AF303", "empty list of values", values.span)
        return None
    return ValuesSpace(values=tuple(values.to_json()))


def _split(space: t.Space, rep: Reporter) -> tuple[list[t.Val] | None, dict[str, t.Lit] | None]:
    pos: list[t.Val] = []
    kw: dict[str, t.Lit] = {}
    for arg in space.args:
        if arg.key is None:
            pos.append(arg.value)
        elif not isinstance(arg.value, t.Lit):
            rep.report("AF307", f"`{arg.key}` takes a literal", arg.value.span)
            return None, None
        else:
            kw[arg.key] = arg.value
    return pos, kw


def _num(v: t.Val, rep: Reporter, *, integer: bool) -> int | float | None:
    ok = isinstance(v, t.Lit) and v.kind in (("int",) if integer else ("int", "float"))
    if not ok:
        rep.report("AF307", f"expected {'an integer' if integer else 'a number'}", v.span)
        return None
    assert isinstance(v, t.Lit)
    return v.value  # type: ignore[no-any-return]


def _range(
    space: t.Space, pos: list[t.Val], kw: dict[str, t.Lit], rep: Reporter
) -> IntSpace | None:
    if kw or not 1 <= len(pos) <= 3:
        rep.report(
            "AF307",
            "write `range(stop)`, `range(start, stop)` or `range(start, stop, step)`",
            space.span,
        )
        return None
    nums = [_num(v, rep, integer=True) for v in pos]
    if any(n is None for n in nums):
        return None
    ints = [int(n) for n in nums if n is not None]
    start, stop, step = (
        (0, ints[0], 1) if len(ints) == 1 else (ints[0], ints[1], ints[2] if len(ints) == 3 else 1)
    )
    if step == 0:
        rep.report("AF307", "range step cannot be 0", pos[2].span)
        return None
    values = range(start, stop, step)
    if len(values) == 0:
        rep.report(
            "AF303", f"range({start}, {stop}, {step}) is empty (the end is excluded)", space.span
        )
        return None
    # as bounds and a step, never its values listed (the IR of range(10**9) stays small)
    last = values[-1]
    low, high = (start, last) if step > 0 else (last, start)
    return IntSpace(low=low, high=high, step=abs(step))


def _numeric(
    space: t.Space, pos: list[t.Val], kw: dict[str, t.Lit], rep: Reporter, *, grid: bool
) -> IntSpace | FloatSpace | None:
    integer = space.fn == "int"
    if len(pos) != 2 or set(kw) - {"step", "log"}:
        bad = next((k for k in kw if k not in ("step", "log")), None)
        msg = f"`{space.fn}` has no option `{bad}`" if bad else f"write `{space.fn}(low, high)`"
        rep.report("AF307", msg, space.span, suggestions=did_you_mean(bad or "", ("step", "log")))
        return None
    low, high = (_num(v, rep, integer=integer) for v in pos)
    step = _num(kw["step"], rep, integer=integer) if "step" in kw else None
    log = kw.get("log")
    if low is None or high is None or ("step" in kw and step is None):
        return None
    if log is not None and log.kind != "bool":
        rep.report("AF307", "`log` takes true or false", log.span)
        return None
    is_log = bool(log.value) if log is not None else False
    if low > high:
        rep.report("AF303", f"empty space: low {low} is above high {high}", space.span)
        return None
    if step is not None and step <= 0:
        rep.report("AF307", "`step` must be positive", kw["step"].span)
        return None
    if is_log and low <= 0:
        rep.report("AF307", "a log-uniform space needs low > 0", pos[0].span)
        return None
    if is_log and step is not None:
        rep.report("AF307", "`step` and `log=true` cannot be combined", kw["step"].span)
        return None
    if integer:
        return IntSpace(low=int(low), high=int(high), step=int(step or 1), log=is_log)
    if grid and step is None:
        rep.report(
            "AF307",
            "a grid needs finite values: give `float(...)` a `step`",
            space.span,
            hint="or use `sweep random(...)` / `sweep optuna(...)` for continuous spaces",
        )
        return None
    return FloatSpace(low=float(low), high=float(high), step=step, log=is_log)
