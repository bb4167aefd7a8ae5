"""Performance metrics from an equity curve marked at closes, and the ``metrics`` node.

Definitions are in docs/backtest.md (see :func:`compute_metrics`). Undefined values are None,
never NaN or infinity, so the result is always valid JSON; ``notes`` says why each is None.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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
    "CALENDARS",
    "METRIC_KEYS",
    "MIN_RETURNS_ANNUALISED",
    "MIN_YEARS_COMPOUNDED",
    "TEXT_METRIC_KEYS",
    "AnnualisationParams",
    "MetricsNode",
    "MetricsParams",
    "OrderArrays",
    "PpyChoice",
    "TradeArrays",
    "compute_metrics",
    "infer_ppy",
    "log_metric_notes",
    "metrics_of",
    "resolve_ppy",
]

#: The keys of METRIC_KEYS that are not numbers (a sweep cannot optimise them).
TEXT_METRIC_KEYS: tuple[str, ...] = ("ppy_source", "start", "end", "notes", "warnings")

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
    "ppy_source",
    "start",
    "end",
    "bars",
    "final_equity",
    "notes",
    "warnings",
)

_DAY_NS = 86_400 * 10**9
_YEAR_NS = 365.25 * _DAY_NS

#: Below this span (in years of 365.25 days) cagr and calmar are null: compounding a short run's
#: return to a year extrapolates it (GIPS: returns for periods under a year are not annualised).
MIN_YEARS_COMPOUNDED = 1.0
#: Below this many per-bar returns volatility, sharpe and sortino are null (a rule of thumb for
#: a mean and a standard deviation worth scaling by sqrt(ppy)).
MIN_RETURNS_ANNUALISED = 30

#: Declared market calendars: trading days a year, and whether a day is 24 hours of bars
#: (True) or one session whose bar count is read from the data (False).
CALENDARS: dict[str, tuple[float, bool]] = {
    "equities": (252.0, False),
    "crypto": (365.0, True),
    "24x7": (365.0, True),
    "fx": (260.0, True),
    "24x5": (260.0, True),
}
CalendarName = Literal["equities", "crypto", "24x7", "fx", "24x5"]

# sparse bars: (lowest, highest spacing in days, periods a year), as quantstats / backtesting.py
_SPARSE = ((6.5, 7.5, 52.0), (27.5, 31.5, 12.0), (88.5, 92.5, 4.0), (364.5, 366.5, 1.0))


@dataclass(frozen=True)
class PpyChoice:
    """Periods per year, how they were chosen (``source``) and what looked wrong (``warnings``)."""

    ppy: float | None
    source: str
    warnings: tuple[str, ...] = ()


def _fmt_days(ns: float) -> str:
    days = ns / _DAY_NS
    if days >= 1:
        return f"{days:g} day" + ("s" if days != 1 else "")
    minutes = ns / 60e9
    if minutes >= 60:
        return f"{minutes / 60:g} h"
    return f"{minutes:g} min"


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _Week:
    """Which days of the week the bars trade on (UTC days)."""

    days: int  # days with bars
    weeks: int  # calendar weeks (Monday to Sunday) with bars
    regular: tuple[int, ...]  # weekdays (Monday = 0) with bars on at least half their dates
    stray: dict[int, int]  # other weekdays with bars: how many days each
    first_stray: str | None
    thin: float  # lowest share of dates with bars among the regular weekdays


def _week_profile(ns: np.ndarray) -> _Week:
    day = np.unique(ns // _DAY_NS)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weeks = len(np.unique((day + 3) // 7))
    counts = np.bincount(weekday, minlength=7)
    span = np.arange(day[0], day[-1] + 1)
    occurs = np.bincount((span + 3) % 7, minlength=7)  # each weekday's dates in the span
    coverage = counts / np.maximum(occurs, 1)
    regular = tuple(int(d) for d in np.flatnonzero(coverage >= 0.5))
    stray = {int(d): int(counts[d]) for d in range(7) if 0 < coverage[d] < 0.5}
    first = None
    if stray:
        hit = np.isin(weekday, list(stray))
        first = pd.Timestamp(int(day[np.argmax(hit)]) * _DAY_NS, tz="UTC").date().isoformat()
    thin = float(min(coverage[d] for d in regular)) if regular else 0.0
    return _Week(len(day), weeks, regular, stray, first, thin)


def _stray_warning(week: _Week, tail: str) -> str:
    listed = ", ".join(f"{_WEEKDAYS[d]} ×{k}" for d, k in sorted(week.stray.items()))
    return (
        f"irregular bars: {sum(week.stray.values())} of {week.days} days with bars fall on days "
        f"of the week that rarely have bars ({listed}; first {week.first_stray}){tail}"
    )


_PPY_CACHE: dict[int, tuple[weakref.ref[pd.Index], float | None, str | None, PpyChoice]] = {}


def resolve_ppy(
    index: pd.Index, ppy: float | None = None, calendar: str | None = None
) -> PpyChoice:
    """:func:`_resolve_ppy`, remembered per index object while it lives: a sweep's trials
    measure equity curves on the same bars, and the calendar inference reads every timestamp
    (≈ 4 ms on 100,000 bars). An index is immutable, and an entry goes with its object (so a
    new object at a reused address is never mistaken for it)."""
    if ppy is not None or not isinstance(index, pd.DatetimeIndex):
        return _resolve_ppy(index, ppy, calendar)
    key = id(index)
    hit = _PPY_CACHE.get(key)
    if hit is not None and hit[0]() is index and hit[1:3] == (ppy, calendar):
        return hit[3]
    choice = _resolve_ppy(index, ppy, calendar)

    def forget(_ref: weakref.ref[pd.Index], k: int = key) -> None:
        _PPY_CACHE.pop(k, None)

    try:
        ref = weakref.ref(index, forget)
    except TypeError:  # an index that cannot be weakly referenced: not remembered
        return choice
    _PPY_CACHE[key] = (ref, ppy, calendar, choice)
    return choice


def _resolve_ppy(
    index: pd.Index, ppy: float | None = None, calendar: str | None = None
) -> PpyChoice:
    """Periods per year: ``ppy`` when given, else from the declared ``calendar`` and the bar
    spacing, else inferred from the timestamps; with the reason and any irregularity found.

    Daily bars are one period a trading day (equities 252, crypto / 24x7 365, fx / 24x5 260).
    Intraday bars multiply that by the bars a day: 24 h / spacing on 24-hour calendars, the
    median number of bars per UTC day for equities. Bars sparser than daily count 52 (weekly),
    12 (monthly), 4 (quarterly), 1 (yearly) or 365.25 days / spacing. Without a calendar, a day
    of the week is part of the market when at least half of its dates have bars: all seven
    make a 7-day market (365 days), fewer a 252-session one (a time zone may shift the sessions
    to other UTC days). Days with bars on the other days of the week (stray weekend bars), a
    7-day market with thin days and gaps shorter than the usual spacing are warnings.
    """
    if ppy is not None:
        return PpyChoice(float(ppy), f"given: ppy={ppy:g}")
    if calendar is not None and calendar not in CALENDARS:
        known = ", ".join(CALENDARS)
        raise NodeError(f"unknown calendar {calendar!r}; known calendars: {known}")
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return PpyChoice(None, "none: fewer than 2 timestamped bars")
    ns = index.as_unit("ns").asi8
    gaps = np.diff(ns)
    spacing = float(np.median(gaps))
    if spacing <= 0:
        return PpyChoice(None, "none: timestamps are not increasing")
    warnings: list[str] = []
    short = int((gaps < 0.9 * spacing).sum())
    if short:
        at = index[int(np.argmax(gaps < 0.9 * spacing)) + 1]
        warnings.append(
            f"irregular bars: {short} gap(s) shorter than the usual spacing of "
            f"{_fmt_days(spacing)} (first before {at.isoformat()}); mixed bar sizes?"
        )
    week = _week_profile(ns)
    spacing_txt = f"median spacing {_fmt_days(spacing)}"
    if spacing > 1.5 * _DAY_NS:
        days_apart = spacing / _DAY_NS
        for lo, hi, per_year in _SPARSE:
            if lo <= days_apart <= hi:
                return PpyChoice(
                    per_year, f"bars {spacing_txt}: {per_year:g} a year", tuple(warnings)
                )
        value = _YEAR_NS / spacing
        return PpyChoice(value, f"bars {spacing_txt}: 365.25 days / spacing", tuple(warnings))
    seven = len(week.regular) == 7
    if calendar is not None:
        name = calendar
        if name == "equities" and seven:
            warnings.append(
                "calendar equities declared but the bars trade on all 7 days of the week"
            )
        elif CALENDARS[name][0] == 365.0 and not seven and week.weeks > 2:
            warnings.append(
                f"calendar {name} declared but the bars trade on {len(week.regular)} days "
                "of the week"
            )
        how = f"calendar {name}"
        if week.stray and not seven:
            warnings.append(_stray_warning(week, ""))
    else:
        name = "24x7" if seven else "equities"
        if seven and week.thin < 0.9:
            warnings.append(
                f"irregular bars: some days of the week have bars on only {week.thin:.0%} of "
                f"their dates in {week.weeks} weeks; taken as a 7-day market: declare "
                "calendar= or ppy= if that is wrong"
            )
        if week.stray:
            tail = (
                f"; taken as a {len(week.regular)}-day week, 252 sessions a year: declare "
                "calendar= or ppy= if that is wrong"
            )
            warnings.append(_stray_warning(week, tail))
        how = (
            f"inferred calendar {name} (bars on {len(week.regular)} days of the week in "
            f"{week.weeks} weeks)"
        )
    per_year, round_the_clock = CALENDARS[name]
    if spacing >= 0.75 * _DAY_NS:
        return PpyChoice(
            per_year, f"{how}: {per_year:g} daily bars a year ({spacing_txt})", tuple(warnings)
        )
    if round_the_clock:
        per_day = _DAY_NS / spacing
        where = f"24 h / {_fmt_days(spacing)}"
    else:
        day = ns // _DAY_NS
        starts = np.concatenate(([0], np.flatnonzero(np.diff(day)) + 1))
        per_day = float(np.median(np.diff(np.concatenate((starts, [len(day)])))))
        where = "median bars per UTC day"
    value = per_year * per_day
    return PpyChoice(
        value, f"{how}: {per_year:g} days × {per_day:g} bars a day ({where})", tuple(warnings)
    )


def infer_ppy(index: pd.Index) -> float | None:
    """Periods per year inferred from the timestamps alone (see :func:`resolve_ppy`)."""
    return resolve_ppy(index).ppy


def _num(value: float | np.floating | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return _num(num / den)


@dataclass(frozen=True)
class TradeArrays:
    """The columns of a trades table the metrics read, as arrays (``is_open`` None: every
    trade is closed). The notional columns may be None when orders give the turnover."""

    pnl: np.ndarray
    ret: np.ndarray
    is_open: np.ndarray | None = None
    units: np.ndarray | None = None
    entry_price: np.ndarray | None = None
    exit_price: np.ndarray | None = None
    fees: np.ndarray | None = None

    @classmethod
    def of(cls, trades: pd.DataFrame) -> TradeArrays:
        """A trades table's columns."""

        def column(name: str, dtype: str = "float64") -> np.ndarray | None:
            return trades[name].to_numpy(dtype=dtype) if name in trades.columns else None

        return cls(
            pnl=trades["pnl"].to_numpy(dtype="float64"),
            ret=trades["return"].to_numpy(dtype="float64"),
            is_open=column("is_open", "bool"),
            units=column("units"),
            entry_price=column("entry_price"),
            exit_price=column("exit_price"),
            fees=column("fees"),
        )


