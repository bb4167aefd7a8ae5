"""The portfolio backtest node: target weights over many symbols, one shared cash account
(rules: docs/backtest.md#portfolio-backtest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from nodes.base import Node, Port, PortType, register
from nodes.builtin import _pkernel as K
from nodes.builtin._portfolio_inputs import Panel, panel_inputs
from nodes.builtin._portfolio_outputs import (
    CONTRIBUTION_COLUMNS,
    EQUITY_COLUMNS,
    ORDER_COLUMNS,
    TRADE_COLUMNS,
    contribution_frame,
    orders_frame,
    trades_frame,
)
from nodes.builtin.backtest import BacktestParams
from nodes.builtin.metrics import (
    METRIC_KEYS,
    TEXT_METRIC_KEYS,
    AnnualisationParams,
    OrderArrays,
    TradeArrays,
    log_metric_notes,
    metrics_of,
)
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "CONTRIBUTION_COLUMNS",
    "EQUITY_COLUMNS",
    "ORDER_COLUMNS",
    "PORTFOLIO_METRIC_KEYS",
    "TRADE_COLUMNS",
    "PortfolioBacktest",
    "PortfolioParams",
    "run_portfolio",
]

_EXTRA_KEYS = (
    "total_borrow_cost",
    "max_leverage",
    "symbols",
    "top_contributor",
    "top_contribution",
    "bottom_contributor",
    "bottom_contribution",
)
PORTFOLIO_METRIC_KEYS: tuple[str, ...] = METRIC_KEYS + _EXTRA_KEYS
PORTFOLIO_TEXT_METRIC_KEYS: tuple[str, ...] = (
    *TEXT_METRIC_KEYS,
    "top_contributor",
    "bottom_contributor",
)
_YEAR_NS = 365.25 * 86_400e9


def _shared(name: str) -> Any:
    """The single-asset backtest's field ``name``: the same default, bounds and description."""
    return BacktestParams.model_fields[name]


class PortfolioParams(AnnualisationParams):
    """Capital, costs, rebalancing, shorts and exposure limits of the portfolio backtest."""

    cash: float = _shared("cash")
    fee_bps: float = _shared("fee_bps")
    slippage_bps: float = _shared("slippage_bps")
    lot_size: float | None = _shared("lot_size")
    risk_free: float = _shared("risk_free")
    rebalance: Literal["bar", "every", "threshold"] = Field(
        "bar",
        description="When to trade: 'bar' whenever the target weights change, 'every' on every "
        "rebalance_every-th bar, 'threshold' a symbol whose weight drifted more than threshold.",
    )
    rebalance_every: int | None = Field(
        None, ge=1, description="With rebalance='every': trade on bars 0, N, 2N, … (decisions)."
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=10,
        description="With rebalance='threshold': trade a symbol when |weight at the open − "
        "target| exceeds this.",
    )
    borrow_bps: float = Field(
        0.0,
        ge=0,
        le=100_000,
        description="Annual borrow cost of shorts, in basis points of the short notional, "
        "charged at every close for the time since the previous bar (365.25-day year).",
    )
    max_gross: float | None = Field(
        None, gt=0, le=100, description="Cap on Σ|w|: larger targets are scaled down."
    )
    max_net: float | None = Field(
        None, ge=0, le=100, description="Cap on |Σw|: larger targets are scaled down."
    )
    leverage: bool = Field(
        False,
        description="Allow negative cash (borrowing) up to max_gross; without it, a bar's buys "
        "are scaled down to the cash left after its sells.",
    )

    @model_validator(mode="after")
    def _rebalance_params(self) -> PortfolioParams:
        if self.rebalance == "every" and self.rebalance_every is None:
            raise ValueError("rebalance='every' needs rebalance_every (a number of bars)")
        if self.rebalance == "threshold" and self.threshold is None:
            raise ValueError("rebalance='threshold' needs threshold (a weight difference)")
        if self.rebalance != "every" and self.rebalance_every is not None:
            raise ValueError("rebalance_every is only read with rebalance='every'")
        if self.rebalance != "threshold" and self.threshold is not None:
            raise ValueError("threshold is only read with rebalance='threshold'")
        return self


