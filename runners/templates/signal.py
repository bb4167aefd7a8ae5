"""Template: a signal. +1 when x rose over `lookback` bars, -1 when it fell, else 0."""

import numpy as np


def run(inputs, params):
    x = inputs["x"]
    change = x - x.shift(params["lookback"])
    # A signal is a target position in [-1, 1], without NaN.
    return {"signal": np.sign(change).fillna(0.0)}
