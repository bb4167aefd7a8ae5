"""Panels: the representation's helpers and the per-symbol dispatch of Node.execute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from nodes import panel
from nodes.base import NodeContext, registry
from nodes.errors import NodeError
from tests.nodes.panels import DAYS, long_panel, run, single, three_symbols


@pytest.fixture
def parts() -> dict[str, pd.DataFrame]:
    return three_symbols()


@pytest.fixture
def bars(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return long_panel(parts)


def _same_as_alone(wide: pd.DataFrame, alone: dict[str, pd.Series]) -> None:
    """Each symbol's column equals its single-symbol run on its own bars, NaN elsewhere."""
    assert list(wide.columns) == sorted(alone)
    for symbol, expected in alone.items():
        col = wide[symbol]
        pd.testing.assert_series_equal(
            col.loc[expected.index], expected, check_names=False, check_freq=False
        )
        assert col.drop(expected.index).isna().all(), symbol


def test_is_panel_needs_two_symbols(bars, parts) -> None:
    assert panel.is_panel(bars)
    assert not panel.is_panel(parts["AAA"])  # one symbol, with a symbol column
    assert not panel.is_panel(parts["AAA"].drop(columns="symbol"))
    assert not panel.is_panel(bars["close"])
    assert panel.symbols_of(bars) == ["AAA", "BBB", "CCC"]


def test_wide_pivots_a_column_with_nan_where_a_symbol_has_no_bar(bars, parts) -> None:
    close = panel.wide(bars, "close")
    assert close.index.equals(DAYS) and list(close.columns) == ["AAA", "BBB", "CCC"]
    assert close["BBB"].iloc[:20].isna().all()
    assert close["CCC"].iloc[[10, 11, 12, 40]].isna().all()
    for s, frame in parts.items():
        pd.testing.assert_series_equal(
            close[s].dropna(), frame["close"], check_names=False, check_freq=False
        )
    assert panel.bars(close).sum() == len(bars)


def test_split_gives_each_symbols_own_rows(bars, parts) -> None:
    for s, frame in panel.split(bars).items():
        pd.testing.assert_frame_equal(frame, parts[s], check_freq=False)


@pytest.mark.parametrize(
    ("name", "params", "port"),
    [
        ("sma", {"window": 5}, "value"),
        ("ema", {"window": 5}, "value"),
        ("rsi", {"window": 6}, "value"),
        ("macd", {"fast": 3, "slow": 7, "signal": 4}, "signal"),
        ("bollinger", {"window": 5}, "percent_b"),
        ("momentum", {"window": 3}, "value"),
        ("returns", {"periods": 2}, "value"),
        ("zscore", {"window": 5}, "value"),
    ],
)
def test_indicators_per_symbol_equal_single_symbol_runs(name, params, port, bars, parts) -> None:
    out = run(name, {"series": panel.wide(bars, "close")}, **params)[port]
    alone = {s: single(name, {"series": f["close"]}, **params)[port] for s, f in parts.items()}
    _same_as_alone(out, alone)


def test_atr_takes_each_symbols_own_bars(bars, parts) -> None:
    out = run("atr", {"bars": bars}, window=5)["value"]
    alone = {s: single("atr", {"bars": f}, window=5)["value"] for s, f in parts.items()}
    _same_as_alone(out, alone)


