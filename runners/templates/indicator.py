"""Template: an indicator. Exponential moving average of the input series."""


def run(inputs, params):
    # inputs["x"] is a pandas Series of floats indexed by UTC timestamps.
    x = inputs["x"]
    print(f"ema over {len(x)} rows, span={params['span']}")
    return {"ema": x.ewm(span=params["span"], adjust=False).mean()}
