"""A live (not recorded) source on the wall clock: a group of bars is evaluated `after` past its
bars' close, not before; a symbol whose bar does not come does not hold the others up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from live.stream import StreamEvent, StreamPipeline, StreamService
from runners.papertrade.bars import Bar
from tests.live.stream_support import compiled, workdir, write_af

PIPELINE = """pipeline clock

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=2)

stream {
    source = binance(symbols=["A", "B"], interval=2s)
    every 2s{after}
    emit fast to csv_append(path="out/fast.csv")
}
"""


class WallClockBars:
    """Bars of symbols A and B every 2 s of wall time, each delivered at its close; B's bar of
    the second interval never comes. History: 10 made-up bars a symbol before ``end``."""

    interval = "2s"
    symbols = ("A", "B")

    def __init__(self, count: int) -> None:
        self.count = count
        self.delivered: dict[tuple[str, pd.Timestamp], float] = {}

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        rows = [
            {
                "ts": end - pd.Timedelta(seconds=2 * k),
                "symbol": s,
                "open": 10.0 + k,
                "high": 11.0 + k,
                "low": 9.0 + k,
                "close": 10.0 + k,
                "volume": 1.0,
            }
            for k in range(count, 0, -1)
            for s in self.symbols
        ]
        return pd.DataFrame(rows)

    def bars(self, stop: threading.Event) -> Iterator[Bar]:
        now = time.time()
        first = pd.Timestamp(int(now // 2) * 2, unit="s", tz="UTC")  # the bar open now
        for k in range(self.count):
            ts = first + pd.Timedelta(seconds=2 * k)
            close = ts.timestamp() + 2
            if stop.wait(max(0.0, close - time.time())):
                return
            for s in self.symbols:
                if (s, k) == ("B", 1):
                    continue
                self.delivered[(s, ts)] = time.time()
                yield Bar(s, ts, 20.0 + k, 21.0 + k, 19.0 + k, 20.0 + k, 1.0, "2s")


@pytest.mark.parametrize("after", [1, None])
def test_live_groups_wait_for_after_and_do_not_wait_for_a_missing_symbol(
    tmp_path: Path, after: int | None
) -> None:
    folder = workdir(tmp_path)
    text = PIPELINE.replace("{after}", f" after {after}s" if after else "")
    ir = compiled(write_af(folder, "clock", text))
    seen: list[tuple[StreamEvent, float]] = []
    source = WallClockBars(count=3)
    pipeline = StreamPipeline(
        ir,
        base_dir=folder,
        state_dir=folder / "s",
        source=source,
        on_event=lambda e: seen.append((e, time.time())),
        straggler_s=0.5,
    )
    health = StreamService([pipeline]).run_until_end(timeout_s=120)["pipelines"]["clock"]
    assert health["state"] == "ended" and health["evaluations"] == 3, health
    got = {(e.symbol, pd.Timestamp(e.ts)): (e.value, at) for e, at in seen}
    assert len(got) == 5  # B's second bar never came; A's was evaluated without it
    stamps = sorted({ts for _, ts in got})
    assert [s for s, ts in got if ts == stamps[1]] == ["A"]
    for (symbol, ts), (value, at) in got.items():
        # never before the bar's close plus `after` (1 s), whatever the machine's load;
        # without `after`, a complete group at its close, the one missing B's bar 0.5 s later
        wait = after or (0.5 if ts == stamps[1] else 0)
        assert at >= ts.timestamp() + 2 + wait, (symbol, ts)
        assert at >= source.delivered[(symbol, ts)]
        assert value is not None  # sma(2) over the warm-up's last bar and this one
