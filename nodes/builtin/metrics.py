"""Performance metrics from an equity curve marked at closes, and the ``metrics`` node.

Definitions follow BACKTEST.md exactly (see :func:`compute_metrics`). Undefined values are None,
never NaN or infinity, so the result is always valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from nodes.base import Node, Params, Port, PortType, register
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["METRIC_KEYS", "MetricsNode", "MetricsParams", "compute_metrics", "infer_ppy"]

METRIC_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "num_trades",
    "win_rate",
    "profit_factor",
    "avg_trade_return",
    "exposure",
    "turnover",
    "total_fees",
    "ppy",
    "start",
    "end",
    "bars",
    "final_equity",
)

_DAY_NS = 86_400 * 10**9
_YEAR_NS = 365.25 * _DAY_NS


def infer_ppy(index: pd.Index) -> float | None:
    """Periods per year from the timestamps' median spacing (None with fewer than 2 bars).

    Data with bars on both Saturday and Sunday (UTC; e.g. crypto) trades all year: 365.25 days /
    spacing. Otherwise daily bars are 252 sessions a year; intraday bars 252 × bars per session,
    taken as the median number of bars per UTC calendar day; bars sparser than daily (weekly,
    monthly) 365.25 days / spacing.
    """
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    ns = index.as_unit("ns").asi8
    spacing = float(np.median(np.diff(ns)))
    if spacing <= 0:
        return None
    day = ns // _DAY_NS
    starts = np.concatenate(([0], np.flatnonzero(np.diff(day)) + 1))  # first bar of each day
    weekday = (day[starts] + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if (weekday == 5).any() and (weekday == 6).any():
        return _YEAR_NS / spacing
    if spacing > 1.5 * _DAY_NS:
        return _YEAR_NS / spacing
    if spacing >= _DAY_NS:
        return 252.0
    per_day = np.diff(np.concatenate((starts, [len(day)])))
    return 252.0 * float(np.median(per_day))


def _num(value: float | np.floating | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return _num(num / den)


def compute_metrics(
    equity_frame: pd.DataFrame,
    trades_frame: pd.DataFrame | None,
    ppy: float | None = None,
    risk_free: float = 0.0,
    orders: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The metrics of an equity curve (column ``equity``, indexed by ts) and its trades.

    Starting capital is the first bar's equity (the backtest never trades before bar 2). Per-bar
    simple returns r of equity give ``volatility`` = std(r, ddof=1)·√ppy, ``sharpe`` =
    mean(r − rf)/std(r)·√ppy and ``sortino`` = mean(r − rf)/√mean(min(r − rf, 0)²)·√ppy, with rf
    = risk_free / ppy per bar (risk_free is annual). ``cagr`` uses years = (last ts − first ts) /
    365.25 days. Trade statistics use closed trades only; ``profit_factor`` = gross profit /
    gross loss (None without losses). ``exposure`` = share of bars with a non-zero ``position``.
    ``turnover`` = traded notional / mean equity, from ``orders`` when given, else from trades
    (exact unless the still-open trade was partly reduced). Undefined values are None.
    """
    if "equity" not in equity_frame.columns or len(equity_frame) == 0:
        raise NodeError("metrics: the equity input needs an 'equity' column and at least one bar")
    eq = equity_frame["equity"].to_numpy(dtype="float64")
    index = equity_frame.index
    if ppy is None:
        ppy = infer_ppy(index)
    start_equity, final = float(eq[0]), float(eq[-1])
    out: dict[str, Any] = {k: None for k in METRIC_KEYS}
    drawdown = equity_frame["drawdown"] if "drawdown" in equity_frame.columns else None
    out.update(_curve_metrics(eq, index, ppy, risk_free, drawdown))
    out.update(_trade_metrics(trades_frame))
    out.update(_activity_metrics(equity_frame, trades_frame, orders, eq))
    out["ppy"] = _num(ppy)
    out["bars"] = len(eq)
    out["final_equity"] = _num(final)
    out["total_return"] = _num(final / start_equity - 1.0) if start_equity != 0 else None
    if isinstance(index, pd.DatetimeIndex):
        out["start"], out["end"] = index[0].isoformat(), index[-1].isoformat()
    return out


