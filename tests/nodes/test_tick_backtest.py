"""The tick backtest's core on hand-made books: fills respect the order latency and the queue
ahead, fees follow maker / taker, the equity is the hand-worked cash + position × mid, and
the same data and params give the same fills. Runs hftbacktest for real (numba compiles the
loop once per process: ≈ 10–60 s on this machine)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodes.builtin.tickbacktest import run_tick_backtest
from nodes.builtin.tickparams import TickBacktestParams
from nodes.errors import DataError, NodeError
from tests.nodes.tickbook import ASK, BID, MS, SELL_TRADE, T0, events, random_book

pytestmark = pytest.mark.slow


def _params(**kw: object) -> TickBacktestParams:
    base: dict[str, object] = {
        "tick_size": 1.0,
        "lot_size": 1.0,
        "grid_levels": 1,
        "half_spread_ticks": 1.0,
        "update_interval_ms": 10.0,
        "record_interval_ms": 10.0,
    }
    return TickBacktestParams.model_validate(base | kw)


def _book(*later: tuple[int, int, float, float], bid_qty: float = 5.0) -> np.ndarray:
    """Bid 99 / ask 101 at T0, then ``later`` events, then a quiet quote at +300 ms."""
    return events(
        [(BID, 0, 99.0, bid_qty), (ASK, 0, 101.0, 5.0), *later, (ASK, 300 * MS, 101.0, 5.0)]
    )


def test_no_fill_from_a_trade_before_the_order_reaches_the_exchange() -> None:
    # the grid's bid at 99 is sent at the first update (≈ +10 ms); a seller sweeps 99 at +30 ms
    data = _book((SELL_TRADE, 30 * MS, 99.0, 100.0))
    slow = run_tick_backtest(data, _params(entry_latency_ns=50 * MS))
    fast = run_tick_backtest(data, _params(entry_latency_ns=5 * MS))
    assert len(slow["orders"]) == 0  # the trade came 20 ms before the order arrived
    assert slow["order_log"]["status"].eq("open").all()
    fills = fast["orders"]
    assert len(fills) == 1 and fills["side"].iloc[0] == "buy" and fills["price"].iloc[0] == 99.0
    assert fills["ts"].iloc[0] == pd.Timestamp(T0 + 30 * MS, tz="UTC")
    assert fills["liquidity"].iloc[0] == "maker"


def test_every_fill_comes_after_its_order_arrival_on_a_random_book() -> None:
    latency = 7 * MS
    out = run_tick_backtest(
        random_book(20.0), _params(tick_size=0.1, grid_levels=3, entry_latency_ns=latency)
    )
    fills = out["orders"]
    assert len(fills) > 50
    arrival = fills["submit_ts"] + pd.Timedelta(latency, "ns")
    assert (fills["ts"] >= arrival).all()
    assert (fills["queue_time_ms"] >= latency / 1e6).all()


def test_recorded_order_latency_gives_what_the_same_constant_latency_gives() -> None:
    data = random_book(10.0)
    table = pd.DataFrame({"req_ts": [T0 - 1_000 * MS, T0 + 20_000 * MS]})
    table["exch_ts"] = table["req_ts"] + 4 * MS
    table["resp_ts"] = table["exch_ts"] + 3 * MS
    recorded = run_tick_backtest(data, _params(tick_size=0.1, latency="recorded"), table)
    constant = run_tick_backtest(
        data, _params(tick_size=0.1, entry_latency_ns=4 * MS, response_latency_ns=3 * MS)
    )
    assert len(constant["orders"]) > 10
    pd.testing.assert_frame_equal(recorded["orders"], constant["orders"])
    with pytest.raises(NodeError, match="order_latency input"):
        run_tick_backtest(data, _params(tick_size=0.1, latency="recorded"))


def test_a_resting_order_waits_for_the_volume_ahead_of_it() -> None:
    # 50 ahead at 99; sells of 20 at +30 and +50 ms leave 10 ahead: the fill is at +70 ms
    data = _book(
        (SELL_TRADE, 30 * MS, 99.0, 20.0),
        (SELL_TRADE, 50 * MS, 99.0, 20.0),
        (SELL_TRADE, 70 * MS, 99.0, 20.0),
        bid_qty=50.0,
    )
    out = run_tick_backtest(data, _params())
    log = out["order_log"]
    bid = log[log["side"] == "buy"].iloc[0]
    assert bid["queue_ahead"] == 50.0 and bid["status"] == "filled"
    fills = out["orders"]
    assert list(fills["ts"]) == [pd.Timestamp(T0 + 70 * MS, tz="UTC")]
    # without the third sell the queue never clears: no fill
    short = _book(
        (SELL_TRADE, 30 * MS, 99.0, 20.0), (SELL_TRADE, 50 * MS, 99.0, 20.0), bid_qty=50.0
    )
    assert len(run_tick_backtest(short, _params())["orders"]) == 0


def test_every_partial_fill_enters_the_account_worked_by_hand() -> None:
    # a bid of 5 at 99 behind 5; sells of 7 (+30 ms) and 3 (+60 ms) fill 2 then 3: two rows
    from nodes.builtin._tickcore import simulate

    data = _book(
        (SELL_TRADE, 30 * MS, 99.0, 7.0),
        (SELL_TRADE, 60 * MS, 99.0, 3.0),
        (BID, 70 * MS, 99.0, 5.0),
        bid_qty=5.0,
    )
    params = _params(order_qty=5.0, max_position=20.0, exchange="partial_fill",
                     maker_fee_bps=-2.0)  # fmt: skip
    out = run_tick_backtest(data, params)
    fills, m = out["orders"], out["metrics"]
    buys = fills[fills["side"] == "buy"]
    assert list(buys["units"]) == [2.0, 3.0] and (buys["price"] == 99.0).all()
    assert m["final_position"] == 5.0
    assert simulate(data, params).venue[2] == 3.0  # hftbacktest 2.4's counts the last fill only
    assert out["equity"]["cash"].iloc[-1] == pytest.approx(100_000.0 - 5 * 99.0 + 2e-4 * 495.0)
    assert m["total_fees"] == pytest.approx(-2e-4 * 5 * 99.0)
    assert not [w for w in m["warnings"] if w.startswith(("account:", "fills:"))]


def test_fees_by_maker_and_taker_match_hftbacktest_and_the_rates() -> None:
    params = _params(
        tick_size=0.1,
        strategy="imbalance_taker",
        imbalance_threshold=0.3,
        max_queue_ahead=15.0,
        patience_ms=50.0,
        maker_fee_bps=-2.0,
        taker_fee_bps=7.0,
        max_position=3.0,
    )
    from nodes.builtin._tickcore import simulate

    data = random_book(30.0)
    out = run_tick_backtest(data, params)
    fills = out["orders"]
    maker = fills["liquidity"] == "maker"
    assert maker.sum() > 0 and (~maker).sum() > 0  # both kinds, or the test proves nothing
    rate = np.where(maker, -2e-4, 7e-4)
    np.testing.assert_allclose(fills["fee"], rate * fills["units"] * fills["price"])
    m = out["metrics"]
    assert m["maker_fills"] == maker.sum() and m["taker_fills"] == (~maker).sum()
    assert m["maker_fees"] < 0 < m["taker_fees"]
    run = simulate(data, params)
    venue_fee, venue_balance, venue_position = run.venue  # hftbacktest's own account
    assert fills["fee"].sum() == pytest.approx(venue_fee, rel=1e-12)
    assert m["total_fees"] == pytest.approx(venue_fee, rel=1e-12)
    assert run.final_balance == pytest.approx(venue_balance, rel=1e-12)
    assert m["final_position"] == pytest.approx(venue_position, abs=1e-9)
    assert not [w for w in m["warnings"] if w.startswith(("account:", "fills:"))]


def test_equity_is_cash_plus_position_times_mid_worked_from_the_fills() -> None:
    params = _params(tick_size=0.1, grid_levels=3, maker_fee_bps=-1.0, taker_fee_bps=5.0)
    out = run_tick_backtest(random_book(20.0), params)
    eq, fills = out["equity"], out["orders"]
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["units"].to_numpy()
    price, fee = fills["price"].to_numpy(), fills["fee"].to_numpy()
    for ts, row in eq.iloc[:: max(1, len(eq) // 40)].iterrows():
        known = (fills["seen_ts"] <= ts).to_numpy()
        position = signed[known].sum()
        cash = 100_000.0 - (signed[known] * price[known]).sum() - fee[known].sum()
        assert row["position"] == pytest.approx(position, abs=1e-9)
        assert row["cash"] == pytest.approx(cash, rel=1e-12)
        assert row["equity"] == pytest.approx(cash + position * row["mid"], rel=1e-12)
        assert row["mid"] == pytest.approx((row["best_bid"] + row["best_ask"]) / 2)
    # the round trips (the open one marked at the last mid) add up to the equity's change
    m = out["metrics"]
    assert out["trades"]["pnl"].sum() == pytest.approx(m["final_equity"] - 100_000.0, abs=1e-6)
    assert m["fills"] == len(fills) > 0
    assert m["max_abs_inventory"] >= np.abs(eq["position"]).max()


def test_same_data_and_params_give_identical_fills() -> None:
    data = random_book(20.0, seed=11)
    params = _params(tick_size=0.1, grid_levels=4, queue_model="power_prob", queue_power=2.0)
    a = run_tick_backtest(data, params)
    b = run_tick_backtest(data.copy(), params)
    for name in ("orders", "order_log", "trades", "equity"):
        pd.testing.assert_frame_equal(a[name], b[name])
    assert a["metrics"] == b["metrics"]
    assert len(a["orders"]) > 50


def test_another_process_gives_the_same_fills_in_the_same_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """hftbacktest's order dict iterates in a hash order of its process: the fills of one scan
    are logged by order id and the table sorted, so a re-run elsewhere (another flow run,
    ``alphaforge rerun``) gives the same fills, row for row; the second process loads the
    kernel's strategies from numba's disk cache instead of compiling them."""
    import subprocess
    import sys

    from nodes.builtin.tickbacktest import resolve_instrument
    from nodes.synthbook import BookSpec, generate

    data = generate(BookSpec(seed=1, duration_s=60.0))  # fills of several orders a scan
    params = resolve_instrument(TickBacktestParams(strategy="grid_mm"), data)
    np.save(tmp_path / "book.npy", np.asarray(data), allow_pickle=False)
    script = (
        "import sys, numpy as np\n"
        "from nodes.builtin.tickbacktest import run_tick_backtest\n"
        "from nodes.builtin.tickparams import TickBacktestParams\n"
        f"p = TickBacktestParams.model_validate_json({params.model_dump_json()!r})\n"
        "out = run_tick_backtest(np.load(sys.argv[1]), p)\n"
        "out['orders'].to_pickle(sys.argv[2] + '/orders.pkl')\n"
        "out['equity'].to_pickle(sys.argv[2] + '/equity.pkl')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "book.npy"), str(tmp_path)],
                   check=True, timeout=600)  # fmt: skip
    here = run_tick_backtest(data, params)
    assert len(here["orders"]) > 50
    for name in ("orders", "equity"):  # the equity to the last bit: the account is ours
        pd.testing.assert_frame_equal(here[name], pd.read_pickle(tmp_path / f"{name}.pkl"))


def test_bad_input_is_refused_with_what_and_where() -> None:
    data = _book()
    with pytest.raises(DataError, match=r"OFF_TICK_PRICE.*99\.0.*tick_size=2") as off:
        run_tick_backtest(data, _params(tick_size=2.0))
    assert off.value.code == "AF600" and off.value.row == 0
    with pytest.raises(DataError, match="EMPTY"):
        run_tick_backtest(data[:0], _params())
    with pytest.raises(NodeError, match="give tick_size"):
        run_tick_backtest(data, _params(tick_size=None))
    with pytest.raises(ValueError, match=r"order_qty=1\.5 is not a multiple of lot_size=1"):
        _params(order_qty=1.5)
    swapped = data.copy()
    swapped[[0, 2]] = swapped[[2, 0]]
    with pytest.raises(DataError, match="UNSORTED"):
        run_tick_backtest(swapped, _params())


def test_the_code_fingerprint_covers_the_kernel_the_checks_and_the_shaping() -> None:
    """A change to the loop, the checks or the tables must not be served from the cache."""
    from nodes import codehash
    from nodes.base import registry

    closure = codehash.module_closure(registry().get("tick_backtest").__module__)
    assert {
        "nodes.builtin._tickkernel",
        "nodes.builtin._tickcore",
        "nodes.builtin._tickfast",
        "nodes.builtin._tickoutputs",
        "nodes.builtin.tickparams",
        "nodes.ticks",
    } <= set(closure)


def test_partial_fills_never_exceed_the_order_and_keep_the_fee_account() -> None:
    params = _params(
        tick_size=0.1, grid_levels=3, order_qty=5.0, max_position=20.0, exchange="partial_fill",
        maker_fee_bps=-1.0, taker_fee_bps=5.0,
    )  # fmt: skip
    out = run_tick_backtest(random_book(20.0), params)
    log, fills = out["order_log"], out["orders"]
    assert len(fills) > 20
    per_order = fills.groupby("order_id")["units"].sum()
    filled = log.set_index("order_id")["filled_qty"]
    assert (per_order <= 5.0 + 1e-9).all()
    pd.testing.assert_series_equal(per_order, filled.loc[per_order.index], check_names=False)
    assert (fills["units"] < 5.0).any()  # some fills really were partial
    # the account counts every fill (hftbacktest's own counts only an order's last one)
    m, eq = out["metrics"], out["equity"]
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["units"]
    rate = np.where(fills["liquidity"] == "maker", -1e-4, 5e-4)
    assert m["total_fees"] == pytest.approx((rate * fills["units"] * fills["price"]).sum())
    assert m["final_position"] == pytest.approx(signed.sum(), abs=1e-9)
    assert eq["position"].iloc[-1] == pytest.approx(signed.sum(), abs=1e-9)
    cash = 100_000.0 - (signed * fills["price"]).sum() - fills["fee"].sum()
    assert eq["cash"].iloc[-1] == pytest.approx(cash, rel=1e-12)


def _taker(**kw: object) -> TickBacktestParams:
    return _params(
        strategy="imbalance_taker", imbalance_threshold=0.5, max_position=1.0, **kw
    )  # fmt: skip


def test_the_imbalance_taker_takes_when_the_queue_is_long_and_joins_when_it_is_short() -> None:
    # bids 50 at 99 against 2 at 101: imbalance +0.92, a buy signal
    data = _book(bid_qty=50.0)
    data[1]["qty"] = 2.0
    took = run_tick_backtest(data, _taker(max_queue_ahead=10.0))  # 50 queued at 99 > 10: take
    first = took["order_log"].iloc[0]
    assert (first["side"], first["price"], first["time_in_force"]) == ("buy", 101.0, "IOC")
    fills = took["orders"]
    assert list(fills["liquidity"]) == ["taker"] and fills["price"].iloc[0] == 101.0
    assert took["metrics"]["taker_fills"] == 1
    # 50 ahead <= 100: join the bid post-only; nothing trades, so it waits all along
    joined = run_tick_backtest(data, _taker(max_queue_ahead=100.0, patience_ms=10_000.0))
    log = joined["order_log"]
    assert list(zip(log["price"], log["time_in_force"], log["status"], strict=True)) == [
        (99.0, "GTX", "open")
    ]
    assert len(joined["orders"]) == 0
    # with 50 ms of patience and 50 still ahead, it gives up the queue and takes
    impatient = run_tick_backtest(data, _taker(max_queue_ahead=100.0, patience_ms=50.0))
    log = impatient["order_log"]
    assert list(zip(log["price"], log["time_in_force"], log["status"], strict=True))[:2] == [
        (99.0, "GTX", "cancelled"),
        (101.0, "IOC", "filled"),
    ]
    assert log["submit_ts"].iloc[1] - log["submit_ts"].iloc[0] >= pd.Timedelta(50, "ms")


def test_recorded_latencies_from_a_file_enter_the_run_and_its_cache_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nodes.base import NodeContext, registry

    data = random_book(10.0)
    path = tmp_path / "latency.csv"
    req = [T0 - 1_000 * MS, T0 + 20_000 * MS]
    pd.DataFrame(
        {"req_ts": req, "exch_ts": [r + 4 * MS for r in req], "resp_ts": [r + 7 * MS for r in req]}
    ).to_csv(path, index=False)
    node_type = registry().get("tick_backtest")
    node = node_type(NodeContext(base_dir=tmp_path))
    base = {"tick_size": 0.1, "lot_size": 1.0, "grid_levels": 1, "update_interval_ms": 10.0,
            "record_interval_ms": 10.0}  # fmt: skip
    params = node_type.validated_params(
        base | {"latency": "recorded", "order_latency_file": "latency.csv"}
    )
    constant = node_type.validated_params(
        base | {"entry_latency_ns": 4 * MS, "response_latency_ns": 3 * MS}
    )
    from_file = node.execute({"ticks": data}, params)
    pd.testing.assert_frame_equal(
        from_file["orders"], node.execute({"ticks": data}, constant)["orders"]
    )
    before = node.fingerprint(params)
    assert before is not None and node.fingerprint(constant) is None
    path.write_text(path.read_text().replace(str(req[0] + 4 * MS), str(req[0] + 5 * MS)))
    assert node.fingerprint(params) != before  # a changed file is never served from the cache
    with pytest.raises(NodeError, match="not both"):
        node.execute({"ticks": data, "order_latency": pd.read_csv(path)}, params)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    bad = node_type.validated_params(
        base | {"latency": "recorded", "order_latency_file": "bad.csv"}
    )
    with pytest.raises(DataError, match="MISSING_COLUMNS"):
        node.execute({"ticks": data}, bad)
