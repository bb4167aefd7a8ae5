"""``tick_strategy_backtest``: a custom Python tick strategy in the real Docker sandbox while
hftbacktest runs here. The built-in grid's logic written as a TickStrategy gives the built-in
grid_mm's fills (hence its latency and queue rules); the same data gives the same fills; bad
intents, exceptions, a busy loop, a memory hog and network access fail as they should, and no
container is left behind. numba compiles the loops once per process (a module fixture)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import docker
import numpy as np
import pandas as pd
import pytest

from nodes.base import NodeContext
from nodes.builtin.tickbacktest import run_tick_backtest
from nodes.builtin.tickparams import TickBacktestParams
from nodes.builtin.tickstrategy import TickStrategyBacktest, TickStrategyBacktestParams
from nodes.errors import NodeError
from runners.docker.engine import owner_label
from runners.papertrade.service import SandboxStrategyBacktester
from tests.nodes.tickbook import ASK, BID, MS, SELL_TRADE, events, random_book

# one xdist worker runs the whole module, so its module-scoped warm-up (a numba compile)
# is made once (spread test by test, each worker made its own)
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("tick_strategy")]

HEAD = "import math\nfrom alphaforge_tick import TickStrategy, submit, cancel\n"

ROOT = Path(__file__).resolve().parents[2]
#: the built-in grid_mm's logic as a TickStrategy (the example's module)
GRID = (ROOT / "examples" / "strategies" / "tick_grid.py").read_text()


def one_step(body: str, start: str = "pass") -> str:
    """A strategy whose on_step is ``body`` (indented code using ``state``)."""
    return HEAD + (
        "class One(TickStrategy):\n"
        "    def on_start(self, ctx):\n" + textwrap.indent(textwrap.dedent(start), " " * 8) + "\n"
        "    def on_step(self, state):\n" + textwrap.indent(textwrap.dedent(body), " " * 8) + "\n"
    )


def _venue() -> dict[str, Any]:
    return {"tick_size": 0.1, "lot_size": 1.0, "record_interval_ms": 10.0,
            "entry_latency_ns": 3 * MS, "response_latency_ns": 2 * MS}  # fmt: skip


def _ours() -> list[dict[str, Any]]:
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": f"alphaforge.owner={owner_label()}"})
    return [c.labels for c in found if c.labels.get("alphaforge.strategy", "").startswith("tick-")]


@pytest.fixture(scope="module")
def book() -> np.ndarray:
    return random_book(6.0)


@pytest.fixture(scope="module")
def warm(book: np.ndarray, docker_engine: Any) -> None:
    """The sandbox images built (``docker_engine``); numba compiles the built-in loop once for
    the module (the custom loop compiles at the first test's first step)."""
    run_tick_backtest(book[:200], TickBacktestParams.model_validate(_venue()))


def run(code: str, ticks: np.ndarray, logs: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    params = TickStrategyBacktestParams.model_validate(
        {**_venue(), "strategy": "test_strategy", "code": code, "step_ms": 10.0} | kw
    )
    sink = logs if logs is not None else []
    ctx = NodeContext(log=sink.append, strategies=SandboxStrategyBacktester("docker"))
    try:
        return TickStrategyBacktest(ctx).run({"ticks": ticks}, params)
    finally:
        assert _ours() == [], "a tick strategy container was left behind"


@pytest.mark.usefixtures("warm")
def test_a_custom_grid_gives_the_built_in_grids_fills(book: np.ndarray) -> None:
    grid = {"grid_levels": 2, "half_spread_ticks": 1.0, "update_interval_ms": 10.0}
    built_in = run_tick_backtest(book, TickBacktestParams.model_validate(_venue() | grid))
    logs: list[str] = []
    ours = run(GRID, book, logs, levels=2)
    assert len(built_in["orders"]) > 30
    pd.testing.assert_frame_equal(ours["orders"], built_in["orders"])
    pd.testing.assert_frame_equal(ours["order_log"], built_in["order_log"])
    pd.testing.assert_frame_equal(ours["equity"], built_in["equity"])
    assert ours["metrics"]["fills"] == built_in["metrics"]["fills"]
    assert 595 <= ours["metrics"]["steps"] <= 600  # 6 s of book at 10 ms
    assert ours["metrics"]["steps_per_s"] > 0
    assert any("grid: 2 level(s) a side on tick 0.1" in line for line in logs)  # on_start
    # the venue's rules hold: no fill before the order reached the exchange
    fills = ours["orders"]
    assert (fills["ts"] >= fills["submit_ts"] + pd.Timedelta(3 * MS, "ns")).all()


@pytest.mark.usefixtures("warm")
def test_a_hand_worked_book_fills_after_latency_and_queue() -> None:
    # bid 99.0 (qty 5) / ask 101.0: the strategy joins the bid at the first step (+10 ms);
    # sells of 3 at +30 ms and 4 at +40 ms: the first leaves 2 ahead, the second fills us
    data = events([(BID, 0, 99.0, 5.0), (ASK, 0, 101.0, 5.0), (SELL_TRADE, 30 * MS, 99.0, 3.0),
                   (SELL_TRADE, 40 * MS, 99.0, 4.0), (ASK, 100 * MS, 101.0, 5.0)])  # fmt: skip
    code = one_step(
        """
        seen = getattr(self, "seen", [])
        self.seen = seen + state["fills"]
        if state["step"] == 0:
            return [submit("buy", state["best_bid"], 1, "GTX")]
        return []
        """
    )
    out = run(code, data, tick_size=1.0)
    fills = out["orders"]
    assert len(fills) == 1
    t0 = pd.Timestamp(data["exch_ts"][0], tz="UTC")
    assert fills["ts"].iloc[0] == t0 + pd.Timedelta(40, "ms")
    assert fills["price"].iloc[0] == 99.0 and fills["liquidity"].iloc[0] == "maker"
    assert out["order_log"]["queue_ahead"].iloc[0] == 5.0
    assert out["metrics"]["final_position"] == 1.0


@pytest.mark.usefixtures("warm")
def test_the_same_book_and_strategy_give_the_same_fills(book: np.ndarray) -> None:
    a, b = run(GRID, book[:4000]), run(GRID, book[:4000])
    pd.testing.assert_frame_equal(a["orders"], b["orders"])
    pd.testing.assert_frame_equal(a["equity"], b["equity"])


@pytest.mark.usefixtures("warm")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('return [submit("buy", state["best_bid"] + 0.05, 1)]', "off the tick grid"),
        ("return [{'op': 'submit', 'side': 'buy', 'price': 100.0, 'qty': -1, 'tif': 'GTX'}]",
         "must be a positive multiple of lot_size"),
        ("return [cancel(999)]", "cancel of unknown order id 999"),
        ("return 'nothing'", "on_step must return a list"),
    ],
)  # fmt: skip
def test_bad_intents_fail_with_the_step_and_time(book: np.ndarray, body: str, message: str) -> None:
    with pytest.raises(NodeError, match=message) as err:
        run(one_step(body), book[:2000])
    assert "'test_strategy'" in str(err.value) and "step 0 (2023-11-14 22:13:20" in str(err.value)


