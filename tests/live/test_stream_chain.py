"""Event chaining: a pipeline's events trigger another pipeline (its source ``events()``), one
level deeper each time; two pipelines triggering each other stop at the depth guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from live.stream import MAX_CHAIN_DEPTH, StreamError, StreamPipeline, StreamService
from tests.live.stream_support import compiled, read_csv_events, workdir, write_af

ROOT = """pipeline a

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=5)

stream {
    source = replay(start=200, limit=3)
    emit fast to csv_append(path="out/a.csv")
    emit fast to trigger(target="b")
}
"""
# b and c see each event as a bar (its value as open/high/low/close); sma(window=1) passes it on
ECHO = """pipeline {name}

data = csv_ohlcv(path="data/sample_ohlcv.csv")
echo = sma(data.close, window=1)

stream {{
    source = events()
    emit echo to csv_append(path="out/{name}.csv")
    emit echo to trigger(target="{target}")
}}
"""


def _pipelines(folder: Path) -> list[StreamPipeline]:
    texts = {
        "a": ROOT,
        "b": ECHO.format(name="b", target="c"),
        "c": ECHO.format(name="c", target="b"),
    }
    return [
        StreamPipeline(
            compiled(write_af(folder, n, t)), base_dir=folder, state_dir=folder / "s" / n
        )
        for n, t in texts.items()
    ]


def test_two_pipelines_triggering_each_other_stop_at_the_depth_guard(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    service = StreamService(_pipelines(folder))
    assert service.max_depth == MAX_CHAIN_DEPTH == 8
    health = service.run_until_end(timeout_s=240)
    a, b, c = (health["pipelines"][n] for n in "abc")
    assert [p["state"] for p in (a, b, c)] == ["ended", "ended", "ended"]
    # each of a's 3 events: b at depths 1, 3, 5, 7; c at 2, 4, 6, 8; c's event of depth 8
    # would make depth 9: dropped, and recorded in c's health
    assert a["evaluations"] == 3 and a["chain_dropped"] == 0
    assert b["evaluations"] == 12 and b["chain_dropped"] == 0
    assert c["evaluations"] == 12 and c["chain_dropped"] == 3
    assert len(c["errors"]) == 3 and all("chain depth 9 > 8: c -> b" in e for e in c["errors"])
    # the events carried on: b and c wrote a's values, once per bar (depth 1 and 2)
    sent = read_csv_events(folder / "out" / "a.csv")
    for name, depth in (("b", 1), ("c", 2)):
        got = read_csv_events(folder / "out" / f"{name}.csv")
        assert list(got["ts"]) == list(sent["ts"]) and list(got["value"]) == list(sent["value"])
        assert set(got["depth"]) == {depth}
    assert set(sent["depth"]) == {0} and len(sent) == 3


def test_a_smaller_depth_limit_stops_sooner(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    health = StreamService(_pipelines(folder), max_depth=3).run_until_end(timeout_s=240)
    b, c = health["pipelines"]["b"], health["pipelines"]["c"]
    assert (b["evaluations"], c["evaluations"]) == (6, 3)  # b at 1 and 3, c at 2
    assert (b["chain_dropped"], c["chain_dropped"]) == (3, 0)


def test_a_trigger_needs_a_running_events_pipeline(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    a, _, c = _pipelines(folder)
    with pytest.raises(StreamError, match=r"trigger\(target='b'\): no stream pipeline"):
        StreamService([a, c])
    bars = ROOT.replace("pipeline a", "pipeline b").replace('target="b"', 'target="a"')
    other = StreamPipeline(
        compiled(write_af(folder, "bars", bars)), base_dir=folder, state_dir=folder / "x"
    )
    with pytest.raises(StreamError, match=r"a triggered pipeline's source is events\(\)"):
        StreamService([a, other])