@dataclass(frozen=True)
class OrderArrays:
    """The fills' absolute units, prices and fees (an orders table's columns)."""

    units: np.ndarray
    price: np.ndarray
    fee: np.ndarray

    @classmethod
    def of(cls, orders: pd.DataFrame) -> OrderArrays:
        """An orders table's columns."""
        return cls(
            units=orders["units"].to_numpy(dtype="float64"),
            price=orders["price"].to_numpy(dtype="float64"),
            fee=orders["fee"].to_numpy(dtype="float64"),
        )


def compute_metrics(
    equity_frame: pd.DataFrame,
    trades_frame: pd.DataFrame | None,
    ppy: float | None = None,
    risk_free: float = 0.0,
    orders: pd.DataFrame | None = None,
    calendar: str | None = None,
) -> dict[str, Any]:
    """The metrics of an equity curve (column ``equity``, indexed by ts) and its trades.

    Starting capital is the first bar's equity (the backtest never trades before bar 2). Per-bar
    simple returns r of equity give ``volatility`` = std(r, ddof=1)·√ppy, ``sharpe`` =
    mean(r − rf)/std(r)·√ppy and ``sortino`` = mean(r − rf)/√mean(min(r − rf, 0)²)·√ppy, with rf
    = risk_free / ppy per bar (risk_free is annual); all three are null with fewer than
    :data:`MIN_RETURNS_ANNUALISED` returns. ``cagr`` uses years = (last ts − first ts) / 365.25
    days and is null (with ``calmar``) below :data:`MIN_YEARS_COMPOUNDED`. ppy comes from
    :func:`resolve_ppy` (``ppy_source`` says how). Trade statistics use closed trades only;
    ``profit_factor`` = gross profit / gross loss in money (None without losses). ``exposure`` =
    share of bars with a non-zero ``position``. ``turnover`` = traded notional / mean equity, from
    ``orders`` when given, else from trades (exact unless the still-open trade was partly
    reduced). Undefined values are None; ``notes`` says why for each, ``warnings`` lists what
    looked wrong in the bars (irregular spacing, stray weekend bars).
    """
    if "equity" not in equity_frame.columns or len(equity_frame) == 0:
        raise NodeError("metrics: the equity input needs an 'equity' column and at least one bar")
    columns = equity_frame.columns
    return metrics_of(
        equity_frame["equity"].to_numpy(dtype="float64"),
        equity_frame.index,
        drawdown=(
            equity_frame["drawdown"].to_numpy(dtype="float64") if "drawdown" in columns else None
        ),
        position=(
            equity_frame["position"].to_numpy(dtype="float64") if "position" in columns else None
        ),
        trades=TradeArrays.of(trades_frame) if trades_frame is not None else None,
        orders=OrderArrays.of(orders) if orders is not None else None,
        ppy=ppy,
        risk_free=risk_free,
        calendar=calendar,
    )