def _limit(target: np.ndarray, cap: float | None, values: np.ndarray) -> int:
    """Scale the rows of ``target`` whose ``values`` exceed ``cap`` down to it; how many."""
    if cap is None:
        return 0
    over = values > cap * (1.0 + 1e-12)
    if over.any():
        target[over] *= (cap / values[over])[:, None]
    return int(over.sum())


def _apply_limits(panel: Panel, params: PortfolioParams, warnings: list[str]) -> np.ndarray:
    target = panel.target
    n = len(target)
    scaled = _limit(target, params.max_gross, np.abs(target).sum(axis=1))
    if scaled:
        warnings.append(
            f"max_gross={params.max_gross:g}: the target weights of {scaled} of {n} bars had a "
            "larger gross exposure Σ|w| and were scaled down to it"
        )
    scaled = _limit(target, params.max_net, np.abs(target.sum(axis=1)))
    if scaled:
        warnings.append(
            f"max_net={params.max_net:g}: the target weights of {scaled} of {n} bars had a "
            "larger net exposure |Σw| and were scaled down to it"
        )
    longs = np.where(target > 0, target, 0.0).sum(axis=1)
    if not params.leverage and (longs > 1.0 + 1e-9).any():
        at = int(np.argmax(longs > 1.0 + 1e-9))
        warnings.append(
            f"long target weights sum above 1 ({longs[at]:.4g} at "
            f"{panel.index[at].isoformat()}, {int((longs > 1 + 1e-9).sum())} bar(s)): that is "
            "leverage; without leverage=true the buys are limited to the cash"
        )
    return target


def _trigger(target: np.ndarray, params: PortfolioParams) -> np.ndarray:
    n = len(target)
    if params.rebalance == "every":
        return np.arange(n) % int(params.rebalance_every or 1) == 0
    if params.rebalance == "threshold":
        return np.ones(n, np.bool_)
    changed = np.empty(n, np.bool_)
    changed[0] = bool((target[0] != 0.0).any())
    changed[1:] = (target[1:] != target[:-1]).any(axis=1)
    return changed


def _borrow_rates(index: pd.DatetimeIndex, bps: float) -> np.ndarray:
    rates = np.zeros(len(index))
    if bps > 0 and len(index) > 1:
        rates[1:] = bps / 1e4 * np.diff(index.as_unit("ns").asi8) / _YEAR_NS
    return rates


