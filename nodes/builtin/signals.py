"""Signal nodes: target positions in [-1, 1] built from series, never NaN (warm-up = 0).

A signal at bar t is the position wanted after bar t closes; the backtest executes it at the next
bar's open. Every node here uses only values at bars <= t. A NaN input (an indicator's warm-up,
or an undefined value such as the RSI of a price that never moved) is *no information*: the
previous position holds (0 before the first defined value), so it never causes an order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from nodes.base import Node, Params, Port, PortType, register
from nodes.builtin.indicators import as_float_series
from nodes.builtin.metrics import CALENDAR_DESCRIPTION, CalendarName, resolve_ppy
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Combine", "Crossover", "PositionSizer", "Threshold"]

_OUT = (Port("signal", PortType.SIGNAL, "target position in [-1, 1]"),)


def _same_index(named: Sequence[tuple[str, pd.Series]], node: str) -> None:
    first_name, first = named[0]
    for name, s in named[1:]:
        if not s.index.equals(first.index):
            raise NodeError(
                f"{node}: {name} and {first_name} must share the same timestamps "
                f"({len(s)} vs {len(first)} bars); compute them from the same data"
            )


def _check_signal(s: pd.Series, what: str) -> np.ndarray:
    values = as_float_series(s, what).to_numpy()
    bad = np.isnan(values) | (np.abs(values) > 1.0)
    if bad.any():
        i = int(np.argmax(bad))
        raise NodeError(f"{what}: value {values[i]} at {s.index[i]} is not a position in [-1, 1]")
    return values


def _hold(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Forward-fill NaN ("hold the previous value"), 0 before the first value."""
    return _signal(_fill_forward(values, np.isnan(values)), index)


def _fill_forward(values: np.ndarray, undefined: np.ndarray) -> np.ndarray:
    """``values`` (changed in place) where ``undefined`` holds the last defined value before,
    0 before the first. Works on the undefined positions only (a signal has few)."""
    where = np.flatnonzero(undefined)
    if len(where):
        # each undefined position's run of consecutive undefined ones starts at ``start``; the
        # value before the run is defined (or there is none: 0)
        new_run = np.empty(len(where), dtype=bool)
        new_run[0] = True
        np.not_equal(np.diff(where), 1, out=new_run[1:])
        start = np.maximum.accumulate(np.where(new_run, where, 0))
        fill = values[np.maximum(start - 1, 0)]
        fill[start == 0] = 0.0
        values[where] = fill
    return values


def _signal(values: np.ndarray, index: pd.Index) -> pd.Series:
    # the node's own array: no copy
    return pd.Series(values, index=index, name="signal", copy=False)


def _float_values(value: Any, what: str) -> np.ndarray:
    """A float64 series' values, read only (else :func:`as_float_series`'s checks and cast)."""
    if isinstance(value, pd.Series) and value.dtype == np.float64:
        return value.to_numpy()
    return as_float_series(value, what).to_numpy()


class CrossoverParams(Params):
    """Crossover mode."""

    mode: Literal["long_short", "long_only"] = Field(
        "long_short", description="long_short: -1 below; long_only: 0 below."
    )


@register
class Crossover(Node):
    """Long when ``fast`` is above ``slow``; short (``long_short``) or flat (``long_only``) below.

    Where either input is NaN (warm-up, or undefined later) or they are equal, the previous value
    holds (0 before the first defined one). Both inputs must have the same timestamps.
    """

    name = "crossover"
    category = "signals"
    panel = "per_symbol"
    summary = "Position from two series crossing"
    inputs = (
        Port("fast", PortType.SERIES, "the faster series"),
        Port("slow", PortType.SERIES, "the slower series"),
    )
    outputs = _OUT
    params_model = CrossoverParams

    def run(self, inputs: Mapping[str, Any], params: CrossoverParams) -> dict[str, Any]:
        """1 / -1 (or 0) by which series is above."""
        f = _float_values(inputs["fast"], "crossover: fast")
        s = _float_values(inputs["slow"], "crossover: slow")
        fast, slow = inputs["fast"], inputs["slow"]
        _same_index([("fast", fast), ("slow", slow)], "crossover")
        above, below = f > s, f < s  # NaN compares False
        out = above.astype(np.float64)
        if params.mode == "long_short":
            out -= below
        return {"signal": _signal(_fill_forward(out, ~(above | below)), fast.index)}


