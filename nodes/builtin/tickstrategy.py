"""``tick_strategy_backtest``: a custom Python tick strategy (a ``TickStrategy`` module) in the
sandbox, driving hftbacktest on the host; the outputs of ``tick_backtest`` (docs/tick-backtest.md).

The step names a stored strategy module like ``strategy_backtest`` does (``"name@version"``, or
on the command line a ``.py`` file next to the pipeline); the compiler writes its code into the
step's params (``code``, ``code_hash``) and the step's other keyword arguments beyond the node's
own params are the module's config, checked against its ``CONFIG_SCHEMA``::

    bt = tick_strategy_backtest(book, strategy="strategies/tick_quoter.py", step_ms=100,
                                tick_size=0.1, lot_size=1, half_spread_ticks=2)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from nodes.base import Node, register
from nodes.builtin.metrics import METRIC_KEYS, TEXT_METRIC_KEYS, log_metric_notes
from nodes.builtin.tickbacktest import (
    FILL_METRIC_KEYS,
    TICK_INPUTS,
    TICK_OUTPUTS,
    read_latency_file,
    resolve_instrument,
)
from nodes.builtin.tickparams import TickVenueParams, _is_multiple
from nodes.errors import NodeError
from nodes.strategycode import ConfigError, StrategyCodeError, read_module, validate_config

__all__ = ["TickStrategyBacktest", "TickStrategyBacktestParams"]


class TickStrategyBacktestParams(TickVenueParams):
    """The venue (as ``tick_backtest``'s), the strategy module and its stepping; every other
    key is the strategy's config (``model_extra``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    strategy: str = Field(
        min_length=1,
        description='The tick strategy module: "name", "name@version", or on the command line '
        'a .py file next to the pipeline ("strategies/tick_quoter.py").',
    )
    code: str | None = Field(
        None, description="The module's source (written by the compiler; not typed by hand)."
    )
    code_hash: str | None = Field(None, description="sha256 of ``code`` (written with it).")
    step_ms: float = Field(
        100.0, gt=0, le=86_400_000, description="on_step is called this often (exchange time)."
    )
    depth_levels: int = Field(
        5, ge=1, le=100, description="Ticks a side of the book each state shows (bids / asks)."
    )
    wall_s: float | None = Field(
        None,
        gt=0,
        description="Budget of the strategy's time in the sandbox over the whole backtest "
        "(default: the custom nodes' wall-time limit; clamped to the operator's cap).",
    )

    @model_validator(mode="after")
    def _whole_step(self) -> TickStrategyBacktestParams:
        if not _is_multiple(self.step_ms * 1e6, 1.0):
            raise ValueError("step_ms must be a whole number of nanoseconds")
        return self


@register
class TickStrategyBacktest(Node):
    """Tick-level backtest of a custom Python strategy (a ``TickStrategy`` module), run in the
    Docker sandbox under the custom nodes' limits while hftbacktest simulates the venue here.

    Every ``step_ms`` of exchange time the strategy's ``on_step(state)`` gets a plain snapshot
    (time, best bid / ask, ``depth_levels`` ticks of depth a side, position, balance, fees, its
    working orders with status and queue information, the fills since the last step) and
    returns intents: ``submit(side, price, qty, tif)`` and ``cancel(order_id)``. They are
    checked (side, price on the tick grid, qty a positive lot multiple, known order ids) and
    reach the exchange after the order latency. Outputs as ``tick_backtest``'s. A strategy
    that raises, sends a bad intent, overruns its time budget or its memory fails the node
    with the step and simulated time. Details: docs/tick-backtest.md.
    """

    name = "tick_strategy_backtest"
    category = "backtest"
    summary = "Tick-level backtest (hftbacktest) of a custom Python strategy in the sandbox"
    inputs = TICK_INPUTS
    outputs = TICK_OUTPUTS
    params_model = TickStrategyBacktestParams
    metric_keys = (*METRIC_KEYS, *FILL_METRIC_KEYS, "steps", "steps_per_s")
    text_metric_keys = TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: TickStrategyBacktestParams) -> dict[str, Any]:
        """Check the module and config, then simulate with the strategy in the sandbox."""
        from nodes.builtin._tickoutputs import shape
        from nodes.builtin._tickstep import simulate_custom

        config = self._config(params)
        if self.ctx.strategies is None:
            raise NodeError(
                "tick_strategy_backtest: this process runs no user code (no strategy sandbox); "
                "run the pipeline with alphaforge run or from the web app"
            )
        latency = inputs.get("order_latency")
        if params.order_latency_file is not None:
            if latency is not None:
                raise NodeError(
                    "tick_strategy_backtest: give the order_latency input or "
                    "order_latency_file, not both"
                )
            path = self.ctx.resolve_path(params.order_latency_file)
            latency = read_latency_file(path, params.order_latency_file)
        params = resolve_instrument(params, inputs["ticks"])
        meta = {"tick_size": params.tick_size, "lot_size": params.lot_size,
                "step_ms": params.step_ms, "depth_levels": params.depth_levels}  # fmt: skip
        assert params.code is not None
        with self.ctx.strategies.tick_strategy(
            params.code, config=config, meta=meta, node=params.strategy, log=self.ctx.log,
            wall_s=params.wall_s,
        ) as session:  # fmt: skip
            run = simulate_custom(
                inputs["ticks"], params, params.step_ms, params.depth_levels, session.step,
                latency, name=params.strategy,
            )  # fmt: skip
        wanted = self.ctx.outputs
        tables = wanted is None or not wanted.isdisjoint({"trades", "orders", "order_log"})
        out = shape(run, params, tables=tables)
        metrics = out["metrics"]
        metrics["steps"] = run.turns
        # after the first step (it compiles the loop): simulation, IPC and the strategy
        metrics["steps_per_s"] = (run.turns - 1) / run.turns_s if run.turns_s > 0 else None
        self.ctx.log(
            f"{run.turns:,} strategy steps ({metrics['steps_per_s'] or 0:,.0f} steps/s after "
            f"the first), {metrics['orders_submitted']:,} orders, {metrics['fills']:,} fills"
        )
        log_metric_notes(self.ctx.log, metrics)
        return out

    def _config(self, params: TickStrategyBacktestParams) -> dict[str, Any]:
        where = f"tick_strategy_backtest: strategy {params.strategy!r}"
        if params.code is None:
            raise NodeError(
                f"{where}: its code is not in the pipeline; it is written there when the "
                "pipeline is compiled where strategies resolve (alphaforge run, the web app)"
            )
        digest = hashlib.sha256(params.code.encode()).hexdigest()
        if params.code_hash is not None and digest != params.code_hash:
            raise NodeError(f"{where}: the code does not match its code_hash: compile again")
        try:
            module = read_module(params.code)
            if module.kind != "tick":
                raise NodeError(
                    f"{where} is a bar strategy (Strategy.on_tick): use strategy_backtest, or "
                    "write a TickStrategy (from alphaforge_tick import TickStrategy) with on_step"
                )
            return validate_config(module.config_schema, dict(params.model_extra or {}))
        except StrategyCodeError as exc:
            raise NodeError(f"{where}: {exc}") from None
        except ConfigError as exc:
            raise NodeError(f"{where}: config: {'; '.join(exc.problems)}") from None