def _kernel_warnings(
    panel: Panel, params: PortfolioParams, counts: np.ndarray, extra: np.ndarray
) -> list[str]:
    out: list[str] = []
    n_scaled, first_scaled, n_lot, first_lot = (int(x) for x in counts)
    if n_scaled:
        kept = (
            "at least one had no cash left to buy with"
            if extra[0] < 0.0005
            else f"each kept at least {extra[0]:.1%} of its buys"
        )
        out.append(
            f"leverage=false: the buys of {n_scaled} rebalance(s) were scaled down to the cash "
            f"left after the sells (first at {panel.index[first_scaled].isoformat()}; {kept}); "
            "set leverage=true to borrow"
        )
    if n_lot:
        out.append(
            f"lot_size={params.lot_size:g}: {n_lot} rebalance order(s) gave no order because the "
            f"change was smaller than one lot (first at {panel.index[first_lot].isoformat()}, "
            f"where one lot cost {extra[1]:,.2f} and the equity was {extra[2]:,.2f})"
        )
    return out


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def run_portfolio(
    bars: Any, weights: Any, params: PortfolioParams, *, tables: bool = True
) -> dict[str, Any]:
    """Equity, holdings, trades, orders, contribution and metrics of trading ``weights`` on
    ``bars``; without ``tables``, no trades and orders tables (the metrics are the same)."""
    panel = panel_inputs(bars, weights)
    warnings: list[str] = []
    target = _apply_limits(panel, params, warnings)
    threshold = params.threshold if params.rebalance == "threshold" else -1.0
    n, m = target.shape
    kernel = K.simulate_for(n * m)
    res = kernel(
        panel.open,
        panel.close,
        target,
        _trigger(target, params),
        float(threshold if threshold is not None else -1.0),
        params.cash,
        params.fee_bps / 1e4,
        params.slippage_bps / 1e4,
        params.lot_size if params.lot_size is not None else 0.0,
        _borrow_rates(panel.index, params.borrow_bps),
        params.leverage,
    )
    curve, units, realized, pnl, orders, trades, borrowed, counts, extra = res
    index, columns = panel.index, pd.Index(panel.symbols, dtype="str")
    equity = pd.DataFrame(curve.T, index=index, columns=list(EQUITY_COLUMNS), copy=False)
    t_units, t_px = trades[:, K.T_UNITS], trades[:, K.T_ENTRY_PX]
    metrics = metrics_of(
        curve[0],
        index,
        drawdown=curve[5],
        position=curve[2],
        trades=TradeArrays(
            pnl=trades[:, K.T_PNL],
            ret=trades[:, K.T_PNL] / (t_units * t_px),
            is_open=trades[:, K.T_OPEN] > 0,
            units=t_units,
            entry_price=t_px,
            exit_price=trades[:, K.T_EXIT_PX],
            fees=trades[:, K.T_FEES],
        ),
        orders=OrderArrays(
            units=np.abs(orders[:, K.O_UNITS]), price=orders[:, K.O_PRICE], fee=orders[:, K.O_FEE]
        ),
        ppy=params.ppy,
        risk_free=params.risk_free,
        calendar=params.calendar,
    )
    contribution = contribution_frame(panel, params.cash, pnl, orders, trades, borrowed)
    share = contribution["contribution"].to_numpy()
    top, bottom = int(np.argmax(share)), int(np.argmin(share))
    lev = curve[4][np.isfinite(curve[4])]
    metrics.update(
        total_borrow_cost=float(borrowed.sum()),
        max_leverage=_num(lev.max()) if len(lev) else None,
        symbols=m,
        top_contributor=panel.symbols[top],
        top_contribution=_num(share[top]),
        bottom_contributor=panel.symbols[bottom],
        bottom_contribution=_num(share[bottom]),
    )
    metrics["warnings"] = [
        *warnings,
        *_kernel_warnings(panel, params, counts, extra),
        *metrics["warnings"],
    ]
    out: dict[str, Any] = {
        "equity": equity,
        "weights": pd.DataFrame(realized, index=index, columns=columns, copy=False),
        "positions": pd.DataFrame(units, index=index, columns=columns, copy=False),
        "pnl": pd.DataFrame(pnl, index=index, columns=columns, copy=False),
        "contribution": contribution,
        "metrics": metrics,
    }
    if tables:
        out["trades"] = trades_frame(panel, trades)
        out["orders"] = orders_frame(panel, orders)
    return out


