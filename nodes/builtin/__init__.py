"""The built-in node types. Importing this package registers them (see docs/builtin-nodes.md)."""

from nodes.builtin import (
    backtest,
    bars,
    catalogdata,
    indicators,
    loaders,
    metrics,
    ml,
    portfolio,
    signals,
    strategy_backtest,
    tickbacktest,
    ticksources,
    tickstrategy,
    torchml,
    xsection,
)

__all__ = [
    "backtest",
    "bars",
    "catalogdata",
    "indicators",
    "loaders",
    "metrics",
    "ml",
    "portfolio",
    "signals",
    "strategy_backtest",
    "tickbacktest",
    "ticksources",
    "tickstrategy",
    "torchml",
    "xsection",
]