def test_a_chain_sees_warm_up_and_undefined_bars_as_bars() -> None:
    """sma of a z-score that is undefined (NaN) on the bars of a flat stretch, and a crossover
    whose inputs are NaN while warming up: each symbol's result is its single-symbol chain's,
    also on the bars where an intermediate value was NaN (the dispatch must not skip them)."""
    parts = three_symbols(flat_from=25)
    close = panel.wide(long_panel(parts), "close")
    z = run("zscore", {"series": close}, window=4)["value"]
    smooth = run("momentum", {"series": z}, window=3)["value"]
    fast = run("sma", {"series": close}, window=3)["value"]
    slow = run("sma", {"series": close}, window=8)["value"]
    signal = run("crossover", {"fast": fast, "slow": slow})["signal"]
    want_smooth, want_signal = {}, {}
    for s, f in parts.items():
        zs = single("zscore", {"series": f["close"]}, window=4)["value"]
        want_smooth[s] = single("momentum", {"series": zs}, window=3)["value"]
        a = single("sma", {"series": f["close"]}, window=3)["value"]
        b = single("sma", {"series": f["close"]}, window=8)["value"]
        want_signal[s] = single("crossover", {"fast": a, "slow": b})["signal"]
    assert z["AAA"].iloc[30:].isna().all()  # the flat stretch: undefined on real bars
    assert smooth["CCC"].iloc[20:].notna().sum() > 20  # a gap is not a NaN bar
    _same_as_alone(smooth, want_smooth)
    _same_as_alone(signal, want_signal)
    assert (signal["BBB"].iloc[20:27] == 0.0).all()  # warm-up bars: 0, not "no bar"


def test_changing_one_symbols_data_never_changes_anothers_indicator(parts) -> None:
    before = run("ema", {"series": panel.wide(long_panel(parts), "close")}, window=4)["value"]
    changed = dict(parts)
    bbb = parts["BBB"].copy()
    bbb[["open", "high", "low", "close"]] *= 3.0
    changed["BBB"] = bbb.iloc[::2]  # other values and other days
    after = run("ema", {"series": panel.wide(long_panel(changed), "close")}, window=4)["value"]
    pd.testing.assert_frame_equal(before[["AAA", "CCC"]], after[["AAA", "CCC"]])
    assert not before["BBB"].equals(after["BBB"])


def test_signals_take_a_panel_series_beside_a_panel_of_bars(bars, parts) -> None:
    close = panel.wide(bars, "close")
    sig = run(
        "threshold",
        {"series": run("rsi", {"series": close}, window=5)["value"]},
        lower=30.0,
        upper=70.0,
    )["signal"]
    sized = run("risk_size", {"signal": sig, "data": bars}, vol_target=0.2, ppy=252.0)["signal"]
    want = {}
    for s, f in parts.items():
        r = single("rsi", {"series": f["close"]}, window=5)["value"]
        t = single("threshold", {"series": r}, lower=30.0, upper=70.0)["signal"]
        want[s] = single("risk_size", {"signal": t, "data": f}, vol_target=0.2, ppy=252.0)["signal"]
    _same_as_alone(sized, want)


def test_frame_outputs_come_back_long_sorted_by_time_then_symbol(bars, parts) -> None:
    out = run("label_forward_return", {"data": bars}, horizon=3)["labels"]
    assert out["symbol"].nunique() == 3
    order = list(zip(out.index, out["symbol"], strict=True))
    assert order == sorted(order)
    for s, f in parts.items():
        want = single("label_forward_return", {"data": f}, horizon=3)["labels"]
        got = out[out["symbol"] == s]
        pd.testing.assert_frame_equal(got[want.columns], want, check_freq=False)


def test_features_per_symbol_match_single_runs(bars, parts) -> None:
    close = panel.wide(bars, "close")
    rsi = run("rsi", {"series": close}, window=5)["value"]
    out = run("features", {"data": bars, "features": [rsi]}, names=["rsi_5"])["features"]
    for s, f in parts.items():
        r = single("rsi", {"series": f["close"]}, window=5)["value"]
        want = single("features", {"data": f, "features": [r]}, names=["rsi_5"])["features"]
        pd.testing.assert_frame_equal(out[out["symbol"] == s], want, check_freq=False)


def test_backtest_refuses_a_panel_and_says_to_use_portfolio_backtest(bars) -> None:
    close = panel.wide(bars, "close")
    signal = run("crossover", {"fast": close, "slow": close})["signal"]
    with pytest.raises(NodeError) as info:
        run("backtest", {"data": bars, "signal": signal})
    message = str(info.value)
    assert message.startswith("backtest takes one symbol")
    assert "3 symbols (AAA, BBB, CCC)" in message and "portfolio_backtest" in message