def _curve_metrics(
    eq: np.ndarray,
    index: pd.Index,
    ppy: float | None,
    risk_free: float,
    drawdown: pd.Series | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if eq[0] <= 0:
            out["max_drawdown"] = None
        elif drawdown is not None:  # the backtest's column: equity / running peak - 1
            out["max_drawdown"] = _num(drawdown.min())
        else:
            out["max_drawdown"] = _num(np.min(eq / np.maximum.accumulate(eq) - 1.0))
        r = eq[1:] / eq[:-1] - 1.0
    cagr = None
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1 and eq[0] > 0:
        years = (index[-1] - index[0]).value / _YEAR_NS
        growth = eq[-1] / eq[0]
        if years > 0 and growth >= 0:
            cagr = _num(growth ** (1.0 / years) - 1.0)
    out["cagr"] = cagr
    mdd = out["max_drawdown"]
    out["calmar"] = _ratio(cagr, abs(mdd)) if mdd is not None else None
    if ppy is None or len(r) < 2 or not np.isfinite(r).all():
        return out
    root = math.sqrt(ppy)
    std = float(np.std(r, ddof=1))
    excess = r - risk_free / ppy
    mean = float(np.mean(excess))
    out["volatility"] = _num(std * root)
    out["sharpe"] = _ratio(mean * root, std) if std > 0 else None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    out["sortino"] = _ratio(mean * root, downside) if downside > 0 else None
    return out


def _trade_metrics(trades: pd.DataFrame | None) -> dict[str, Any]:
    if trades is None or len(trades) == 0:
        return {"num_trades": 0}
    pnl = trades["pnl"].to_numpy(dtype="float64")
    ret = trades["return"].to_numpy(dtype="float64")
    if "is_open" in trades.columns:
        closed = ~trades["is_open"].to_numpy(dtype=bool)
        pnl, ret = pnl[closed], ret[closed]
    out: dict[str, Any] = {"num_trades": len(pnl)}
    if len(pnl) == 0:
        return out
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    out["win_rate"] = _num((pnl > 0).mean())
    out["profit_factor"] = _ratio(gains, losses) if losses > 0 else None
    out["avg_trade_return"] = _num(ret.mean())
    return out


def _activity_metrics(
    equity_frame: pd.DataFrame,
    trades: pd.DataFrame | None,
    orders: pd.DataFrame | None,
    eq: np.ndarray,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "position" in equity_frame.columns:
        out["exposure"] = _num((equity_frame["position"].to_numpy(dtype="float64") != 0).mean())
    if orders is not None:
        notional = float((orders["units"] * orders["price"]).sum()) if len(orders) else 0.0
        out["total_fees"] = _num(orders["fee"].sum()) if len(orders) else 0.0
    elif trades is not None:
        notional, out["total_fees"] = _notional_from_trades(trades)
    else:
        return out
    out["turnover"] = _ratio(notional, float(np.mean(eq)))
    return out


def _notional_from_trades(trades: pd.DataFrame) -> tuple[float, float]:
    if len(trades) == 0:
        return 0.0, 0.0
    units = trades["units"].to_numpy(dtype="float64")
    entry = units * trades["entry_price"].to_numpy(dtype="float64")
    exit_ = units * trades["exit_price"].to_numpy(dtype="float64")
    if "is_open" in trades.columns:
        exit_ = np.where(trades["is_open"].to_numpy(dtype=bool), 0.0, exit_)
    return float(entry.sum() + exit_.sum()), float(trades["fees"].sum())


class MetricsParams(Params):
    """Annualisation and risk-free rate."""

    ppy: float | None = Field(
        None, gt=0, description="Periods per year; inferred from the timestamps when absent."
    )
    risk_free: float = Field(
        0.0, ge=-1, le=1, description="Annual risk-free rate for Sharpe and Sortino."
    )


@register
class MetricsNode(Node):
    """Performance metrics of an equity curve and its trades (the backtest reports the same).

    total_return, cagr, volatility, sharpe, sortino, max_drawdown (a negative fraction), calmar;
    over closed trades num_trades, win_rate, profit_factor, avg_trade_return; exposure (share of
    bars with a position), turnover (traded notional / mean equity), total_fees; plus ppy, start,
    end, bars, final_equity. ``ppy`` is inferred from the bar spacing when absent (365.25 days /
    spacing with weekend bars, else 252 × bars per session). Undefined values (no trades, zero
    variance) are null. With the optional ``orders`` input, turnover is exact in every case.
    """

    name = "metrics"
    category = "backtest"
    summary = "Performance metrics of an equity curve"
    inputs = (
        Port("equity", PortType.EQUITY, "equity curve marked at closes"),
        Port("trades", PortType.TRADES, "trades of the backtest"),
        Port("orders", PortType.ORDERS, "orders of the backtest (for turnover)", optional=True),
    )
    outputs = (Port("metrics", PortType.METRICS, "the metrics; null where undefined"),)
    params_model = MetricsParams
    metric_keys = METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: MetricsParams) -> dict[str, Any]:
        """Compute the metrics."""
        metrics = compute_metrics(
            inputs["equity"],
            inputs.get("trades"),
            ppy=params.ppy,
            risk_free=params.risk_free,
            orders=inputs.get("orders"),
        )
        return {"metrics": metrics}
