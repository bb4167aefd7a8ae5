"""The ``strategy_backtest`` node's way to user code: :class:`SandboxStrategyBacktester`.

A node may not start sandboxes itself (nodes import no runner); the in-process runner hands it
this object as ``NodeContext.strategies``. Each call starts one strategy sandbox (the same host
the live engine uses, :func:`runners.strategyhost.strategy_host`: Docker unless the operator
enabled the process runner), replays the bars through :func:`~runners.papertrade.backtest.
backtest_strategy` (the engine's own per-bar step and paper venue) and stops it. Whatever goes
wrong in the user's code is a :class:`~nodes.errors.NodeError` that says where: the sandbox
refused or crashed, ``init`` raised, or ``on_tick`` raised at a bar (its traceback is in the
node's log). A strategy whose ``on_tick`` raised is not a backtest of that strategy, so the
node fails rather than reporting numbers from the bars where it did not.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from nodes.errors import NodeError
from runners.papertrade.backtest import backtest_strategy
from runners.strategyhost import (
    ProcessStrategyHost,
    StrategyCrashed,
    StrategyError,
    strategy_host,
)

__all__ = ["MAX_LOGGED_EVENTS", "SandboxStrategyBacktester"]

#: events (fills, rejections, the strategy's own log lines) copied to the node's log
MAX_LOGGED_EVENTS = 200


class SandboxStrategyBacktester:
    """``NodeContext.strategies`` of a run: strategy modules in the sandbox (``choice``:
    ``auto``, ``docker`` or ``process``, as :func:`~runners.strategyhost.strategy_host`)."""

    def __init__(self, choice: str = "auto", tick_timeout_s: float = 10.0) -> None:
        self.choice = choice
        self.tick_timeout_s = tick_timeout_s

    def tick_strategy(
        self,
        code: str,
        *,
        config: dict[str, Any],
        meta: dict[str, Any],
        node: str,
        log: Callable[[str], None],
        wall_s: float | None = None,
    ) -> AbstractContextManager[Any]:
        """A custom tick strategy's sandbox for ``tick_strategy_backtest``
        (runners/tickstrategy.py): the custom nodes' limits, ``wall_s`` (clamped to the
        operator's cap) the budget of strategy time."""
        from runners.caps import operator_caps
        from runners.custom import ResourceRequest
        from runners.tickstrategy import tick_strategy_session

        limits = ResourceRequest(wall_s=wall_s).clamp(operator_caps())
        for note in limits.notes:
            log(f"warning: {note}")
        return tick_strategy_session(
            code, config=config, meta=meta, node=node, log=log, choice=self.choice, limits=limits
        )

    def backtest(
        self,
        code: str,
        bars: Any,
        *,
        config: dict[str, Any],
        symbol: str,
        interval: str,
        cash: float,
        fee_bps: float,
        slippage_bps: float,
        allow_short: bool,
        node: str,
        log: Callable[[str], None],
    ) -> dict[str, Any]:
        """The backtest's tables and metrics (see the module doc); NodeError on any failure."""
        from runners.docker.runner import SandboxUnavailable

        where = f"strategy_backtest {node!r}"
        try:
            host = strategy_host(
                code,
                instance_id=f"bt-{secrets.token_hex(4)}",
                choice=self.choice,
                tick_timeout_s=self.tick_timeout_s,
            )
        except SandboxUnavailable as exc:
            raise NodeError(f"{where}: no sandbox to run the strategy in: {exc}") from None
        if isinstance(host, ProcessStrategyHost):
            log("warning: the strategy ran WITHOUT a sandbox (ALPHAFORGE_ALLOW_PROCESS_RUNNER=1)")
        else:
            log("the strategy runs in the Docker sandbox (one container for the backtest)")
        try:
            result = backtest_strategy(
                host, bars, config=config, symbol=symbol, interval=interval, cash=cash,
                fee_bps=fee_bps, slippage_bps=slippage_bps, allow_short=allow_short,
                identity={"id": node, "strategy": "backtest", "version": 0,
                          "account": "backtest", "market": symbol},
            )  # fmt: skip
        except StrategyError as exc:
            for line in [*exc.logs, *exc.traceback.splitlines()]:
                log(line)
            raise NodeError(f"{where}: the strategy's init raised: {exc}") from None
        except StrategyCrashed as exc:
            raise NodeError(f"{where}: the strategy's sandbox stopped: {exc.reason}") from None
        except SandboxUnavailable as exc:
            raise NodeError(f"{where}: no sandbox to run the strategy in: {exc}") from None
        for kind, message in result.events[:MAX_LOGGED_EVENTS]:
            log(f"{kind}: {message}")
        if len(result.events) > MAX_LOGGED_EVENTS:
            log(f"... {len(result.events) - MAX_LOGGED_EVENTS} more events not shown")
        errors = [message for kind, message in result.events if kind == "error"]
        trace = next((message for kind, message in result.events if kind == "traceback"), "")
        if errors and len(result.events) > MAX_LOGGED_EVENTS:
            for line in trace.splitlines():
                log(line)
        if errors:
            raise NodeError(
                f"{where}: on_tick raised at {len(errors)} bar(s), first at {errors[0]} "
                "(the traceback is in the node's log)"
            )
        metrics = dict(result.metrics)
        metrics["rejected_orders"] = len(result.rejections)
        return {
            "equity": result.equity,
            "orders": result.orders,
            "trades": result.trades,
            "metrics": metrics,
        }
