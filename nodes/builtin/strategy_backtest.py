"""A strategy module backtested in a pipeline: ``strategy_backtest`` (docs/strategies.md).

The step names a strategy module; the compiler resolves it (``name@version`` from the strategy
store, or a ``.py`` file next to the pipeline on the command line) and writes the exact code
into the step's params (``code``, ``code_hash``, and ``strategy`` pinned to the version), so the
IR, the artifact key and a re-run all name the same code. The step's other keyword arguments
beyond the node's own params are the strategy's config, checked against its ``CONFIG_SCHEMA``
(defaults filled in) at compile time and again here; a sweep can vary them like any param::

    bt = strategy_backtest(data, strategy="sma_cross@2", fast=10, slow=30, fee_bps=5)

The module runs in the sandbox (``NodeContext.strategies``) through the live engine's own
per-bar step and paper venue, so a strategy's backtest and its paper run on the same bars place
the same orders at the same prices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from nodes.base import Node, Params, Port, PortType, register
from nodes.builtin.metrics import METRIC_KEYS, TEXT_METRIC_KEYS, log_metric_notes
from nodes.errors import NodeError
from nodes.lazy import lazy_module
from nodes.strategycode import ConfigError, StrategyCodeError, read_module, validate_config

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "EQUITY_COLUMNS",
    "NODE_PARAMS",
    "ORDER_COLUMNS",
    "TRADE_COLUMNS",
    "StrategyBacktest",
    "StrategyBacktestParams",
    "infer_interval",
]

EQUITY_COLUMNS = ("equity", "cash", "position", "drawdown", "returns")
ORDER_COLUMNS = ("ts", "side", "units", "price", "fee", "client_id", "placed")
TRADE_COLUMNS = (
    "entry_ts",
    "exit_ts",
    "side",
    "units",
    "entry_price",
    "exit_price",
    "fees",
    "pnl",
    "return",
    "is_open",
)
_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


class StrategyBacktestParams(Params):
    """The node's own params; every other key is the strategy's config (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy: str = Field(
        min_length=1,
        description='The strategy module: "name" (the latest version), "name@version", or on '
        'the command line a .py file next to the pipeline ("strategies/sma_cross.py").',
    )
    code: str | None = Field(
        None, description="The module's source (written by the compiler; not typed by hand)."
    )
    code_hash: str | None = Field(
        None, description="sha256 of ``code`` (written by the compiler with it)."
    )
    symbol: str | None = Field(
        None, description="The market the strategy sees in each tick (default: ASSET)."
    )
    interval: str | None = Field(
        None, description='The bars\' interval as ticks carry it ("1d", "1h"; default: inferred).'
    )
    cash: float = Field(100_000.0, gt=0, description="Starting cash.")
    fee_bps: float = Field(
        0.0, ge=0, le=1_000, description="Fee per fill, in basis points of the traded notional."
    )
    slippage_bps: float = Field(
        0.0, ge=0, le=1_000, description="Fill price moved against you, in basis points."
    )
    allow_short: bool = Field(False, description="Whether a sell may take the position below 0.")


#: the node's own params: a strategy's config keys must not reuse them
NODE_PARAMS = tuple(StrategyBacktestParams.model_fields)


def infer_interval(index: pd.DatetimeIndex) -> str:
    """The bars' most common spacing as an interval (``"1d"``, ``"4h"``, ``"15m"``)."""
    if len(index) < 2:
        return "1d"
    steps = pd.Series(index.asi8[1:] - index.asi8[:-1])
    seconds = int(steps.mode().iloc[0]) // 1_000_000_000
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return "1s"


@register
class StrategyBacktest(Node):
    """A strategy module's bars through its ``on_tick`` with the paper venue's fills.

    Rules (docs/live.md, the paper venue): a market order placed on bar t fills at the open of
    bar t+1, moved by ``slippage_bps`` against you, with ``fee_bps`` of the notional paid from
    cash; a limit order fills at the first later bar whose range reaches its price (at the open
    when it opens through it). The strategy runs in active mode from the first bar; ``on_tick``
    gets each bar and the account (cash, positions, prices, open orders). Equity is marked at
    every close. ``on_tick`` raising fails the node (the traceback is in its log).

    Outputs: ``equity`` (equity, cash, position, drawdown, returns per bar), ``orders`` (one row
    per fill: the fill bar ``ts``, side, units, price, fee, the order's client id and the bar it
    was ``placed`` on), ``trades`` (round trips, as the ``backtest`` node's), ``metrics`` (the
    ``metrics`` node's, plus ``rejected_orders``).
    """

    name = "strategy_backtest"
    category = "backtest"
    summary = "Backtest a strategy module (on_tick) on bars, with the live paper venue's fills"
    panel_hint = 'select one symbol first, e.g. dataset(..., symbols=["BTCUSDT"])'
    inputs = (Port("data", PortType.OHLCV, "the bars replayed through on_tick"),)
    outputs = (
        Port("equity", PortType.EQUITY, "equity curve marked at closes", columns=EQUITY_COLUMNS),
        Port("trades", PortType.TRADES, "round-trip trades", columns=TRADE_COLUMNS),
        Port("metrics", PortType.METRICS, "performance metrics"),
        Port("orders", PortType.ORDERS, "fills", columns=ORDER_COLUMNS),
    )
    params_model = StrategyBacktestParams
    metric_keys = (*METRIC_KEYS, "rejected_orders")
    text_metric_keys = TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: StrategyBacktestParams) -> dict[str, Any]:
        """Check the code and config, then backtest in the sandbox (see the class doc)."""
        if params.code is None:
            raise NodeError(
                f"strategy_backtest: the code of strategy {params.strategy!r} is not in the "
                "pipeline; it is written there when the pipeline is compiled where strategies "
                "resolve (alphaforge run / sweep, the web app)"
            )
        if params.code_hash is not None:
            actual = hashlib.sha256(params.code.encode()).hexdigest()
            if actual != params.code_hash:
                raise NodeError(
                    f"strategy_backtest: the code of {params.strategy!r} does not match its "
                    f"code_hash ({params.code_hash[:12]}...): compile the pipeline again"
                )
        try:
            module = read_module(params.code)
            if module.kind != "bar":
                raise StrategyCodeError(
                    "it is a tick strategy (TickStrategy.on_step): use tick_strategy_backtest"
                )
            config = validate_config(module.config_schema, dict(params.model_extra or {}))
        except StrategyCodeError as exc:
            raise NodeError(f"strategy_backtest: strategy {params.strategy!r}: {exc}") from None
        except ConfigError as exc:
            raise NodeError(
                f"strategy_backtest: config of {params.strategy!r}: {'; '.join(exc.problems)}"
            ) from None
        if self.ctx.strategies is None:
            raise NodeError(
                "strategy_backtest: this process runs no user code (no strategy sandbox); "
                "run the pipeline with alphaforge run or from the web app"
            )
        data = _check_data(inputs["data"])
        bars = data.rename_axis("ts").reset_index()
        columns = [c for c in ("open", "high", "low", "close", "volume") if c in data.columns]
        out = self.ctx.strategies.backtest(
            params.code,
            bars[["ts", *columns]],
            config=config,
            symbol=params.symbol or "ASSET",
            interval=params.interval or infer_interval(data.index),
            cash=params.cash,
            fee_bps=params.fee_bps,
            slippage_bps=params.slippage_bps,
            allow_short=params.allow_short,
            node=params.strategy,
            log=self.ctx.log,
        )
        log_metric_notes(self.ctx.log, out["metrics"])
        return out


def _check_data(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame) or not {"open", "high", "low", "close"} <= set(
        data.columns
    ):
        raise NodeError("strategy_backtest: data must be an ohlcv table (open, high, low, close)")
    if not isinstance(data.index, pd.DatetimeIndex) or len(data) == 0:
        raise NodeError("strategy_backtest: data must have bars indexed by timestamp")
    if not (data.index.is_monotonic_increasing and data.index.is_unique):
        raise NodeError("strategy_backtest: data timestamps must be increasing and unique")
    return data
