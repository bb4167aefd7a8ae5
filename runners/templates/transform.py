"""Template: a frame transform. Bar features from OHLCV: simple return and relative range."""

import pandas as pd


def run(inputs, params):
    bars = inputs["bars"]  # a DataFrame with open, high, low, close, volume
    features = pd.DataFrame(
        {
            "ret": bars["close"].pct_change(),
            "range": (bars["high"] - bars["low"]) / bars["close"],
        },
        index=bars.index,
    )
    return {"features": features}