@pytest.mark.usefixtures("warm")
def test_an_exception_in_on_step_names_the_step_and_line(book: np.ndarray) -> None:
    logs: list[str] = []
    code = one_step('if state["step"] == 3:\n    raise ValueError("boom")\nreturn []')
    with pytest.raises(NodeError, match=r"on_step raised at step 3 .*ValueError: boom \(line 8"):
        run(code, book[:2000], logs)
    assert any("Traceback" in line for line in logs)


@pytest.mark.usefixtures("warm")
def test_a_busy_loop_hits_the_wall_time_limit(book: np.ndarray) -> None:
    code = one_step('if state["step"] == 2:\n    while True:\n        pass\nreturn []')
    with pytest.raises(NodeError, match=r"stopped at step 2 .*wall-time limit is 3 s.*took longer"):
        run(code, book[:2000], wall_s=3.0)


@pytest.mark.usefixtures("warm")
def test_a_memory_hog_is_killed(book: np.ndarray) -> None:
    code = one_step("self.hog = bytearray(3 << 30)\nreturn []")
    with pytest.raises(NodeError, match=r"stopped at step 0 .*out of memory"):
        run(code, book[:2000])


@pytest.mark.usefixtures("warm")
def test_the_strategy_has_no_network(book: np.ndarray) -> None:
    logs: list[str] = []
    start = """
        import socket
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=3)
            ctx.log("network: reached")
        except OSError as exc:
            ctx.log(f"network: refused ({exc})")
    """
    run(one_step("return []", start), book[:500], logs)
    assert any("network: refused" in line for line in logs), logs


def test_a_bar_strategy_is_refused_here_and_a_tick_strategy_by_strategy_backtest(
    book: np.ndarray,
) -> None:
    from nodes.builtin.strategy_backtest import StrategyBacktest, StrategyBacktestParams

    sma = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()
    with pytest.raises(NodeError, match=r"is a bar strategy .*use strategy_backtest"):
        run(sma, book[:100])
    params = StrategyBacktestParams.model_validate({"strategy": "tick_grid", "code": GRID})
    bars = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]},
                        index=pd.DatetimeIndex(["2024-01-01"], tz="UTC"))  # fmt: skip
    with pytest.raises(NodeError, match=r"tick strategy .*use tick_strategy_backtest"):
        StrategyBacktest(NodeContext()).run({"data": bars}, params)