@register
class PortfolioBacktest(Node):
    """Backtest of target weights over several symbols with one shared cash account.

    Rules (docs/backtest.md#portfolio-backtest has them with worked numbers):

    - ``weights`` is a wide frame (ts × symbol) of target weights: the fraction of the total
      equity to hold in each symbol, negative = short. Its symbols must be among the bars'
      (the others are not traded) and its timestamps the bars'. A NaN weight is 0, except on a
      bar the symbol lacks, where its previous target holds. A series is one symbol's weights.
    - No look-ahead: the weights of bar t are traded at the **open of bar t+1**; the last bar's
      weights are never traded. A symbol without a bar at t+1 keeps its position (marked at its
      last close) and trades at its next bar, towards the latest weights.
    - When: ``rebalance="bar"`` trades every symbol to its target whenever the weights change
      (the first bar counts as a change from 0); ``"every"`` on the fills after bars 0, N, 2N,
      … (``rebalance_every=N``), towards the latest weights, changed or not; ``"threshold"`` at
      every bar, each symbol whose weight at the open (units × open / equity) is more than
      ``threshold`` away from its target.
    - Size: units = w × equity at the open / fill price, the equity at the open being cash +
      Σ units × open (the last close for a symbol without a bar); rounded toward zero to a
      multiple of ``lot_size`` when given. Fill = open × (1 ± slippage_bps/1e4), against the
      order; fee = fee_bps/1e4 × |units × fill| from cash. Sells go before buys in a bar, so
      their cash funds the buys.
    - Cash: without ``leverage`` cash never goes below zero through an order: when a bar's buys
      (fees included) cost more than the cash after its sells, all of them are scaled by the
      same factor to spend it exactly (a warning says how often). Short sales add their
      proceeds to cash. With ``leverage``, cash may go negative (borrowing, no interest);
      weights are bounded by ``max_gross`` / ``max_net`` only.
    - Limits: a bar whose targets exceed ``max_gross`` (Σ|w|) or ``max_net`` (|Σw|) has all of
      them scaled down proportionally (gross first), with a warning counting the bars.
    - Shorts pay ``borrow_bps`` a year on their notional marked at each close, for the time
      since the previous bar (365.25-day year), from cash (this can take cash below zero).
    - Equity is marked at every close: cash + Σ units × close (last close if no bar).

    Outputs: ``equity`` (equity, cash, gross_exposure Σ|value|, net_exposure Σvalue, leverage
    gross / equity, drawdown), ``weights`` (realized weights at each close, ts × symbol),
    ``positions`` (units), ``pnl`` (cumulative PnL per symbol, fees and borrow included: their
    sum is equity − cash), ``trades`` (round trips per symbol, the ``backtest`` node's columns
    plus symbol and borrow_cost), ``orders`` (every fill), ``contribution`` (per symbol: pnl,
    contribution = pnl / starting cash, fees, borrow_cost, trades) and ``metrics`` (the
    ``backtest`` node's, turnover and total_fees over all symbols, plus total_borrow_cost,
    max_leverage, symbols and the top and bottom contributors).
    """

    name = "portfolio_backtest"
    category = "backtest"
    summary = "Backtest of target weights over many symbols, one cash account"
    panel: ClassVar[str] = "native"
    inputs = (
        Port("bars", PortType.OHLCV, "the bars of the symbols (a long panel, or one symbol)"),
        Port("weights", PortType.SIGNAL, "target weights, ts × symbol (fractions of equity)"),
    )
    outputs = (
        Port(
            "equity", PortType.EQUITY, "portfolio equity marked at closes", columns=EQUITY_COLUMNS
        ),
        Port("weights", PortType.FRAME, "realized weights at each close, ts × symbol"),
        Port("positions", PortType.FRAME, "units held after each bar, ts × symbol"),
        Port("pnl", PortType.FRAME, "cumulative PnL per symbol, ts × symbol"),
        Port("trades", PortType.TRADES, "round trips per symbol", columns=TRADE_COLUMNS),
        Port("orders", PortType.ORDERS, "fills", columns=ORDER_COLUMNS),
        Port("contribution", PortType.FRAME, "PnL by symbol", columns=CONTRIBUTION_COLUMNS),
        Port("metrics", PortType.METRICS, "performance metrics"),
    )
    params_model = PortfolioParams
    metric_keys = PORTFOLIO_METRIC_KEYS
    text_metric_keys = PORTFOLIO_TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: PortfolioParams) -> dict[str, Any]:
        """Simulate and report (warnings and notes go to the node's log)."""
        wanted = self.ctx.outputs
        tables = wanted is None or not wanted.isdisjoint({"trades", "orders"})
        out = run_portfolio(inputs["bars"], inputs["weights"], params, tables=tables)
        log_metric_notes(self.ctx.log, out["metrics"])
        return out
