"""The portfolio backtest's accounting against vectorbt's on the same orders.

vectorbt (``Portfolio.from_orders`` with ``cash_sharing=True, group_by=True``) is given the
fills our node made — each as an amount of units at the bar's raw open, with the same
``fees`` and ``slippage`` fractions (vectorbt fills at ``price × (1 ± slippage)`` and charges
``fees × units × fill``, as we do) and our execution order within a bar as ``call_seq`` (sells
first) — and its cash and equity curves must equal ours to 1e-9 (relative). That checks the
shared cash account, the fills, fees, slippage, shorts and the marking at closes (a symbol
without a bar marked at its last close: vectorbt is given the forward-filled closes); which
orders the rules make is checked by tests/nodes/test_portfolio.py.

vectorbt does not install reliably into the project's venv (its pins fight ours), so it runs
in its own venv, ``.bench-venvs/vectorbt`` (shared with the benchmarks), created on first use.
The test fails — never skips — when that venv cannot be made: it is part of CI.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.nodes.conftest import run_node

_PEER = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd, vectorbt as vbt
    d = np.load(sys.argv[1])
    index = pd.date_range("2000-01-01", periods=len(d["close"]), freq="D")
    pf = vbt.Portfolio.from_orders(
        pd.DataFrame(d["close"], index=index), size=d["size"], size_type="amount",
        direction="both", price=d["price"], fees=float(d["fee"]), slippage=float(d["slip"]),
        init_cash=float(d["cash"]), cash_sharing=True, group_by=True, call_seq=d["call_seq"],
        freq="1D",
    )
    r = pf.orders.values
    np.savez(sys.argv[2], value=pf.value().to_numpy(), cash=pf.cash().to_numpy(),
             col=r["col"], idx=r["idx"], units=r["size"], price=r["price"], fees=r["fees"],
             side=r["side"])
    """
)


def _panel(n: int, symbols: list[str], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long bars with a few missing (ts, symbol) rows, and weights held for a few bars."""
    rng = np.random.default_rng(seed)
    m = len(symbols)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0))
    open_ = close * (1 + rng.normal(0, 0.01, (n, m)))
    ts = pd.date_range("2022-01-03", periods=n, freq="D", tz="UTC", name="ts")
    present = rng.random((n, m)) > 0.06
    present[0] = True
    frame = pd.DataFrame(
        {
            "open": open_.ravel(),
            "close": close.ravel(),
            "symbol": pd.array(np.tile(symbols, n), dtype="str"),
        },
        index=pd.DatetimeIndex(np.repeat(ts, m), name="ts"),
    )[present.ravel()]
    held = rng.choice([-0.3, -0.1, 0.0, 0.15, 0.3, 0.45], size=(n // 4 + 1, m))
    weights = pd.DataFrame(np.repeat(held, 4, axis=0)[:n], index=ts, columns=symbols)
    return frame, weights


def _peer_inputs(out: dict, bars: pd.DataFrame, symbols: list[str]) -> dict[str, np.ndarray]:
    """Our fills as vectorbt's orders: amounts at the raw opens, in our order within a bar."""
    index = out["equity"].index
    n, m = len(index), len(symbols)
    wide = bars.reset_index().pivot(index="ts", columns="symbol").reindex(index)
    size = np.full((n, m), np.nan)
    call_seq = np.tile(np.arange(m), (n, 1))
    orders = out["orders"]
    rows = index.get_indexer(orders["ts"])
    cols = pd.Index(symbols).get_indexer(orders["symbol"])
    signed = np.where(orders["side"] == "buy", 1.0, -1.0) * orders["units"].to_numpy()
    for i in np.unique(rows):
        at = rows == i
        size[i, cols[at]] = signed[at]
        first = list(cols[at])  # our execution order: the sells, then the buys
        call_seq[i] = first + [c for c in range(m) if c not in first]
    return {
        "close": wide["close"][symbols].ffill().bfill().to_numpy(),
        "price": wide["open"][symbols].to_numpy(),
        "size": size,
        "call_seq": call_seq,
        "rows": rows,
    }


@pytest.mark.parametrize(
    ("params", "seed"),
    [
        ({"fee_bps": 10.0, "slippage_bps": 5.0}, 1),
        ({"fee_bps": 25.0, "slippage_bps": 0.0, "rebalance": "threshold", "threshold": 0.03}, 2),
        ({"fee_bps": 5.0, "slippage_bps": 20.0, "rebalance": "every", "rebalance_every": 3}, 3),
        ({"fee_bps": 0.0, "slippage_bps": 0.0, "lot_size": 1.0, "max_gross": 1.5}, 4),
    ],
)
def test_portfolio_cash_and_equity_match_vectorbt_on_the_same_orders(
    vectorbt_python: Path, tmp_path: Path, params: dict, seed: int
) -> None:
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    bars, weights = _panel(120, symbols, seed)
    out = run_node(
        "portfolio_backtest", {"bars": bars, "weights": weights}, cash=10_000.0, **params
    )
    orders = out["orders"]
    assert len(orders) > 40 and (orders["side"] == "sell").any()
    assert (out["positions"] < 0).any().any()  # shorts were held
    assert any("scaled down to the cash" in w for w in out["metrics"]["warnings"])
    peer_in = _peer_inputs(out, bars, symbols)
    np.savez(
        tmp_path / "in.npz",
        **{k: v for k, v in peer_in.items() if k != "rows"},
        fee=params["fee_bps"] / 1e4,
        slip=params["slippage_bps"] / 1e4,
        cash=10_000.0,
    )
    proc = subprocess.run(
        [str(vectorbt_python), "-c", _PEER, str(tmp_path / "in.npz"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peer = np.load(tmp_path / "out.npz")
    assert len(peer["units"]) == len(orders)  # every order filled in full, none rejected
    theirs = np.lexsort((peer["col"], peer["idx"]))  # both by (bar, symbol)
    ours = np.lexsort((pd.Index(symbols).get_indexer(orders["symbol"]), peer_in["rows"]))
    mine = orders.iloc[ours]
    np.testing.assert_allclose(peer["units"][theirs], mine["units"], rtol=1e-9)
    np.testing.assert_allclose(peer["price"][theirs], mine["price"], rtol=1e-12)
    np.testing.assert_allclose(peer["fees"][theirs], mine["fee"], rtol=1e-9, atol=1e-12)
    sides = np.where(mine["side"] == "buy", 0, 1)  # vectorbt: 0 buy, 1 sell
    np.testing.assert_array_equal(peer["side"][theirs], sides)
    np.testing.assert_allclose(peer["cash"], out["equity"]["cash"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(peer["value"], out["equity"]["equity"], rtol=1e-9)