class ThresholdParams(Params):
    """Levels and the positions they give."""

    lower: float | None = Field(None, description="Below this level the signal is `below`.")
    upper: float | None = Field(None, description="Above this level the signal is `above`.")
    below: float = Field(1.0, ge=-1, le=1, description="Position when the series < lower.")
    above: float = Field(-1.0, ge=-1, le=1, description="Position when the series > upper.")
    inside: Literal["hold", "flat"] = Field(
        "hold", description="Between the levels: hold the previous position, or go flat (0)."
    )

    @model_validator(mode="after")
    def _levels(self) -> ThresholdParams:
        if self.lower is None and self.upper is None:
            raise ValueError("give lower, upper or both")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError("lower must be smaller than upper")
        return self


@register
class Threshold(Node):
    """Position from levels: ``below`` when the series < ``lower``, ``above`` when > ``upper``.

    Between the levels (or where the series is NaN) the previous position holds
    (``inside="hold"``, 0 before any level was crossed) or is 0 (``inside="flat"``). E.g. RSI
    mean reversion: lower=30, upper=70, below=1, above=-1.
    """

    name = "threshold"
    category = "signals"
    panel = "per_symbol"
    summary = "Position from level crossings"
    inputs = (Port("series", PortType.SERIES, "the series compared with the levels"),)
    outputs = _OUT
    params_model = ThresholdParams

    def run(self, inputs: Mapping[str, Any], params: ThresholdParams) -> dict[str, Any]:
        """Levels to positions."""
        x = as_float_series(inputs["series"], "threshold: series")
        v = x.to_numpy()
        raw = np.full(len(v), np.nan)
        if params.lower is not None:
            raw[v < params.lower] = params.below
        if params.upper is not None:
            raw[v > params.upper] = params.above
        if params.inside == "flat":
            return {"signal": pd.Series(np.nan_to_num(raw, nan=0.0), index=x.index, name="signal")}
        return {"signal": _hold(raw, x.index)}


class CombineParams(Params):
    """How signals are combined."""

    how: Literal["and", "or", "mean"] = Field(
        "mean", description="and: all agree; or: any, without disagreement; mean: average."
    )


@register
class Combine(Node):
    """One signal from several.

    ``and``: when all are > 0 the smallest, when all are < 0 the one closest to 0, else 0.
    ``or``: when some are > 0 and none < 0 the largest, when some are < 0 and none > 0 the most
    negative, else 0. ``mean``: the average. All inputs must have the same timestamps.
    """

    name = "combine"
    category = "signals"
    panel = "per_symbol"
    summary = "Combine signals (and / or / mean)"
    inputs = (Port("signals", PortType.SIGNAL, "the signals to combine", variadic=True),)
    outputs = _OUT
    params_model = CombineParams

    def run(self, inputs: Mapping[str, Any], params: CombineParams) -> dict[str, Any]:
        """Row-wise combination."""
        given = inputs["signals"]
        signals = list(given) if isinstance(given, list | tuple) else [given]
        if not signals:
            raise NodeError("combine: needs at least one signal")
        named = [(f"signal {i + 1}", s) for i, s in enumerate(signals)]
        for name, s in named:
            _check_signal(s, f"combine: {name}")
        _same_index(named, "combine")
        m = np.column_stack([s.to_numpy(dtype="float64") for s in signals])
        lo, hi = m.min(axis=1), m.max(axis=1)
        if params.how == "mean":
            out = m.mean(axis=1)
        elif params.how == "and":
            out = np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))
        else:
            out = np.where((hi > 0) & (lo >= 0), hi, np.where((lo < 0) & (hi <= 0), lo, 0.0))
        return {"signal": pd.Series(out, index=signals[0].index, name="signal")}


