"""Stream pipelines' values: a gapless warm-up, and per bar the batch run's value over the same
bars (one symbol, a panel, a bounded frame); the warm-up rule; a gap at the seam stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from live.stream import StreamPipeline, StreamService
from live.stream.warmup import graph_lookback, missing_bars, warmup_bars
from tests.live.stream_support import (
    batch_values,
    compiled,
    read_csv_events,
    workdir,
    write_af,
)

CROSSOVER = """pipeline {name}

data   = csv_ohlcv(path="data/{file}")
fast   = sma(data.close, window=10)
slow   = ema(data.close, window=30)
mom    = rsi(data.close, window=14)
cross  = crossover(fast, slow)
gate   = threshold(mom, lower=30.0, upper=70.0)
signal = combine(cross, gate, how="mean")

stream {{
    source = replay(speed=0, {source})
    every 1d
    emit cross to csv_append(path="out/cross.csv")
    emit slow to csv_append(path="out/ema.csv")
    emit mom to csv_append(path="out/rsi.csv")
    emit signal to csv_append(path="out/signal.csv")
    emit fast to csv_append(path="out/sma.csv")
}}
"""
EMITTED = {"cross": "cross", "ema": "slow", "rsi": "mom", "signal": "signal", "sma": "fast"}


def _run(folder: Path, ir, **options) -> StreamPipeline:  # type: ignore[no-untyped-def]
    pipeline = StreamPipeline(ir, base_dir=folder, state_dir=folder / "state", **options)
    StreamService([pipeline]).run_until_end(timeout_s=240)
    return pipeline


def _port(ir, node: str) -> str:  # type: ignore[no-untyped-def]
    return next(iter(ir.node(node).outputs))


def test_live_values_are_the_batch_runs_over_the_same_bars(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    path = write_af(
        folder,
        "live",
        CROSSOVER.format(name="live", file="sample_ohlcv.csv", source="start=200, limit=120"),
    )
    ir = compiled(path)
    pipeline = _run(folder, ir)
    health = pipeline.health()
    assert health["state"] == "ended" and health["errors"] == [] and health["gaps"] == []
    # the warm-up rule: the longest lookback chain (ema 30 -> crossover) times 3
    assert health["warmup_bars"] == 90
    recording = pd.read_csv(folder / "data" / "sample_ohlcv.csv", parse_dates=["ts"])
    stamps = pd.DatetimeIndex(recording["ts"]).tz_localize("UTC")
    # the warm-up is the 90 bars right before the first live bar: no gap, no overlap
    assert health["first_live"] == stamps[200].isoformat()
    assert health["warmup_from"] == stamps[110].isoformat()
    live = stamps[200:320]
    assert health["last_bar"] == live[-1].isoformat() and health["evaluations"] == 120

    batch = batch_values(
        ir, folder, str(stamps[110].date()), str(live[-1].date()), list(EMITTED.values())
    )
    for file, node in EMITTED.items():
        events = read_csv_events(folder / "out" / f"{file}.csv")
        # one event per live bar, in order, nothing from the warm-up
        assert list(events["ts"]) == list(live), file
        assert set(events["node"]) == {node} and set(events["symbol"]) == {"ASSET"}
        expected = batch[node][_port(ir, node)].reindex(live)
        assert expected.notna().all(), file
        np.testing.assert_allclose(
            events["value"].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12
        )
    # the signals really change over these bars (not a constant that would match anything)
    assert read_csv_events(folder / "out" / "cross.csv")["value"].nunique() == 2


def test_a_panel_streams_one_value_per_symbol_and_bar(tmp_path: Path) -> None:
    folder = workdir(tmp_path, panel=True)
    path = write_af(
        folder,
        "panel",
        CROSSOVER.format(name="panel", file="panel.csv", source="start=150, limit=120"),
    )
    ir = compiled(path)
    pipeline = _run(folder, ir)
    health = pipeline.health()
    assert health["state"] == "ended" and health["errors"] == [], health
    assert health["bars"] == 120 and health["evaluations"] == 60  # one evaluation per ts
    start, end = health["warmup_from"][:10], health["last_bar"][:10]
    batch = batch_values(ir, folder, start, end, list(EMITTED.values()))
    for file, node in EMITTED.items():
        events = read_csv_events(folder / "out" / f"{file}.csv")
        assert len(events) == 120 and sorted(set(events["symbol"])) == ["S01", "S02"]
        wide = batch[node][_port(ir, node)]  # ts x symbol
        for sym, rows in events.groupby("symbol"):
            expected = wide[sym].reindex(pd.DatetimeIndex(rows["ts"]))
            np.testing.assert_allclose(rows["value"].to_numpy(), expected.to_numpy(), atol=1e-12)
    # the two symbols' values differ: each symbol's own bars were used
    sma = read_csv_events(folder / "out" / "sma.csv").pivot(
        index="ts", columns="symbol", values="value"
    )
    assert (sma["S01"] - sma["S02"]).abs().min() > 0


def test_a_bounded_frame_keeps_windowed_values_exact_and_recursive_ones_close(
    tmp_path: Path,
) -> None:
    folder = workdir(tmp_path)
    path = write_af(
        folder,
        "bounded",
        CROSSOVER.format(name="bounded", file="sample_ohlcv.csv", source="start=100, limit=250"),
    )
    ir = compiled(path)
    pipeline = _run(folder, ir, keep=300)
    assert len(pipeline.frame) == 300  # the ring dropped the oldest 40 of 340 bars
    health = pipeline.health()
    batch = batch_values(
        ir, folder, health["warmup_from"][:10], health["last_bar"][:10], ["fast", "slow"]
    )
    sma = read_csv_events(folder / "out" / "sma.csv").set_index("ts")["value"]
    ema = read_csv_events(folder / "out" / "ema.csv").set_index("ts")["value"]
    assert len(sma) == 250
    # a window of 10 bars never needs a dropped bar: exact
    np.testing.assert_allclose(sma, batch["fast"]["value"].reindex(sma.index), rtol=0, atol=1e-12)
    # an EMA(30): exact while the frame holds every bar since the warm-up began (90 + 210
    # bars); then seeded up to 40 bars later, it forgets its seed by (1 - 2/31) ** ~270
    expected = batch["slow"]["value"].reindex(ema.index)
    diff = (ema - expected).abs() / expected.abs()
    assert diff.iloc[:210].max() == 0
    assert 0 < diff.iloc[210:].max() < 1e-6


def test_the_warmup_rule() -> None:
    text = (
        "pipeline rule\n"
        'data = csv_ohlcv(path="x.csv")\n'
        "a = rsi(data.close, window=14)\n"
        "b = sma(a, window=30)\n"
        "c = ema(data.close, window=50)\n"
        "m = macd(data.close, fast=12, slow=26, signal=9)\n"
    )
    from dsl import compile_source

    ir = compile_source(text).ir
    assert ir is not None
    assert graph_lookback(ir, ["b"]) == 44  # a chain adds up: rsi 14 then sma 30
    assert graph_lookback(ir, ["c", "b"]) == 50
    assert graph_lookback(ir, ["m"]) == 26  # a node's largest lookback param
    assert warmup_bars(ir, ["b"], 3600, None) == 132
    assert warmup_bars(ir, ["b"], 3600, 30 * 86400) == 720  # a duration: one bar per interval
    assert warmup_bars(ir, ["data"], 86400, None) == 20  # at least 20


def test_missing_bars_by_calendar() -> None:
    fri, mon, tue = (pd.Timestamp(d, tz="UTC") for d in ("2024-06-07", "2024-06-10", "2024-06-11"))
    day = 86400
    assert missing_bars(fri, mon, day, "weekdays") == []  # a weekend is no gap
    assert missing_bars(fri, tue, day, "weekdays") == [mon]
    assert missing_bars(fri, mon, day, "24/7") == [
        fri + pd.Timedelta(days=1),
        fri + pd.Timedelta(days=2),
    ]
    assert missing_bars(fri, tue, day, "none") == []
    hour = pd.Timestamp("2024-06-10 10:00", tz="UTC")
    assert missing_bars(hour, hour + pd.Timedelta(hours=3), 3600, "24/7") == [
        hour + pd.Timedelta(hours=1),
        hour + pd.Timedelta(hours=2),
    ]


@pytest.mark.parametrize("calendar", [None, "none"])
def test_a_gap_between_the_warmup_and_the_first_live_bar_stops_the_pipeline(
    tmp_path: Path, calendar: str | None
) -> None:
    folder = workdir(tmp_path)
    recording = pd.read_csv(folder / "data" / "sample_ohlcv.csv")
    first_live = recording["ts"][101]
    hole = recording["ts"][100]  # the last warm-up bar goes missing from the recording
    recording.drop(index=100).to_csv(folder / "data" / "holed.csv", index=False)
    extra = f', calendar="{calendar}"' if calendar else ""
    path = write_af(
        folder,
        "holed",
        CROSSOVER.format(
            name="holed",
            file="sample_ohlcv.csv",
            source=f'path="data/holed.csv", start={first_live}, limit=5{extra}',
        ),
    )
    pipeline = _run(folder, compiled(path))
    health = pipeline.health()
    if calendar is None:  # daily bars: weekdays; the missing Tuesday is a gap
        assert health["state"] == "failed"
        assert f"no bar at {hole}T00:00:00+00:00" in health["failure"]
        assert "first live bar is " + f"{first_live}T00:00:00+00:00" in health["failure"]
        assert not (folder / "out" / "sma.csv").exists()  # nothing emitted on a gapped warm-up
    else:  # calendar="none": the source says its bars are irregular; nothing is checked
        assert health["state"] == "ended" and health["evaluations"] == 5