@pytest.mark.parametrize("name", ["train_test_split", "train_torch"])
def test_ml_nodes_refuse_a_panel_saying_it_is_not_supported_yet(name, bars) -> None:
    node_type = registry().get(name)
    port = node_type.inputs[0].name
    params: dict[str, Any] = {"purge": 0} if name == "train_test_split" else {"features": ["close"]}
    with pytest.raises(NodeError, match=rf"^{name} takes one symbol.*symbol=\"...\""):
        run(name, {port: bars}, **params)


def test_a_single_symbols_series_beside_a_panel_is_refused(bars, parts) -> None:
    close = panel.wide(bars, "close")
    with pytest.raises(NodeError, match="input 'slow' holds one symbol's data"):
        run("crossover", {"fast": close, "slow": parts["AAA"]["close"]})


def test_inputs_with_different_symbols_are_refused(bars) -> None:
    close = panel.wide(bars, "close")
    with pytest.raises(NodeError, match=r"hold different symbols .*CCC"):
        run("crossover", {"fast": close, "slow": close[["AAA", "BBB"]]})


def test_a_symbols_error_names_the_symbol(bars) -> None:
    close = panel.wide(bars, "close")
    flat = panel.set_bars((close * 0.0).fillna(0.0), panel.bars(close))
    broken = panel.set_bars(flat.copy(), panel.bars(close))
    broken.loc[DAYS[30], "BBB"] = 2.0  # not a position
    with pytest.raises(NodeError, match=r"^combine on symbol 'BBB': .*2\.0 at 2024-01-31"):
        run("combine", {"signals": [broken, flat]})


def test_per_symbol_log_lines_are_written_once_with_their_symbols(bars) -> None:
    lines: list[str] = []
    node_type = registry().get("position_sizer")
    node = node_type(NodeContext(log=lines.append))
    close = panel.wide(bars, "close")
    signal = pd.DataFrame(1.0, index=close.index, columns=close.columns).where(close.notna())
    node.execute(
        {"signal": panel.set_bars(signal, panel.bars(close)), "prices": close},
        node_type.validated_params({"target_vol": 0.1}),
    )
    # AAA and CCC span 9 weeks (one line for both), BBB 7; only CCC has gaps to warn about
    assert len(lines) == 3, lines
    assert lines[0].startswith("ppy 365: ") and "9 weeks" in lines[0]
    assert lines[0].endswith(" (AAA, CCC)")
    assert lines[1].startswith("ppy 365: ") and "7 weeks" in lines[1]
    assert lines[1].endswith(" (BBB)")
    assert lines[2].startswith("warning: ") and lines[2].endswith(" (CCC)")


def test_a_node_without_panels_runs_as_before(parts) -> None:
    frame = parts["AAA"]
    out = run("sma", {"series": frame["close"]}, window=5)["value"]
    alone = single("sma", {"series": frame["close"]}, window=5)["value"]
    pd.testing.assert_series_equal(out, alone)


def test_wide_of_five_hundred_symbols_puts_each_value_in_its_cell() -> None:
    rng = np.random.default_rng(0)
    stamps = pd.date_range("2020-01-01", periods=30, freq="D", tz="UTC", name="ts")
    frames = []
    for i in range(500):
        keep = np.sort(rng.choice(30, size=20, replace=False))
        frames.append(
            pd.DataFrame({"close": rng.random(20), "symbol": f"S{i:03d}"}, index=stamps[keep])
        )
    long = pd.concat(frames).sort_index(kind="stable")
    w = panel.wide(long, "close")
    assert w.shape == (30, 500) and int(w.notna().sum().sum()) == 500 * 20
    for frame in frames[::97]:
        s = frame["symbol"].iloc[0]
        pd.testing.assert_series_equal(
            w[s].dropna(), frame["close"], check_names=False, check_freq=False
        )
