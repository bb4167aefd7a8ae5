"""Walk-forward folds by time: which bars each fold trains on and which it is tested on.

From a ``walkforward(train=2y, test=6M, step=6M[, anchored=true])`` line (:class:`WalkForwardIR`)
and the data's timestamps, :func:`folds` lays out the folds on the calendar (``M`` and ``y`` are
calendar months and years, not a fixed number of seconds):

- fold k's training window is [start + k·step, start + k·step + train) — or, anchored, [start,
  start + train + k·step) — where start is the first bar;
- its test window begins where the training window ends, after an optional ``embargo`` gap
  (bars in the gap are in neither), and lasts ``test``;
- the test windows follow one another without overlap (``step`` must be at least ``test``; with
  ``step`` > ``test`` the bars between two test windows are tested by no fold) and the last one
  may be cut short by the end of the data (``partial``); a fold whose window holds no bar (a
  gap in the data) is left out;
- every bar of a test window comes after every bar the fold trained on: nothing the search saw
  can leak into what it is judged on.

Windows are half-open [begin, end) and are returned as bar positions too (``train`` and
``test`` slices of the index). Pure pandas; no Prefect.

:func:`efficiency` is the walk-forward efficiency of the folds' in-sample and out-of-sample
objectives, or the reason it has no meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from dsl.ir import WalkForwardIR

__all__ = ["Fold", "duration_offset", "efficiency", "folds"]

_DURATION = re.compile(r"(\d+)([smhdwMy])\Z")
_UNITS = {
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "d": "days",
    "w": "weeks",
    "M": "months",
    "y": "years",
}


def duration_offset(text: str) -> pd.DateOffset:
    """``2y`` → 2 calendar years, ``6M`` → 6 calendar months, ``30d``, ``4h``, ``15m``, ``10s``."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a duration such as 2y, 6M, 30d, 4h, 15m or 10s")
    amount, unit = int(found.group(1)), found.group(2)
    if amount <= 0:
        raise ValueError(f"the duration {text!r} must be longer than zero")
    return pd.DateOffset(**{_UNITS[unit]: amount})


@dataclass(frozen=True)
class Fold:
    """One fold: its windows in time ([begin, end)) and as bar positions."""

    index: int
    train_begin: pd.Timestamp
    train_end: pd.Timestamp
    test_begin: pd.Timestamp
    test_end: pd.Timestamp
    train: slice
    test: slice
    partial: bool  # the test window is cut short by the end of the data

    @property
    def train_bars(self) -> int:
        """How many bars the fold trains on."""
        return int(self.train.stop - self.train.start)

    @property
    def test_bars(self) -> int:
        """How many bars the fold is tested on."""
        return int(self.test.stop - self.test.start)


def folds(index: pd.DatetimeIndex, wf: WalkForwardIR, embargo: str | None = None) -> list[Fold]:
    """The folds of ``wf`` over bars stamped ``index`` (sorted), with ``embargo`` (a duration,
    or None) between each training and test window. ValueError, as a sentence, when the
    windows cannot be laid out (test windows that would overlap, data too short for one fold).
    """
    if len(index) == 0:
        raise ValueError("walk-forward needs data: there are no bars")
    if not index.is_monotonic_increasing:
        raise ValueError("walk-forward needs bars in time order")
    train, test, step = (duration_offset(x) for x in (wf.train, wf.test, wf.step))
    gap = duration_offset(embargo) if embargo else None
    first, last = index[0], index[-1]
    if first + step < first + test:
        raise ValueError(
            f"walk-forward step={wf.step} is shorter than test={wf.test}: the test windows "
            "would overlap and bars would be judged twice; make step at least as long as test"
        )
    spacing = (index[1:] - index[:-1]).median() if len(index) > 1 else pd.Timedelta(0)
    out: list[Fold] = []
    k = 0
    while True:
        # each bound is one offset from the first bar (calendar-exact: Jan 31 + 2 × 1M is
        # Mar 31, where Jan 31 + 1M + 1M would be Mar 29)
        train_begin = first if wf.anchored else _at(first, (step, k))
        train_end = _at(first, (step, k), (train, 1))
        test_begin = _at(first, (step, k), (train, 1), *([(gap, 1)] if gap else []))
        if test_begin > last:
            break
        test_end = _at(first, (step, k), (train, 1), *([(gap, 1)] if gap else []), (test, 1))
        fold = _fold(index, len(out), train_begin, train_end, test_begin, test_end)
        if fold.train_bars and fold.test_bars:  # a gap in the data can empty a window
            out.append(replace(fold, partial=test_end > last + spacing))
        k += 1
    if not out:
        span = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        raise ValueError(
            f"the data ({span}) is too short for one walk-forward fold: it needs train={wf.train}"
            + (f", embargo={embargo}" if embargo else "")
            + " and at least one bar of test after it"
        )
    return out


