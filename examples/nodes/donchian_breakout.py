"""Donchian channel breakout: long when the close breaks above the highest high of the previous
`window` bars, short when it breaks below the lowest low, otherwise keep the last position.

Only bars before t set the channel at t (`shift(1)`), so the node passes the look-ahead check.
"""

import numpy as np
import pandas as pd


def run(inputs, params):
    bars = inputs["bars"]
    window = params["window"]
    upper = bars["high"].rolling(window).max().shift(1)
    lower = bars["low"].rolling(window).min().shift(1)
    breakout = pd.Series(np.nan, index=bars.index)
    breakout[bars["close"] > upper] = 1.0
    breakout[bars["close"] < lower] = -1.0 if params["allow_short"] else 0.0
    signal = breakout.ffill().fillna(0.0)
    print(f"donchian({window}): {int((signal.diff() != 0).sum())} position changes")
    return {"signal": signal}
