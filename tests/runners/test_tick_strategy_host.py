"""The custom tick strategy's host side and entrypoint through the process box (the same
entrypoint the Docker sandbox runs, as a local subprocess): init / step, the config's defaults,
log lines, and the user's errors with their line. The real sandbox, with hftbacktest:
tests/nodes/test_tick_strategy.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from nodes.errors import NodeError
from runners.custom import AdminCaps, Limits
from runners.process import ALLOW_ENV
from runners.tickstrategy import tick_strategy_session

ROOT = Path(__file__).resolve().parents[2]
GRID = (ROOT / "examples" / "strategies" / "tick_grid.py").read_text()
META = {"tick_size": 0.1, "lot_size": 1.0, "step_ms": 100.0, "depth_levels": 2}
STATE = {"ts": 1, "step": 0, "best_bid": 100.0, "best_ask": 100.2, "bid_qty": 3.0,
         "ask_qty": 4.0, "bids": [], "asks": [], "position": 0.0, "balance": 0.0, "fee": 0.0,
         "orders": [], "fills": [], "next_order_id": 1}  # fmt: skip


@pytest.fixture(autouse=True)
def _process_runner_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "1")


def _session(code: str, logs: list[str], tmp_path: Path, **config: Any) -> Any:
    return tick_strategy_session(
        code, config=config, meta=META, node="t", log=logs.append, choice="process",
        limits=Limits.default(AdminCaps()), work_root=tmp_path / "w",
    )  # fmt: skip


def test_the_grid_module_quotes_around_the_book(tmp_path: Path) -> None:
    logs: list[str] = []
    with _session(GRID, logs, tmp_path, levels=2, half_spread_ticks=1.0) as s:
        intents = s.step(STATE, "step 0")
    # bid 100.0 / ask 100.2: the reservation is 100.1, quotes at 100.0 / 100.2, then 99.9 / 100.3
    assert [(i["side"], round(i["price"], 6)) for i in intents] == [
        ("buy", 100.0), ("sell", 100.2), ("buy", 99.9), ("sell", 100.3)
    ]  # fmt: skip
    assert all(i["tif"] == "GTX" and i["qty"] == 1.0 for i in intents)  # the defaults
    assert "strategy: grid: 2 level(s) a side on tick 0.1" in logs
    assert not any((tmp_path / "w").iterdir()), "the job directory was left behind"


def test_errors_name_the_step_and_the_line(tmp_path: Path) -> None:
    code = "from alphaforge_tick import TickStrategy\n" + textwrap.dedent(
        """
        class Boom(TickStrategy):
            def on_step(self, state):
                print("about to fail")
                return 1 / 0
        """
    )
    logs: list[str] = []
    with (
        pytest.raises(NodeError, match=r"on_step raised at step 7: ZeroDivisionError.*line 6"),
        _session(code, logs, tmp_path) as s,
    ):
        s.step(STATE, "step 7")
    assert "strategy: about to fail" in logs
    with (
        pytest.raises(NodeError, match="exactly one TickStrategy subclass"),
        _session("x = 1\n", [], tmp_path),
    ):
        pass
