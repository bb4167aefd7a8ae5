"""The strategy backtest's (and so the paper venue's) accounting against vectorbt: the same
fills — at the prices and sizes our venue chose — given to ``Portfolio.from_orders`` give the
same cash and equity at every bar."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from live.store import Desired
from runners.papertrade.backtest import backtest_strategy
from tests.live.fakes import HostLedger, ScriptedHost

ROOT = Path(__file__).resolve().parents[2]

_PEER = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd, vectorbt as vbt
    d = np.load(sys.argv[1])
    index = pd.date_range("2000-01-01", periods=len(d["close"]), freq="D")
    pf = vbt.Portfolio.from_orders(
        pd.Series(d["close"], index=index), size=d["size"], size_type="amount",
        direction="both", price=d["price"], fees=float(d["fee"]), init_cash=float(d["cash"]),
        freq="1D",
    )
    np.savez(sys.argv[2], value=pf.value().to_numpy(), cash=pf.cash().to_numpy(),
             n=len(pf.orders.values))
    """
)


def test_strategy_backtest_cash_and_equity_match_vectorbt(
    vectorbt_python: Path, tmp_path: Path
) -> None:
    bars = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv")
    config = {"fast": 3, "slow": 8}
    want = Desired(id="bt", owner_id=1, strategy_name="sma", strategy_version=1, code="",
                   code_hash="0" * 64, account="bt", market="ASSET", feed={},
                   initial_cash=50_000.0, fee_bps=20, slippage_bps=7, mode="active",
                   config=config, config_version=1)  # fmt: skip
    result = backtest_strategy(ScriptedHost(want, HostLedger()), bars, config=config,
                               cash=50_000.0, fee_bps=20, slippage_bps=7)  # fmt: skip
    orders = result.orders
    assert len(orders) > 20 and set(orders["side"]) == {"buy", "sell"}
    index = result.equity.index
    rows = index.get_indexer(pd.DatetimeIndex(orders["ts"]))
    assert (rows >= 0).all()
    size = np.full(len(index), np.nan)
    price = np.full(len(index), np.nan)
    size[rows] = np.where(orders["side"] == "buy", orders["units"], -orders["units"])
    price[rows] = orders["price"]
    np.savez(tmp_path / "in.npz", close=bars["close"].to_numpy(), size=size, price=price,
             fee=20 / 1e4, cash=50_000.0)  # fmt: skip
    proc = subprocess.run(
        [str(vectorbt_python), "-c", _PEER, str(tmp_path / "in.npz"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peer = np.load(tmp_path / "out.npz")
    assert int(peer["n"]) == len(orders)
    np.testing.assert_allclose(peer["cash"], result.equity["cash"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(peer["value"], result.equity["equity"], rtol=1e-9)
