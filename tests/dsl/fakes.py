"""A test registry of fake node types mirroring docs/builtin-nodes.md (ports, params, bounds).

The compiler only reads a node type's ports, params model and metric keys, so these fakes let
the DSL tests run independently of the real implementations (which are also tested against).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from nodes.base import Node, NodeRegistry, Params, Port, PortType

METRIC_KEYS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "num_trades",
    "win_rate",
)


class _Fake(Node):
    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        raise NotImplementedError


class CsvParams(Params):
    path: str
    symbol: str | None = None
    timezone: str = "UTC"
    start: date | datetime | None = None
    end: date | datetime | None = None


class CsvOhlcv(_Fake):
    name = "csv_ohlcv"
    outputs = (Port("bars", PortType.OHLCV),)
    params_model = CsvParams


class WindowParams(Params):
    window: int = Field(20, ge=1)


_SERIES_IN = (Port("series", PortType.SERIES),)
_VALUE_OUT = (Port("value", PortType.SERIES),)


class Sma(_Fake):
    name = "sma"
    inputs = _SERIES_IN
    outputs = _VALUE_OUT
    params_model = WindowParams


class Ema(Sma):
    name = "ema"


class RsiParams(Params):
    window: int = Field(14, ge=1)


class Rsi(_Fake):
    name = "rsi"
    inputs = _SERIES_IN
    outputs = _VALUE_OUT
    params_model = RsiParams


class MacdParams(Params):
    fast: int = Field(12, ge=1)
    slow: int = Field(26, ge=1)
    signal: int = Field(9, ge=1)

    @model_validator(mode="after")
    def _order(self) -> MacdParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be below slow")
        return self


class Macd(_Fake):
    name = "macd"
    inputs = _SERIES_IN
    outputs = tuple(Port(n, PortType.SERIES) for n in ("macd", "signal", "hist"))
    params_model = MacdParams


class BollingerParams(Params):
    window: int = Field(20, ge=1)
    k: float = Field(2.0, gt=0)


class Bollinger(_Fake):
    name = "bollinger"
    inputs = _SERIES_IN
    outputs = tuple(Port(n, PortType.SERIES) for n in ("middle", "upper", "lower", "percent_b"))
    params_model = BollingerParams


class Atr(_Fake):
    name = "atr"
    inputs = (Port("bars", PortType.OHLCV),)
    outputs = _VALUE_OUT
    params_model = RsiParams


class CrossoverParams(Params):
    mode: Literal["long_short", "long_only"] = "long_short"


_SIGNAL_OUT = (Port("signal", PortType.SIGNAL),)


class Crossover(_Fake):
    name = "crossover"
    inputs = (Port("fast", PortType.SERIES), Port("slow", PortType.SERIES))
    outputs = _SIGNAL_OUT
    params_model = CrossoverParams


class ThresholdParams(Params):
    lower: float | None = None
    upper: float | None = None
    below: float = Field(1.0, ge=-1, le=1)
    above: float = Field(-1.0, ge=-1, le=1)
    inside: Literal["hold", "flat"] = "hold"


class Threshold(_Fake):
    name = "threshold"
    inputs = _SERIES_IN
    outputs = _SIGNAL_OUT
    params_model = ThresholdParams


class CombineParams(Params):
    how: Literal["and", "or", "mean"] = "mean"


class Combine(_Fake):
    name = "combine"
    inputs = (Port("signals", PortType.SIGNAL, variadic=True),)
    outputs = _SIGNAL_OUT
    params_model = CombineParams


class SizerParams(Params):
    fraction: float = Field(1.0, gt=0, le=1)
    target_vol: float | None = None
    vol_window: int = Field(20, ge=2)
    max_position: float = Field(1.0, gt=0, le=1)


class PositionSizer(_Fake):
    name = "position_sizer"
    inputs = (Port("signal", PortType.SIGNAL), Port("prices", PortType.SERIES, optional=True))
    outputs = _SIGNAL_OUT
    params_model = SizerParams


class BacktestParams(Params):
    cash: float = Field(100_000.0, gt=0)
    fee_bps: float = Field(0.0, ge=0)
    slippage_bps: float = Field(0.0, ge=0)


class Backtest(_Fake):
    name = "backtest"
    inputs = (Port("data", PortType.OHLCV), Port("signal", PortType.SIGNAL))
    outputs = (
        Port("equity", PortType.EQUITY, columns=("equity", "cash", "position", "drawdown")),
        Port("trades", PortType.TRADES),
        Port("metrics", PortType.METRICS),
        Port("orders", PortType.ORDERS),
    )
    params_model = BacktestParams
    metric_keys = METRIC_KEYS


class Metrics(_Fake):
    name = "metrics"
    inputs = (
        Port("equity", PortType.EQUITY),
        Port("trades", PortType.TRADES),
        Port("orders", PortType.ORDERS, optional=True),
    )
    outputs = (Port("metrics", PortType.METRICS),)
    metric_keys = METRIC_KEYS


ALL = (
    CsvOhlcv,
    Sma,
    Ema,
    Rsi,
    Macd,
    Bollinger,
    Atr,
    Crossover,
    Threshold,
    Combine,
    PositionSizer,
    Backtest,
    Metrics,
)


def fake_registry() -> NodeRegistry:
    """A fresh registry holding the fakes."""
    reg = NodeRegistry()
    for node_type in ALL:
        reg.register(node_type)
    return reg
