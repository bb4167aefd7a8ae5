"""Small node types for the flow, runner and CLI tests (registered in the default registry).

They do what the built-in nodes cannot be asked to do on purpose: sleep, fail, crash, count
their own executions. Names start with ``t_`` so they never clash with the built-ins.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from dsl.ir import InputBinding, NodeIR, PipelineIR
from nodes.base import Node, NodeRegistry, Params, Port, PortType, register, registry
from nodes.errors import NodeError


class BarsParams(Params):
    path: str | None = None
    n: int = Field(default=60, ge=2)
    seed: int = 0


class TBars(Node):
    """Bars from a CSV (ts, close) or a seeded random walk."""

    name = "t_bars"
    outputs = (Port("bars", PortType.OHLCV),)
    params_model = BarsParams

    def fingerprint(self, params: Any) -> str | None:
        if params.path is None:
            return None
        return hashlib.sha256(self.ctx.resolve_path(params.path).read_bytes()).hexdigest()

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        _count(self.ctx.base_dir, "t_bars")
        if params.path is not None:
            path = self.ctx.resolve_path(params.path)
            if not path.exists():
                raise NodeError(f"data file {path} does not exist")
            raw = pd.read_csv(path)
            close = raw["close"].astype(float).to_numpy()
            idx = pd.DatetimeIndex(pd.to_datetime(raw["ts"], utc=True), name="ts")
        else:
            rng = np.random.default_rng(params.seed)
            close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, params.n)))
            idx = pd.date_range("2024-01-01", periods=params.n, freq="D", tz="UTC", name="ts")
        self.ctx.log(f"{len(close)} bars")
        frame = pd.DataFrame(
            {
                "open": close,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "volume": 1000.0,
            },
            index=idx,
        )
        return {"bars": frame}


class SleepParams(Params):
    seconds: float = 0.0
    scale: float = 1.0


class TSleep(Node):
    """Sleeps, then scales its input; records when it ran (for the concurrency test)."""

    name = "t_sleep"
    inputs = (Port("series", PortType.SERIES),)
    outputs = (Port("value", PortType.SERIES),)
    params_model = SleepParams

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        start = time.time()
        time.sleep(params.seconds)
        self.ctx.log(f"slept from {start:.3f} to {time.time():.3f}")
        return {"value": inputs["series"] * params.scale}


class FailParams(Params):
    message: str = "boom"
    crash: bool = False


class TFail(Node):
    """Fails with a NodeError (or, with crash=true, a bare ValueError)."""

    name = "t_fail"
    inputs = (Port("series", PortType.SERIES),)
    outputs = (Port("value", PortType.SERIES),)
    params_model = FailParams

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        if params.crash:
            raise ValueError(params.message)
        raise NodeError(params.message)


class TSignal(Node):
    """1 where fast > slow, -1 below, 0 otherwise."""

    name = "t_signal"
    inputs = (Port("fast", PortType.SERIES), Port("slow", PortType.SERIES))
    outputs = (Port("signal", PortType.SIGNAL),)

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        diff = (inputs["fast"] - inputs["slow"]).fillna(0.0)
        return {"signal": np.sign(diff).astype(float)}


class TBacktest(Node):
    """A toy backtest: equity, trades and metrics, enough to exercise the result files."""

    name = "t_backtest"
    inputs = (Port("data", PortType.OHLCV), Port("signal", PortType.SIGNAL))
    outputs = (
        Port("equity", PortType.EQUITY),
        Port("trades", PortType.TRADES),
        Port("metrics", PortType.METRICS),
    )
    metric_keys = ("total_return", "num_trades", "sharpe")

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        _count(self.ctx.base_dir, "t_backtest")
        close, sig = inputs["data"]["close"], inputs["signal"]
        rets = close.pct_change().fillna(0.0) * sig.shift(1).fillna(0.0)
        equity = 100_000 * (1 + rets).cumprod()
        eq = pd.DataFrame({"equity": equity, "drawdown": equity / equity.cummax() - 1})
        changes = sig.diff().fillna(sig).ne(0)
        trades = pd.DataFrame(
            {
                "entry_ts": sig.index[changes],
                "side": np.where(sig[changes] > 0, "long", "short"),
                "pnl": rets[changes].round(12),
            }
        )
        std = float(rets.std())
        metrics = {
            "total_return": float(equity.iloc[-1] / 100_000 - 1),
            "num_trades": int(changes.sum()),
            "sharpe": float(rets.mean() / std * np.sqrt(252)) if std > 0 else None,
        }
        return {"equity": eq, "trades": trades, "metrics": metrics}


class PeekParams(Params):
    peek: int = Field(default=0, ge=0)


class TPeek(Node):
    """A signal that cheats when asked: with ``peek`` = k it is long when the close k bars
    later is higher (perfect foresight), without it plain momentum. Records the last
    timestamp it was given (``.peek-max`` in the base dir): what a walk-forward window let it
    see."""

    name = "t_peek"
    inputs = (Port("series", PortType.SERIES),)
    outputs = (Port("signal", PortType.SIGNAL),)
    params_model = PeekParams

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        series = inputs["series"]
        with (Path(self.ctx.base_dir) / ".peek-max").open("a") as fh:
            fh.write(f"{params.peek} {series.index.max().isoformat()}\n")
        move = series.shift(-params.peek) - series if params.peek else series - series.shift(1)
        return {"signal": np.sign(move.fillna(0.0)).astype(float)}


def _count(base_dir: Path, name: str) -> None:
    """Append a line per execution: how tests see whether a node was recomputed."""
    with (Path(base_dir) / f".calls-{name}").open("a") as fh:
        fh.write("x\n")


def calls(base_dir: Path, name: str) -> int:
    """How many times node type ``name`` ran with this base dir."""
    p = Path(base_dir) / f".calls-{name}"
    return len(p.read_text().splitlines()) if p.exists() else 0


TEST_TYPES: tuple[type[Node], ...] = (TBars, TSleep, TFail, TSignal, TBacktest, TPeek)


def install(reg: NodeRegistry | None = None) -> NodeRegistry:
    """Register the test node types (idempotent) in ``reg`` or the default registry."""
    if reg is None:
        reg = registry()
        for t in TEST_TYPES:
            if t.name not in reg:
                register(t)
        return reg
    for t in TEST_TYPES:
        reg.register(t)
    return reg


def uninstall() -> None:
    """Take the test node types out of the default registry again (other tests see the
    catalog exactly as documented). The registry has no public removal: this is test-only."""
    reg = registry()
    for t in TEST_TYPES:
        reg._types.pop(t.name, None)


# ---- IR built by hand ---------------------------------------------------------------------


def node(
    node_id: str,
    type_: str,
    params: dict[str, Any] | None = None,
    **inputs: InputBinding | tuple[InputBinding, ...],
) -> NodeIR:
    """A NodeIR for a test node type, outputs taken from the type."""
    t = registry().get(type_)
    return NodeIR(
        id=node_id,
        type=type_,
        version=t.version,
        params=params or {},
        inputs=inputs,
        outputs={p.name: p.type.value for p in t.outputs},
    )


def ref(node_id: str, port: str, column: str | None = None) -> InputBinding:
    """An input binding."""
    return InputBinding(node=node_id, port=port, column=column)


def crossover_ir(
    *,
    path: str | None = None,
    fast_sleep: float = 0.0,
    slow_sleep: float = 0.0,
    fail: bool = False,
    name: str = "t_pipeline",
) -> PipelineIR:
    """bars -> (fast, slow) -> signal -> backtest; fast/slow are independent branches."""
    nodes = [
        node("data", "t_bars", {"path": path} if path else {"n": 80}),
        node(
            "fast",
            "t_sleep",
            {"seconds": fast_sleep, "scale": 1.0},
            series=ref("data", "bars", "close"),
        ),
        node(
            "slow",
            "t_sleep",
            {"seconds": slow_sleep, "scale": 0.999},
            series=ref("data", "bars", "close"),
        ),
    ]
    if fail:
        nodes.append(
            node(
                "broken", "t_fail", {"message": "the oracle is closed"}, series=ref("slow", "value")
            )
        )
        nodes.append(
            node("signal", "t_signal", fast=ref("fast", "value"), slow=ref("broken", "value"))
        )
    else:
        nodes.append(
            node("signal", "t_signal", fast=ref("fast", "value"), slow=ref("slow", "value"))
        )
    nodes.append(
        node("result", "t_backtest", data=ref("data", "bars"), signal=ref("signal", "signal"))
    )
    return PipelineIR(name=name, title="Test pipeline", nodes=tuple(nodes))
