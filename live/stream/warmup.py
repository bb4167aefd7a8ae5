"""The warm-up of a stream pipeline: how many bars, and the check that none is missing.

**How many bars.** The block's ``warmup = 30d`` is a duration, turned into bars at one bar per
interval (``ceil(30d / 1h) = 720``; on a weekday calendar that is a little more history than the
duration's trading days). Without it the graph says: each node's lookback is the largest of its
lookback params (:data:`LOOKBACK_PARAMS`: ``window``, ``fast``, ``slow`` ...; a node with none
has 0), a node needs its own lookback plus the longest need among the nodes it reads (an
``sma(window=30)`` of an ``rsi(window=14)`` needs 44 bars), and the warm-up is
:data:`WARMUP_FACTOR` times the longest need of the emitted nodes, at least
:data:`WARMUP_MIN_BARS`. The factor leaves recursive indicators (EMA, RSI, ATR: seeded, then
exponentially forgetting their seed) three windows to settle.

**No gap.** The history is fetched to end exactly where the first live bar begins
(``BarSource.history(first_ts, n)``); :func:`missing_bars` then says which bars a calendar
expects between two bars of a symbol: on ``"24/7"`` every interval, on ``"weekdays"`` every
interval except those starting on a Saturday or Sunday (daily equity bars), on ``"none"``
nothing (not checked). A bar missing at the seam between the warm-up and a symbol's first live
bar stops the pipeline (:class:`StreamError`: its values would not be the batch run's); a bar
missing inside the history or later among the live bars is recorded as a warning in the
pipeline's health. Market holidays are gaps on ``"weekdays"``: a source that has them says
``calendar="none"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from dsl.ir import PipelineIR

__all__ = [
    "LOOKBACK_PARAMS",
    "WARMUP_FACTOR",
    "WARMUP_MIN_BARS",
    "default_calendar",
    "graph_lookback",
    "missing_bars",
    "warmup_bars",
]

#: Params that are a node's lookback in bars.
LOOKBACK_PARAMS = frozenset(
    {"window", "fast", "slow", "signal", "vol_window", "periods", "cooldown_bars", "lookback"}
)
#: Warm-up = this times the graph's longest lookback chain (when the block gives none).
WARMUP_FACTOR = 3
#: ... and at least this many bars.
WARMUP_MIN_BARS = 20
#: At most this many missing bars are listed in a message.
_LISTED = 5


def graph_lookback(ir: PipelineIR, emitted: Iterable[str]) -> int:
    """The longest chain of lookbacks (bars) that ends at one of the ``emitted`` nodes."""
    need: dict[str, int] = {}
    for node in ir.nodes:  # topological order
        own = max(
            (
                int(v)
                for k, v in node.params.items()
                if (k in LOOKBACK_PARAMS or k.endswith("_window"))
                and isinstance(v, int)
                and not isinstance(v, bool)
            ),
            default=0,
        )
        need[node.id] = own + max((need[d] for d in node.dependencies()), default=0)
    return max((need[n] for n in emitted), default=0)


def warmup_bars(
    ir: PipelineIR, emitted: Iterable[str], interval_s: int, warmup_s: int | None
) -> int:
    """The warm-up in bars: the block's duration at one bar per interval, else the graph's
    lookback rule (module doc)."""
    if warmup_s is not None:
        return max(1, math.ceil(warmup_s / interval_s))
    return max(WARMUP_MIN_BARS, WARMUP_FACTOR * graph_lookback(ir, emitted))


def default_calendar(interval_s: int) -> str:
    """``"weekdays"`` for daily and longer bars (equities), ``"24/7"`` under a day."""
    return "weekdays" if interval_s >= 86400 else "24/7"


def missing_bars(
    before: pd.Timestamp, after: pd.Timestamp, interval_s: int, calendar: str
) -> list[pd.Timestamp]:
    """The bars ``calendar`` expects strictly between two bars of one symbol (at most a few
    listed: the first :data:`_LISTED`)."""
    if calendar == "none" or after <= before:
        return []
    step = pd.Timedelta(seconds=interval_s)
    out: list[pd.Timestamp] = []
    slot = before + step
    while slot < after and len(out) < _LISTED:
        if calendar != "weekdays" or slot.weekday() < 5:
            out.append(slot)
        slot += step
    return out
