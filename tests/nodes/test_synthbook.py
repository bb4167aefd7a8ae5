"""The synthetic order book (nodes.synthbook): seeded, valid for hftbacktest, as documented."""

from __future__ import annotations

import numpy as np
import pytest

from nodes import tickfile, ticks
from nodes.synthbook import BookSpec, generate


def _replay_best(data: np.ndarray) -> tuple[float, float, int]:
    """Our own book replay (dicts, row by row): the final best bid / ask and the crossings."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    crossed = 0
    for row in data:
        ev, px, qty = int(row["ev"]), float(row["px"]), float(row["qty"])
        kind = ev & ticks.KIND_MASK
        side = bids if ev & ticks.BUY_EVENT else asks
        if kind == ticks.DEPTH_CLEAR_EVENT:
            side.clear()
        elif kind in (ticks.DEPTH_EVENT, ticks.DEPTH_SNAPSHOT_EVENT):
            if qty > 0:
                side[px] = qty
            else:
                side.pop(px, None)
        if bids and asks and max(bids) >= min(asks):
            crossed += 1
    return max(bids), min(asks), crossed


def test_same_seed_same_bytes_other_seed_other_book() -> None:
    spec = BookSpec(seed=7, duration_s=20)
    a, b = generate(spec), generate(BookSpec(seed=7, duration_s=20))
    assert tickfile.dumps(a) == tickfile.dumps(b)
    assert tickfile.dumps(generate(BookSpec(seed=8, duration_s=20))) != tickfile.dumps(a)


def test_the_book_is_in_replay_order_with_feed_latency() -> None:
    spec = BookSpec(seed=3, duration_s=30, latency_ns=2_000_000, jitter_ns=500_000)
    data = generate(spec)
    ticks.check_order(data, "synthetic")
    both = ticks.EXCH_EVENT | ticks.LOCAL_EVENT
    assert np.all(data["ev"] & both == both)  # a feed in order: every row is both
    assert np.all(data["local_ts"] - data["exch_ts"] >= spec.latency_ns)
    assert data["exch_ts"][0] == spec.start_ns
    assert data["exch_ts"][-1] <= spec.start_ns + 30 * 10**9
    # prices on the tick grid, quantities in lots
    assert np.allclose(np.round(data["px"] / 0.01), data["px"] / 0.01)
    assert np.allclose(np.round(data["qty"] / 0.1), data["qty"] / 0.1)
    assert ticks.tick_meta(data) == ticks.TickMeta("SYN", 0.01, 0.1)


def test_arrivals_follow_the_rates() -> None:
    spec = BookSpec(seed=11, duration_s=200, trade_rate=5.0)
    kinds = generate(spec)["ev"] & ticks.KIND_MASK
    trades = int(np.count_nonzero(kinds == ticks.TRADE_EVENT))
    expected = spec.trade_rate * spec.duration_s  # Poisson: sd = sqrt(1000) ~ 32
    assert abs(trades - expected) < 5 * expected**0.5


def test_hftbacktest_replays_it_with_an_uncrossed_book_and_trades() -> None:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    spec = BookSpec(seed=5, duration_s=120)
    data = np.ascontiguousarray(generate(spec))
    asset = (
        BacktestAsset()
        .data([data])
        .linear_asset(1.0)
        .constant_order_latency(10_000, 10_000)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(spec.tick_size)
        .lot_size(spec.lot_size)
        .last_trades_capacity(10_000)
    )
    hbt = HashMapMarketDepthBacktest([asset])
    steps = crossed = seen_trades = 0
    try:
        while hbt.elapse(10_000_000) == 0:  # every 10 ms
            depth = hbt.depth(0)
            steps += 1
            if not depth.best_bid < depth.best_ask:
                crossed += 1
            seen_trades += len(hbt.last_trades(0))
            hbt.clear_last_trades(0)
        best_bid, best_ask = hbt.depth(0).best_bid, hbt.depth(0).best_ask
    finally:
        hbt.close()
    assert steps >= 11_000 and crossed == 0
    kinds = data["ev"] & ticks.KIND_MASK
    assert seen_trades == np.count_nonzero(kinds == ticks.TRADE_EVENT) > 300
    # an independent replay of the same events ends at the same top of book
    mine_bid, mine_ask, mine_crossed = _replay_best(data)
    assert mine_crossed == 0
    assert (round(best_bid, 2), round(best_ask, 2)) == (mine_bid, mine_ask)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tick_size": 0}, "tick_size must be > 0"),
        ({"trade_rate": -1}, "trade_rate must be"),
        ({"limit_rate": 0, "cancel_rate": 0, "trade_rate": 0}, "at least one"),
        ({"mid": 0.1, "tick_size": 0.01, "depth": 10}, "too few ticks"),
        ({"jitter_ns": -5}, "jitter_ns"),
    ],
)
def test_bad_params_are_named(change: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        generate(BookSpec(**change))  # type: ignore[arg-type]