def metrics_of(
    eq: np.ndarray,
    index: pd.Index,
    *,
    drawdown: np.ndarray | None = None,
    position: np.ndarray | None = None,
    trades: TradeArrays | None = None,
    orders: OrderArrays | None = None,
    ppy: float | None = None,
    risk_free: float = 0.0,
    calendar: str | None = None,
) -> dict[str, Any]:
    """:func:`compute_metrics` on arrays: the equity per bar, its timestamps, the backtest's
    drawdown and position columns, the trades and the orders (what a sweep's trial computes
    without building the tables)."""
    if len(eq) == 0:
        raise NodeError("metrics: the equity input needs an 'equity' column and at least one bar")
    choice = resolve_ppy(index, ppy, calendar)
    start_equity, final = float(eq[0]), float(eq[-1])
    out: dict[str, Any] = {k: None for k in METRIC_KEYS}
    notes: list[str] = []
    out.update(_curve_metrics(eq, index, choice.ppy, risk_free, drawdown, notes))
    out.update(_trade_metrics(trades, notes))
    out.update(_activity_metrics(position, trades, orders, eq))
    out["ppy"] = _num(choice.ppy)
    out["ppy_source"] = choice.source
    out["bars"] = len(eq)
    out["final_equity"] = _num(final)
    out["total_return"] = _num(final / start_equity - 1.0) if start_equity != 0 else None
    if isinstance(index, pd.DatetimeIndex):
        out["start"], out["end"] = index[0].isoformat(), index[-1].isoformat()
    out["notes"] = notes
    out["warnings"] = list(choice.warnings)
    return out


