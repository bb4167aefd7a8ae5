"""The built-in node types. Importing this package registers them (see docs/builtin-nodes.md)."""

from nodes.builtin import (
    backtest,
    catalogdata,
    indicators,
    loaders,
    metrics,
    ml,
    portfolio,
    signals,
    torchml,
)

__all__ = [
    "backtest",
    "catalogdata",
    "indicators",
    "loaders",
    "metrics",
    "ml",
    "portfolio",
    "signals",
    "torchml",
]
