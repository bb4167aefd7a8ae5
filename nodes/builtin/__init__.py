"""The built-in node types. Importing this package registers them (see docs/builtin-nodes.md)."""

from nodes.builtin import backtest, indicators, loaders, metrics, ml, portfolio, signals, torchml

__all__ = ["backtest", "indicators", "loaders", "metrics", "ml", "portfolio", "signals", "torchml"]