def _min_skipna(values: np.ndarray) -> float | None:
    """The least non-NaN value (as pandas' ``min``), None when there is none."""
    least = values.min() if len(values) else math.nan
    if not math.isnan(least):  # no NaN at all (min propagates them): one pass
        return _num(least)
    finite = values[~np.isnan(values)]
    return _num(finite.min()) if len(finite) else None


def _curve_metrics(
    eq: np.ndarray,
    index: pd.Index,
    ppy: float | None,
    risk_free: float,
    drawdown: np.ndarray | None,
    notes: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if eq[0] <= 0:
            out["max_drawdown"] = None
        elif drawdown is not None:  # the backtest's column: equity / running peak - 1
            out["max_drawdown"] = _min_skipna(drawdown)
        else:
            out["max_drawdown"] = _num(np.min(eq / np.maximum.accumulate(eq) - 1.0))
        r = eq[1:] / eq[:-1] - 1.0
    cagr = None
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1 and eq[0] > 0:
        years = (index[-1] - index[0]).value / _YEAR_NS
        growth = eq[-1] / eq[0]
        if years < MIN_YEARS_COMPOUNDED:
            notes.append(
                f"cagr, calmar: null, the run spans {years:.3g} years; a return over less than "
                f"{MIN_YEARS_COMPOUNDED:g} year is not annualised (GIPS), see total_return"
            )
        elif growth < 0:
            notes.append("cagr, calmar: null, the equity ended below zero")
        else:
            cagr = _num(growth ** (1.0 / years) - 1.0)
    out["cagr"] = cagr
    mdd = out["max_drawdown"]
    out["calmar"] = _ratio(cagr, abs(mdd)) if mdd is not None else None
    if cagr is not None and out["calmar"] is None:
        notes.append("calmar: null, no drawdown")
    if ppy is None:
        notes.append("volatility, sharpe, sortino: null, no periods per year (give ppy)")
        return out
    if len(r) < MIN_RETURNS_ANNUALISED:
        notes.append(
            f"volatility, sharpe, sortino: null, {len(r)} return(s); annualised figures need "
            f"at least {MIN_RETURNS_ANNUALISED}"
        )
        return out
    if not np.isfinite(r).all():
        notes.append("volatility, sharpe, sortino: null, the equity touched zero")
        return out
    root = math.sqrt(ppy)
    # np.std(r, ddof=1) and np.mean(r - rf) as numpy computes them, sharing the mean when rf = 0
    n = len(r)
    mean = float(np.sum(r)) / n
    d = r - mean
    std = math.sqrt(float(np.sum(np.multiply(d, d, out=d))) / (n - 1))
    if risk_free != 0:
        excess = r - risk_free / ppy
        mean = float(np.mean(excess))
    else:
        excess = r  # r - 0.0, the same numbers
    out["volatility"] = _num(std * root)
    out["sharpe"] = _ratio(mean * root, std) if std > 0 else None
    if out["sharpe"] is None:
        notes.append("sharpe: null, the returns do not vary")
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    out["sortino"] = _ratio(mean * root, downside) if downside > 0 else None
    if out["sortino"] is None:
        notes.append("sortino: null, no return below the risk-free rate")
    return out


def _trade_metrics(trades: TradeArrays | None, notes: list[str]) -> dict[str, Any]:
    if trades is None or len(trades.pnl) == 0:
        notes.append("win_rate, profit_factor, avg_trade_return: null, no closed trades")
        return {"num_trades": 0}
    pnl, ret = trades.pnl, trades.ret
    if trades.is_open is not None:
        closed = ~trades.is_open
        pnl, ret = pnl[closed], ret[closed]
    out: dict[str, Any] = {"num_trades": len(pnl)}
    if len(pnl) == 0:
        notes.append("win_rate, profit_factor, avg_trade_return: null, no closed trades")
        return out
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    out["win_rate"] = _num((pnl > 0).mean())
    out["profit_factor"] = _ratio(gains, losses) if losses > 0 else None
    if losses == 0:
        notes.append("profit_factor: null, no losing trade")
    out["avg_trade_return"] = _num(ret.mean())
    return out


def _activity_metrics(
    position: np.ndarray | None,
    trades: TradeArrays | None,
    orders: OrderArrays | None,
    eq: np.ndarray,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if position is not None:
        out["exposure"] = _num((position != 0).mean())
    if orders is not None:
        notional = float(_nansum(orders.units * orders.price)) if len(orders.units) else 0.0
        out["total_fees"] = _num(_nansum(orders.fee)) if len(orders.fee) else 0.0
    elif trades is not None:
        notional, out["total_fees"] = _notional_from_trades(trades)
    else:
        return out
    out["turnover"] = _ratio(notional, float(np.mean(eq)))
    return out


def _nansum(values: np.ndarray) -> float:
    """The sum skipping NaN (as pandas' ``sum``)."""
    return float(np.nansum(values))


def _notional_from_trades(trades: TradeArrays) -> tuple[float, float]:
    if len(trades.pnl) == 0:
        return 0.0, 0.0
    if trades.units is None or trades.entry_price is None or trades.exit_price is None:
        raise NodeError(
            "metrics: turnover needs the trades' units, entry_price and exit_price columns "
            "(or the orders input)"
        )
    entry = trades.units * trades.entry_price
    exit_ = trades.units * trades.exit_price
    if trades.is_open is not None:
        exit_ = np.where(trades.is_open, 0.0, exit_)
    fees = _nansum(trades.fees) if trades.fees is not None else 0.0
    return float(entry.sum() + exit_.sum()), fees


PPY_DESCRIPTION = (
    "Periods per year for annualising (252 for daily equities); wins over calendar. "
    "When both are absent, inferred from the timestamps (see ppy_source in the metrics)."
)
CALENDAR_DESCRIPTION = (
    "Market calendar of the bars: equities (252 sessions a year), crypto or 24x7 (365 days), "
    "fx or 24x5 (260 days); periods per year follow from it and the bar spacing."
)


class AnnualisationParams(Params):
    """``ppy`` or ``calendar`` (not both); inferred from the timestamps when neither is given."""

    ppy: float | None = Field(None, gt=0, le=1e8, description=PPY_DESCRIPTION)
    calendar: CalendarName | None = Field(None, description=CALENDAR_DESCRIPTION)

    @model_validator(mode="after")
    def _ppy_or_calendar(self) -> AnnualisationParams:
        if self.ppy is not None and self.calendar is not None:
            raise ValueError("give ppy or calendar, not both (ppy is the number calendar implies)")
        return self


class MetricsParams(AnnualisationParams):
    """Annualisation and risk-free rate."""

    risk_free: float = Field(
        0.0, ge=-1, le=1, description="Annual risk-free rate for Sharpe and Sortino."
    )


def log_metric_notes(ctx_log: Callable[[str], None], metrics: Mapping[str, Any]) -> None:
    """Write how ppy was chosen, each warning and each note of ``metrics`` to a node's log."""
    ctx_log(f"ppy {metrics.get('ppy')}: {metrics.get('ppy_source')}")
    for w in metrics.get("warnings") or ():
        ctx_log(f"warning: {w}")
    for n in metrics.get("notes") or ():
        ctx_log(f"note: {n}")


@register
class MetricsNode(Node):
    """Performance metrics of an equity curve and its trades (the backtest reports the same).

    total_return, cagr, volatility, sharpe, sortino, max_drawdown (a negative fraction), calmar;
    over closed trades num_trades, win_rate, profit_factor, avg_trade_return; exposure (share of
    bars with a position), turnover (traded notional / mean equity), total_fees; plus ppy, start,
    end, bars, final_equity. Periods per year: ``ppy`` when given, else from ``calendar``
    (equities 252, crypto / 24x7 365, fx / 24x5 260 days a year, × bars a day for intraday
    bars), else inferred from the timestamps; ``ppy_source`` says which, ``warnings`` lists
    irregular bars (stray weekend bars, mixed spacing) and the run log repeats both. cagr and
    calmar are null for runs shorter than a year, volatility / sharpe / sortino with fewer than
    30 returns; ``notes`` gives the reason for every null. With the optional ``orders`` input,
    turnover is exact in every case.
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
    text_metric_keys = TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: MetricsParams) -> dict[str, Any]:
        """Compute the metrics."""
        metrics = compute_metrics(
            inputs["equity"],
            inputs.get("trades"),
            ppy=params.ppy,
            risk_free=params.risk_free,
            orders=inputs.get("orders"),
            calendar=params.calendar,
        )
        log_metric_notes(self.ctx.log, metrics)
        return {"metrics": metrics}