def _at(start: pd.Timestamp, *parts: tuple[pd.DateOffset, int]) -> pd.Timestamp:
    """``start`` + the sum of ``offset × times`` over ``parts``, applied as one offset."""
    total: dict[str, int] = {}
    for offset, times in parts:
        for key, value in offset.kwds.items():
            total[key] = total.get(key, 0) + value * times
    return start + pd.DateOffset(**total) if any(total.values()) else start


def _fold(
    index: pd.DatetimeIndex,
    k: int,
    train_begin: pd.Timestamp,
    train_end: pd.Timestamp,
    test_begin: pd.Timestamp,
    test_end: pd.Timestamp,
) -> Fold:
    pos = index.searchsorted
    train = slice(int(pos(train_begin, "left")), int(pos(train_end, "left")))
    test = slice(int(pos(test_begin, "left")), int(pos(test_end, "left")))
    return Fold(
        index=k,
        train_begin=train_begin,
        train_end=train_end,
        test_begin=test_begin,
        test_end=test_end,
        train=train,
        test=test,
        partial=False,
    )


def efficiency(
    pairs: Sequence[tuple[float | None, float | None]],
    direction: Literal["maximize", "minimize"],
) -> tuple[float | None, str | None]:
    """The walk-forward efficiency of the folds' (in-sample, out-of-sample) objectives, and
    None with the reason when the ratio would mean nothing: ``(value, None)`` or
    ``(None, reason)``.

    A fold without a best trial (no in-sample objective) is left out. Maximised: mean OOS /
    mean IS, only when the mean IS is above 0 (over a loss, -0.5 / -1.0 = 0.5 would look like
    success). Minimised (a drawdown's size, a volatility): mean IS / mean OOS, only when both
    are above 0, so that it reads the same way: 1 held up, 0.5 is twice as bad out of sample.
    Rounded to 6 places.
    """
    scored = [(i, is_, oos) for i, (is_, oos) in enumerate(pairs) if is_ is not None]
    if not scored:
        return None, "no fold found a best trial in sample, so there is nothing to compare"
    missing = [i + 1 for i, _, oos in scored if oos is None]
    if missing:
        which = ", ".join(str(i) for i in missing)
        return None, f"the out-of-sample run of fold {which} gave no objective"
    is_mean = sum(is_ for _, is_, _ in scored if is_ is not None) / len(scored)
    oos_mean = sum(oos for _, _, oos in scored if oos is not None) / len(scored)
    if direction == "maximize":
        if is_mean <= 0:
            return None, (
                f"the mean in-sample objective is {is_mean:.4g}, not above 0: a ratio over it "
                "means nothing (a loss out of sample over a loss in sample would look good)"
            )
        return round(oos_mean / is_mean, 6), None
    if is_mean <= 0 or oos_mean <= 0:
        return None, (
            f"for a minimised objective the efficiency is mean in-sample / mean out-of-sample, "
            f"which means something only when both are above 0 (here {is_mean:.4g} and "
            f"{oos_mean:.4g})"
        )
    return round(is_mean / oos_mean, 6), None