class PositionSizerParams(Params):
    """Scaling and limits of a position."""

    fraction: float = Field(1.0, gt=0, le=1, description="Multiplies the signal.")
    target_vol: float | None = Field(
        None, gt=0, le=10, description="Annualised volatility to aim for (needs prices)."
    )
    vol_window: int = Field(20, ge=2, le=100_000, description="Bars of returns in realised vol.")
    ppy: float | None = Field(
        None,
        gt=0,
        le=1e8,
        description="Periods per year for annualising the vol; wins over calendar. When both "
        "are absent, inferred from the timestamps (the node's log says how).",
    )
    calendar: CalendarName | None = Field(None, description=CALENDAR_DESCRIPTION)
    max_position: float = Field(1.0, gt=0, le=1, description="Largest absolute position.")

    @model_validator(mode="after")
    def _ppy_or_calendar(self) -> PositionSizerParams:
        if self.ppy is not None and self.calendar is not None:
            raise ValueError("give ppy or calendar, not both (ppy is the number calendar implies)")
        return self


@register
class PositionSizer(Node):
    """Scale a signal: × ``fraction``, and with ``target_vol`` also × target_vol / realised vol.

    Realised vol at bar t = std (ddof=1) of the last ``vol_window`` simple returns of ``prices``
    up to t, annualised with ``ppy`` (else from ``calendar``, else inferred as in the metrics;
    the log says which). Until it exists (warm-up) the output is 0; where it is undefined later
    (a flat window: vol 0) the last defined scale holds, so a price that stops moving neither
    closes the position nor sizes it to infinity. The result is clipped to ±``max_position``.
    The inferred ppy looks at all timestamps (their median spacing); give ``ppy`` or
    ``calendar`` to make every bar depend on past data only.
    """

    name = "position_sizer"
    category = "signals"
    panel = "per_symbol"
    summary = "Scale a signal by a fraction or to a target volatility"
    inputs = (
        Port("signal", PortType.SIGNAL, "the signal to scale"),
        Port("prices", PortType.SERIES, "prices for realised volatility", optional=True),
    )
    outputs = _OUT
    params_model = PositionSizerParams

    def run(self, inputs: Mapping[str, Any], params: PositionSizerParams) -> dict[str, Any]:
        """Scaled and clipped signal."""
        signal = inputs["signal"]
        values = _check_signal(signal, "position_sizer: signal") * params.fraction
        if params.target_vol is not None:
            prices = inputs.get("prices")
            if prices is None:
                raise NodeError("position_sizer: target_vol needs the prices input")
            prices = as_float_series(prices, "position_sizer: prices")
            _same_index([("signal", signal), ("prices", prices)], "position_sizer")
            values = values * self._vol_scale(prices, params, self.ctx.log)
        clipped = np.clip(values, -params.max_position, params.max_position)
        return {"signal": pd.Series(clipped + 0.0, index=signal.index, name="signal")}

    @staticmethod
    def _vol_scale(
        prices: pd.Series, params: PositionSizerParams, log: Callable[[str], None]
    ) -> np.ndarray:
        choice = resolve_ppy(prices.index, params.ppy, params.calendar)
        if choice.ppy is None:
            raise NodeError("position_sizer: cannot infer ppy from fewer than 2 bars; give ppy")
        log(f"ppy {choice.ppy:g}: {choice.source}")
        for warning in choice.warnings:
            log(f"warning: {warning}")
        returns = prices.pct_change(fill_method=None)
        vol = returns.rolling(params.vol_window, min_periods=params.vol_window).std(ddof=1)
        vol = vol.to_numpy() * np.sqrt(choice.ppy)
        assert params.target_vol is not None
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(vol > 0, params.target_vol / vol, np.nan)
        return pd.Series(scale).ffill().fillna(0.0).to_numpy()
