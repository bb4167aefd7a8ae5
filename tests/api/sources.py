"""Pipeline sources the API tests save, validate and share."""

from __future__ import annotations

SMA = """\
# Moving-average crossover.
pipeline sma_crossover "SMA Crossover"

data   = dataset_ohlcv(name="btc")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000)
"""

SMA_FASTER = SMA.replace("window=10", "window=5").replace('"SMA Crossover"', '"Faster SMA"')

RSI = """\
pipeline rsi_reversion "RSI Mean Reversion"

data   = dataset_ohlcv(name="btc")
rsi14  = rsi(data.close, window=14)
raw    = threshold(rsi14, lower=30.0, upper=70.0, below=1.0, above=-1.0)
result = backtest(data, raw)
"""

BROKEN = """\
pipeline broken

data = dataset_ohlcv(name="btc")
fast = smaa(data.close, window=10)
"""
