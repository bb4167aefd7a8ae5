"""Indicator nodes: rolling and recursive transforms of a series, no look-ahead.

Every output at bar t uses only inputs at bars <= t, so running on a prefix of the data gives the
same values on that prefix. Warm-up bars (too little history) are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from nodes.base import Node, Params, Port, PortType, register
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "Atr",
    "Bollinger",
    "Ema",
    "Macd",
    "Momentum",
    "Returns",
    "Rsi",
    "Sma",
    "Zscore",
    "seeded_ewm",
]

_IN = (Port("series", PortType.SERIES, "the input series"),)
_OUT = (Port("value", PortType.SERIES, "the indicator, NaN during warm-up"),)


def _window(default: int, minimum: int = 1, what: str = "Bars in the window.") -> Any:
    return Field(default, ge=minimum, le=1_000_000, description=what)


def as_float_series(value: Any, what: str) -> pd.Series:
    """``value`` as a float64 series; raises NodeError naming ``what`` otherwise."""
    if not isinstance(value, pd.Series):
        raise NodeError(f"{what} must be a series, got {type(value).__name__}")
    if not pd.api.types.is_numeric_dtype(value.dtype) or pd.api.types.is_bool_dtype(value.dtype):
        raise NodeError(f"{what} must be numeric, got dtype {value.dtype}")
    return value.astype("float64")


def seeded_ewm(x: pd.Series, window: int, alpha: float) -> pd.Series:
    """Recursive average ``y[t] = (1 - alpha) * y[t-1] + alpha * x[t]`` seeded with an SMA.

    The seed is the mean of the first ``window`` consecutive valid values (so leading NaN, e.g.
    another indicator's warm-up, are skipped); earlier outputs are NaN. A NaN input after the
    seed gives a NaN output and leaves the average unchanged.
    """
    sma = x.rolling(window, min_periods=window).mean().to_numpy()
    valid = np.flatnonzero(~np.isnan(sma))
    if len(valid) == 0:
        return pd.Series(np.nan, index=x.index, dtype="float64")
    seed = int(valid[0])
    src = x.to_numpy(dtype="float64", copy=True)
    src[:seed] = np.nan
    src[seed] = sma[seed]
    out = pd.Series(src, index=x.index).ewm(alpha=alpha, adjust=False, ignore_na=True).mean()
    out[np.isnan(src)] = np.nan
    return out


class WindowParams(Params):
    """A single window length."""

    window: int = _window(20)


@register
class Sma(Node):
    """Simple moving average: the mean of the last ``window`` values.

    The first ``window - 1`` values are NaN (warm-up), as is any window holding a NaN.
    """

    name = "sma"
    category = "indicators"
    panel = "per_symbol"
    summary = "Simple moving average"
    inputs = _IN
    outputs = _OUT
    params_model = WindowParams

    def run(self, inputs: Mapping[str, Any], params: WindowParams) -> dict[str, Any]:
        """Rolling mean."""
        x = as_float_series(inputs["series"], "sma: series")
        return {"value": x.rolling(params.window, min_periods=params.window).mean().rename("sma")}


@register
class Ema(Node):
    """Exponential moving average with alpha = 2 / (window + 1), computed recursively.

    Seeded with the simple average of the first ``window`` values, so the first ``window - 1``
    values are NaN (like TA-Lib, unlike pandas' ``ewm`` which starts at the first value).
    """

    name = "ema"
    category = "indicators"
    panel = "per_symbol"
    summary = "Exponential moving average"
    inputs = _IN
    outputs = _OUT
    params_model = WindowParams

    def run(self, inputs: Mapping[str, Any], params: WindowParams) -> dict[str, Any]:
        """Seeded recursive EMA."""
        x = as_float_series(inputs["series"], "ema: series")
        return {"value": seeded_ewm(x, params.window, 2.0 / (params.window + 1)).rename("ema")}


class RsiParams(Params):
    """RSI window."""

    window: int = _window(14)


@register
class Rsi(Node):
    """Relative strength index (Wilder), from 0 to 100.

    Average gains and losses use Wilder smoothing (alpha = 1/window) seeded with the simple
    average of the first ``window`` changes; RSI = 100 * gain / (gain + loss): 100 when there are
    gains and no losses, 0 with losses and no gains. When both averages are 0 (the price has not
    moved since the data began) RSI is undefined, NaN, so that no level is crossed on no
    information (TA-Lib returns 0 there, which reads as deeply oversold). After a move, a flat
    window keeps the decayed averages and so the last RSI, as in TA-Lib (Wilder's recursion
    remembers). The first ``window`` values are NaN (warm-up: a change needs two bars).
    """

    name = "rsi"
    category = "indicators"
    panel = "per_symbol"
    summary = "Relative strength index (Wilder)"
    inputs = _IN
    outputs = _OUT
    params_model = RsiParams

    def run(self, inputs: Mapping[str, Any], params: RsiParams) -> dict[str, Any]:
        """Wilder RSI."""
        x = as_float_series(inputs["series"], "rsi: series")
        change = x.diff()
        alpha = 1.0 / params.window
        gain = seeded_ewm(change.clip(lower=0.0), params.window, alpha).to_numpy()
        loss = seeded_ewm((-change).clip(lower=0.0), params.window, alpha).to_numpy()
        total = gain + loss
        with np.errstate(invalid="ignore", divide="ignore"):
            rsi = np.where(total > 0.0, 100.0 * gain / total, np.nan)
        return {"value": pd.Series(rsi, index=x.index, name="rsi")}


class MacdParams(Params):
    """MACD windows; ``fast`` must be shorter than ``slow``."""

    fast: int = _window(12, what="Window of the fast EMA.")
    slow: int = _window(26, what="Window of the slow EMA.")
    signal: int = _window(9, what="Window of the EMA of the MACD line.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


@register
class Macd(Node):
    """Moving average convergence/divergence.

    ``macd`` = EMA(fast) - EMA(slow); ``signal`` = EMA(signal) of ``macd``; ``hist`` = macd -
    signal. EMAs are seeded as in ``ema``: ``macd`` is NaN for the first ``slow - 1`` bars,
    ``signal`` and ``hist`` for the first ``slow + signal - 2``. TA-Lib seeds the fast EMA at
    the slow one's first bar instead (the SMA of bars slow - fast .. slow - 1), so its early
    ``macd`` values differ from these by a gap that shrinks by 1 - 2/(fast + 1) a bar.
    """

    name = "macd"
    category = "indicators"
    panel = "per_symbol"
    summary = "MACD line, signal line and histogram"
    inputs = _IN
    outputs = (
        Port("macd", PortType.SERIES, "EMA(fast) - EMA(slow)"),
        Port("signal", PortType.SERIES, "EMA of the MACD line"),
        Port("hist", PortType.SERIES, "macd - signal"),
    )
    params_model = MacdParams

    def run(self, inputs: Mapping[str, Any], params: MacdParams) -> dict[str, Any]:
        """MACD, signal and histogram."""
        x = as_float_series(inputs["series"], "macd: series")
        fast = seeded_ewm(x, params.fast, 2.0 / (params.fast + 1))
        slow = seeded_ewm(x, params.slow, 2.0 / (params.slow + 1))
        line = (fast - slow).rename("macd")
        signal = seeded_ewm(line, params.signal, 2.0 / (params.signal + 1)).rename("signal")
        return {"macd": line, "signal": signal, "hist": (line - signal).rename("hist")}


class BollingerParams(Params):
    """Bollinger window and band width."""

    window: int = _window(20)
    k: float = Field(2.0, gt=0, le=100, description="Band half-width in standard deviations.")


@register
class Bollinger(Node):
    """Bollinger bands: ``middle`` = SMA(window), ``upper``/``lower`` = middle ± k · std.

    The standard deviation is the population one (ddof=0), as in Bollinger's definition (pandas'
    ``rolling().std()`` defaults to ddof=1). ``percent_b`` = (x - lower) / (upper - lower), NaN
    when the bands coincide (a flat window). The first ``window - 1`` values are NaN.
    """

    name = "bollinger"
    category = "indicators"
    panel = "per_symbol"
    summary = "Bollinger bands and %b"
    inputs = _IN
    outputs = (
        Port("middle", PortType.SERIES, "the moving average"),
        Port("upper", PortType.SERIES, "middle + k std"),
        Port("lower", PortType.SERIES, "middle - k std"),
        Port("percent_b", PortType.SERIES, "where x lies between the bands (0 = lower, 1 = upper)"),
    )
    params_model = BollingerParams

    def run(self, inputs: Mapping[str, Any], params: BollingerParams) -> dict[str, Any]:
        """Bands and %b."""
        x = as_float_series(inputs["series"], "bollinger: series")
        roll = x.rolling(params.window, min_periods=params.window)
        middle = roll.mean()
        width = params.k * roll.std(ddof=0)
        upper, lower = middle + width, middle - width
        span = (upper - lower).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(span > 0, (x.to_numpy() - lower.to_numpy()) / span, np.nan)
        return {
            "middle": middle.rename("middle"),
            "upper": upper.rename("upper"),
            "lower": lower.rename("lower"),
            "percent_b": pd.Series(pct, index=x.index, name="percent_b"),
        }


class AtrParams(Params):
    """ATR window."""

    window: int = _window(14)


@register
class Atr(Node):
    """Average true range (Wilder).

    True range = max(high - low, |high - previous close|, |low - previous close|); on the first
    bar, with no previous close, high - low. ATR is its Wilder average (alpha = 1/window) seeded
    with the mean of the first ``window`` true ranges, so the first ``window - 1`` values are NaN
    (Wilder's and StockCharts' convention). TA-Lib skips bar 0 and seeds with the true ranges of
    bars 1 .. window (first value at bar ``window``); the gap shrinks by 1 - 1/window a bar.
    """

    name = "atr"
    category = "indicators"
    panel = "per_symbol"
    summary = "Average true range (Wilder)"
    inputs = (Port("bars", PortType.OHLCV, "bars with high, low and close"),)
    outputs = _OUT
    params_model = AtrParams

    def run(self, inputs: Mapping[str, Any], params: AtrParams) -> dict[str, Any]:
        """Wilder ATR."""
        bars = inputs["bars"]
        if not isinstance(bars, pd.DataFrame) or not {"high", "low", "close"} <= set(bars.columns):
            raise NodeError("atr: bars must be a table with high, low and close columns")
        high, low = bars["high"].to_numpy(float), bars["low"].to_numpy(float)
        prev_close = bars["close"].shift(1).to_numpy(float)
        tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
        tr = pd.Series(tr, index=bars.index)
        return {"value": seeded_ewm(tr, params.window, 1.0 / params.window).rename("atr")}


class MomentumParams(Params):
    """Momentum lag."""

    window: int = _window(10, what="Lag in bars.")


@register
class Momentum(Node):
    """Momentum: x[t] - x[t - window]. The first ``window`` values are NaN."""

    name = "momentum"
    category = "indicators"
    panel = "per_symbol"
    summary = "Change over a lag"
    inputs = _IN
    outputs = _OUT
    params_model = MomentumParams

    def run(self, inputs: Mapping[str, Any], params: MomentumParams) -> dict[str, Any]:
        """Lagged difference."""
        x = as_float_series(inputs["series"], "momentum: series")
        return {"value": (x - x.shift(params.window)).rename("momentum")}


class ReturnsParams(Params):
    """Return horizon and kind."""

    periods: int = _window(1, what="Horizon in bars.")
    log: bool = Field(False, description="Log returns instead of simple returns.")


@register
class Returns(Node):
    """Returns over ``periods`` bars: x[t] / x[t - periods] - 1, or its log with ``log=true``.

    The first ``periods`` values are NaN.
    """

    name = "returns"
    category = "indicators"
    panel = "per_symbol"
    summary = "Simple or log returns"
    inputs = _IN
    outputs = _OUT
    params_model = ReturnsParams

    def run(self, inputs: Mapping[str, Any], params: ReturnsParams) -> dict[str, Any]:
        """Simple or log returns."""
        x = as_float_series(inputs["series"], "returns: series")
        ratio = x / x.shift(params.periods)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.log(ratio) if params.log else ratio - 1.0
        return {"value": value.rename("returns")}


class ZscoreParams(Params):
    """Z-score window (at least 2: it needs a sample standard deviation)."""

    window: int = _window(20, minimum=2)


@register
class Zscore(Node):
    """Rolling z-score: (x - rolling mean) / rolling standard deviation (ddof=1).

    The first ``window - 1`` values are NaN, and so is any bar whose window is flat (zero std).
    """

    name = "zscore"
    category = "indicators"
    panel = "per_symbol"
    summary = "Rolling z-score"
    inputs = _IN
    outputs = _OUT
    params_model = ZscoreParams

    def run(self, inputs: Mapping[str, Any], params: ZscoreParams) -> dict[str, Any]:
        """Rolling z-score."""
        x = as_float_series(inputs["series"], "zscore: series")
        roll = x.rolling(params.window, min_periods=params.window)
        std = roll.std(ddof=1).to_numpy()
        dev = (x - roll.mean()).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(std > 0, dev / std, np.nan)
        return {"value": pd.Series(z, index=x.index, name="zscore")}
