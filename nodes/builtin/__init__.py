"""The built-in node types. Importing this package registers them (see docs/builtin-nodes.md)."""

from nodes.builtin import (
    backtest,
    bars,
    indicators,
    loaders,
    metrics,
    ml,
    signals,
    torchml,
    xsection,
)

__all__ = [
    "backtest",
    "bars",
    "indicators",
    "loaders",
    "metrics",
    "ml",
    "signals",
    "torchml",
    "xsection",
]
