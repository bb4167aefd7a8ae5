"""ML building blocks without a model: labels, a purged time split, and gating predictions.

**Labels look ahead by design.** ``label_forward_return`` and ``label_triple_barrier`` give the
row of bar t a label computed from bars t+1 … t+h (the horizon h): they are targets to train on,
never features and never signals. Each labelled row carries ``label_end``, the index value (the
timestamp) of the last bar its label used, so that :class:`TrainTestSplit` can purge from the
training part every row whose label reaches into the embargo or the test part. Rows without a
full horizon (the last h) are dropped, never filled. Everything else in a label row (its own
features, a volatility estimate) uses bars <= t only.

``gate`` is an ordinary causal node: its signal at t uses predictions at bars <= t.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from nodes.base import Node, Params, Port, PortType, register
from nodes.builtin.indicators import as_float_series
from nodes.builtin.metrics import CALENDAR_DESCRIPTION, CalendarName, resolve_ppy
from nodes.builtin.signals import _fill_forward, _same_index
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Features", "Gate", "LabelForwardReturn", "LabelTripleBarrier", "TrainTestSplit"]

#: The columns a labelling node adds.
LABEL_COLUMNS: tuple[str, ...] = ("label", "label_return", "label_end")

_DATA_IN = (
    Port("data", PortType.FRAME, "bars or a frame of features with a close column (by time)"),
)
_LABELS_OUT = (
    Port(
        "labels",
        PortType.FRAME,
        "the input's rows with a full horizon, plus label (-1/0/1), label_return and label_end",
    ),
)

#: A feature column's name: what a reference ``feats.<name>`` can select.
FeatureName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]

# the largest horizon and the bars of one block of the triple-barrier scan
_MAX_BARS = 100_000
_BLOCK_CELLS = 4_000_000


def _frame(value: Any, node: str) -> pd.DataFrame:
    if not isinstance(value, pd.DataFrame):
        raise NodeError(f"{node}: data must be a frame, got {type(value).__name__}")
    if not value.index.is_unique or not value.index.is_monotonic_increasing:
        raise NodeError(f"{node}: the rows must be in time order without repeated timestamps")
    return value


def _column(frame: pd.DataFrame, name: str, node: str) -> np.ndarray:
    if name not in frame.columns:
        raise NodeError(f"{node}: data has no {name!r} column (columns: {list(frame.columns)})")
    values = as_float_series(frame[name], f"{node}: column {name!r}").to_numpy()
    bad = np.isnan(values) | (values <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise NodeError(
            f"{node}: column {name!r} has {values[i]} at {frame.index[i]}; prices must be > 0"
        )
    return values


def _labelled(
    frame: pd.DataFrame,
    keep: np.ndarray,
    label: np.ndarray,
    ret: np.ndarray,
    end: np.ndarray,
    node: str,
) -> pd.DataFrame:
    """The rows ``keep`` (positions) of ``frame`` with the label columns added."""
    clash = [c for c in LABEL_COLUMNS if c in frame.columns]
    if clash:
        raise NodeError(f"{node}: data already has {clash}; label the frame once")
    out = frame.iloc[keep].copy()
    out["label"] = label.astype(np.float64)
    out["label_return"] = ret
    out["label_end"] = frame.index[end]
    return out


def _need_rows(n: int, horizon: int, node: str) -> None:
    if n <= horizon:
        raise NodeError(f"{node}: {n} bars leave no row with a full horizon of {horizon} bars")


class LabelForwardReturnParams(Params):
    """Horizon and dead band of the forward-return label."""

    horizon: int = Field(5, ge=1, le=_MAX_BARS, description="Bars ahead: close[t] → close[t+h].")
    threshold: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Return (0.02 = 2%) to beat for 1 (above +threshold) or -1 (below -threshold).",
    )


@register
class LabelForwardReturn(Node):
    """Label bar t by its forward return r = close[t+h] / close[t] − 1: 1 when r > threshold,
    −1 when r < −threshold, else 0.

    Looks ahead by design (a training target, never a feature or a signal). The last ``horizon``
    rows have no full horizon and are dropped. Adds ``label``, ``label_return`` (r) and
    ``label_end`` (the timestamp of bar t+h, what ``train_test_split`` purges by).
    """

    name = "label_forward_return"
    category = "ml"
    panel = "per_symbol"
    summary = "Label bars -1/0/1 by their return over the next h bars (training targets)"
    inputs = _DATA_IN
    outputs = _LABELS_OUT
    params_model = LabelForwardReturnParams

    def run(self, inputs: Mapping[str, Any], params: LabelForwardReturnParams) -> dict[str, Any]:
        """Forward returns to labels."""
        node, h = self.name, params.horizon
        frame = _frame(inputs["data"], node)
        close = _column(frame, "close", node)
        n = len(close)
        _need_rows(n, h, node)
        ret = close[h:] / close[: n - h] - 1.0
        label = np.where(ret > params.threshold, 1, np.where(ret < -params.threshold, -1, 0))
        rows = np.arange(n - h)
        return {"labels": _labelled(frame, rows, label, ret, rows + h, node)}


class LabelTripleBarrierParams(Params):
    """The barriers of the triple-barrier label."""

    horizon: int = Field(10, ge=1, le=_MAX_BARS, description="Bars to the time (vertical) barrier.")
    upper_bps: float | None = Field(
        None, gt=0, le=100_000, description="Upper barrier: close[t] × (1 + upper_bps / 10000)."
    )
    lower_bps: float | None = Field(
        None,
        gt=0,
        lt=10_000,
        description="Lower barrier: close[t] × (1 − lower_bps / 10000).",
    )
    vol_mult: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Instead of bps: both barriers at ± vol_mult × the std of the last "
        "vol_window returns up to t.",
    )
    vol_window: int = Field(
        20, ge=2, le=_MAX_BARS, description="Returns in the volatility of vol_mult."
    )
    time_label: Literal["zero", "sign"] = Field(
        "zero",
        description="When no barrier is touched: 0, or the sign of the return to close[t+h].",
    )

    @model_validator(mode="after")
    def _barriers(self) -> LabelTripleBarrierParams:
        bps = self.upper_bps is not None or self.lower_bps is not None
        if self.vol_mult is not None and bps:
            raise ValueError("give vol_mult or upper_bps/lower_bps, not both")
        if self.vol_mult is None and not bps:
            raise ValueError("give upper_bps, lower_bps (or both), or vol_mult")
        return self


@register
class LabelTripleBarrier(Node):
    """López de Prado's triple-barrier label: the first barrier the price touches in bars
    t+1 … t+h. 1 when the high reaches the upper barrier first, −1 when the low reaches the lower
    one first; when both are reached in the same bar (their order inside the bar is unknown) 0;
    when neither is reached by bar t+h (the time barrier), 0 or, with ``time_label="sign"``, the
    sign of close[t+h] / close[t] − 1.

    Barriers are set at bar t from close[t]: ``upper_bps`` / ``lower_bps`` (one may be absent:
    no such barrier), or ± ``vol_mult`` × the sample std of the last ``vol_window`` simple
    returns up to t (rows before that volatility exists are dropped). Frames without high / low
    columns use close. Looks ahead by design; the last ``horizon`` rows are dropped.
    ``label_end`` is the timestamp of the bar that decided the label (the touch, else t+h) and
    ``label_return`` the return from close[t] to that bar's close.
    """

    name = "label_triple_barrier"
    category = "ml"
    panel = "per_symbol"
    summary = "Label bars by the first of an upper, lower or time barrier touched (targets)"
    inputs = _DATA_IN
    outputs = _LABELS_OUT
    params_model = LabelTripleBarrierParams

    def run(self, inputs: Mapping[str, Any], params: LabelTripleBarrierParams) -> dict[str, Any]:
        """Scan each row's horizon for its first barrier."""
        node, h = self.name, params.horizon
        frame = _frame(inputs["data"], node)
        close = _column(frame, "close", node)
        high = _column(frame, "high", node) if "high" in frame.columns else close
        low = _column(frame, "low", node) if "low" in frame.columns else close
        n = len(close)
        _need_rows(n, h, node)
        m = n - h
        if params.vol_mult is not None:
            returns = pd.Series(close).pct_change(fill_method=None)
            vol = returns.rolling(params.vol_window, min_periods=params.vol_window).std(ddof=1)
            up = low_frac = params.vol_mult * vol.to_numpy()[:m]
        else:
            up = np.full(m, np.inf if params.upper_bps is None else params.upper_bps / 1e4)
            low_frac = np.full(m, np.inf if params.lower_bps is None else params.lower_bps / 1e4)
        rows = np.flatnonzero(~(np.isnan(up) | np.isnan(low_frac)))
        if len(rows) == 0:
            raise NodeError(f"{node}: no row has a volatility and a full horizon; use more bars")
        upper = close[rows] * (1.0 + up[rows])
        lower = close[rows] * (1.0 - low_frac[rows])
        first_up, first_low = _first_touches(high, low, rows, upper, lower, h)
        decided = np.minimum(first_up, first_low)  # offset 0 … h-1 of the bar, h: none
        end = rows + 1 + np.minimum(decided, h - 1)
        ret = close[end] / close[rows] - 1.0
        timed = np.sign(ret) if params.time_label == "sign" else np.zeros(len(rows))
        label = np.where(
            first_up < first_low,
            1.0,
            np.where(first_low < first_up, -1.0, np.where(decided < h, 0.0, timed)),
        )
        return {"labels": _labelled(frame, rows, label, ret, end, node)}


def _first_touches(
    high: np.ndarray,
    low: np.ndarray,
    rows: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    h: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row t (of ``rows``): the offset k (bar t+1+k) of the first high >= its upper
    barrier and of the first low <= its lower one, h where there is none. In blocks of rows, so
    the windows compared never hold more than about ``_BLOCK_CELLS`` values."""
    from numpy.lib.stride_tricks import sliding_window_view

    highs = sliding_window_view(high[1:], h)  # row t: high[t+1 … t+h]
    lows = sliding_window_view(low[1:], h)
    first_up = np.empty(len(rows), dtype=np.int64)
    first_low = np.empty(len(rows), dtype=np.int64)
    step = max(1, _BLOCK_CELLS // h)
    for a in range(0, len(rows), step):
        r, b = rows[a : a + step], slice(a, a + step)
        up_hit = highs[r] >= upper[b, None]
        low_hit = lows[r] <= lower[b, None]
        first_up[b] = np.where(up_hit.any(axis=1), up_hit.argmax(axis=1), h)
        first_low[b] = np.where(low_hit.any(axis=1), low_hit.argmax(axis=1), h)
    return first_up, first_low


class TrainTestSplitParams(Params):
    """Where the test part starts, the embargo gap and the purge."""

    test: float = Field(
        0.2, gt=0, lt=1, description="Fraction of the rows in the test part (the last ones)."
    )
    test_start: date | datetime | None = Field(
        None, description="Instead of the fraction: the test part starts at this time."
    )
    embargo: int = Field(
        0, ge=0, le=_MAX_BARS, description="Rows removed between the train and test parts."
    )
    purge: int | None = Field(
        None,
        ge=0,
        le=_MAX_BARS,
        description="Horizon in rows of labels without label_end: the last `purge` train rows "
        "are dropped. Default: purge by the label_end column.",
    )


@register
class TrainTestSplit(Node):
    """Split a labelled frame by time: ``train`` before, ``test`` after, never shuffled.

    The test part is the last ``test`` fraction of the rows (the first
    floor(n × (1 − test)) rows come before it), or the rows from ``test_start`` on. The
    ``embargo`` rows just before the test part go to neither. **Purging**: a train row whose
    label ends in the embargo or the test part (``label_end`` at or after the first row removed
    for the embargo, or of the test part) is dropped, so no training target sees a bar of the
    test window. The frame's ``label_end`` column (from the ``label_*`` nodes) says where each
    label ends; for labels without it give ``purge`` = their horizon in rows (``purge=0`` for a
    frame without look-ahead targets). With both, a row is dropped when either says so.
    """

    name = "train_test_split"
    category = "ml"
    panel_hint = (
        "splitting several symbols by time is not supported yet: keep one symbol in the "
        'loader (symbol="...")'
    )
    summary = "Split by time with purging and an embargo gap"
    inputs = (Port("data", PortType.FRAME, "a labelled frame, rows in time order"),)
    outputs = (
        Port("train", PortType.FRAME, "the rows before the test part, purged"),
        Port("test", PortType.FRAME, "the last rows"),
    )
    params_model = TrainTestSplitParams

    def run(self, inputs: Mapping[str, Any], params: TrainTestSplitParams) -> dict[str, Any]:
        """Cut, embargo and purge."""
        node = self.name
        frame = _frame(inputs["data"], node)
        n = len(frame)
        has_end = "label_end" in frame.columns
        if not has_end and params.purge is None:
            raise NodeError(
                f"{node}: data has no label_end column to purge by; give purge = the label "
                "horizon in rows (purge=0 if no column looks ahead)"
            )
        k = self._test_start(frame, params)
        if k >= n:
            raise NodeError(f"{node}: the test part is empty ({n} rows, test from row {k})")
        gap = max(k - params.embargo, 0)
        keep = np.zeros(n, dtype=bool)
        keep[: max(gap - (params.purge or 0), 0)] = True
        if has_end:
            try:  # NaT (an unknown end) compares False: such a row is dropped
                before = (frame["label_end"] < frame.index[gap]).to_numpy(dtype=bool)
            except TypeError as exc:
                raise NodeError(
                    f"{node}: label_end ({frame['label_end'].dtype}) must hold values of the "
                    f"rows' index ({frame.index.dtype}): the index of each label's last bar"
                ) from exc
            keep &= before
        train = frame.iloc[np.flatnonzero(keep)]
        if train.empty:
            raise NodeError(
                f"{node}: nothing left to train on: the test part starts at row {k} of {n}, "
                f"embargo {params.embargo} and purging remove the rest"
            )
        self.ctx.log(
            f"train {len(train)} rows ({train.index[0]} … {train.index[-1]}), "
            f"purged {gap - len(train)}, embargo {k - gap}, test {n - k} rows from {frame.index[k]}"
        )
        return {"train": train, "test": frame.iloc[k:]}

    def _test_start(self, frame: pd.DataFrame, params: TrainTestSplitParams) -> int:
        if params.test_start is None:
            return math.floor(len(frame) * (1.0 - params.test))
        index = frame.index
        if not isinstance(index, pd.DatetimeIndex):
            raise NodeError(f"{self.name}: test_start needs rows indexed by timestamps")
        start = pd.Timestamp(params.test_start)
        if index.tz is not None:
            start = start.tz_localize(index.tz) if start.tz is None else start.tz_convert(index.tz)
        elif start.tz is not None:
            start = start.tz_convert(None)
        return int(index.searchsorted(start, side="left"))


class GateParams(Params):
    """Confidence, dead band and cooldown of the gate."""

    center: float = Field(
        0.0,
        ge=-1e12,
        le=1e12,
        description="The prediction's neutral value: 0 for a score, 0.5 for a probability of up.",
    )
    threshold: float = Field(
        0.0,
        ge=0,
        le=1e12,
        description="Least confidence for a position (the confidence input, else |prediction − "
        "center|).",
    )
    neutral_zone: float = Field(
        0.0, ge=0, le=1e12, description="No position while |prediction − center| <= this."
    )
    cooldown_bars: int = Field(
        0,
        ge=0,
        le=_MAX_BARS,
        description="After a change the signal holds this many bars.",
    )
    mode: Literal["long_short", "long_only"] = Field(
        "long_short", description="long_only: where the prediction says short, be flat."
    )


@register
class Gate(Node):
    """Turn predictions into a signal in {−1, 0, 1}.

    At bar t, with x = prediction − ``center``: 0 when the confidence (the ``confidence`` input,
    e.g. the predicted class's probability; else |x|) is below ``threshold`` or when
    |x| <= ``neutral_zone``; else the sign of x (flat instead of short with ``long_only``).
    A NaN prediction or confidence is no information: the previous signal holds (0 at first).
    After the signal changes at bar t it is held through bar t + ``cooldown_bars`` − 1 whatever
    the predictions say; from then on it follows them again (0 and 1 mean no cooldown).
    """

    name = "gate"
    category = "ml"
    panel = "per_symbol"
    summary = "Signal from predictions: confidence threshold, neutral zone, cooldown"
    inputs = (
        Port(
            "prediction", PortType.SERIES, "a score or probability; its side of center is the side"
        ),
        Port("confidence", PortType.SERIES, "confidence of each prediction", optional=True),
    )
    outputs = (Port("signal", PortType.SIGNAL, "target position in {-1, 0, 1}"),)
    params_model = GateParams

    def run(self, inputs: Mapping[str, Any], params: GateParams) -> dict[str, Any]:
        """Gate, then enforce the cooldown."""
        prediction = as_float_series(inputs["prediction"], "gate: prediction")
        x = prediction.to_numpy() - params.center
        unknown = np.isnan(x)
        confidence_in = inputs.get("confidence")
        if confidence_in is not None:
            confidence = as_float_series(confidence_in, "gate: confidence")
            _same_index([("prediction", prediction), ("confidence", confidence)], "gate")
            conf = confidence.to_numpy()
            unknown |= np.isnan(conf)
        else:
            conf = np.abs(x)
        with np.errstate(invalid="ignore"):
            flat = (conf < params.threshold) | (np.abs(x) <= params.neutral_zone)
            side = np.sign(x)
        if params.mode == "long_only":
            side = np.maximum(side, 0.0)
        wanted = np.where(flat, 0.0, side)
        wanted[unknown] = np.nan
        if params.cooldown_bars <= 1:
            out = _fill_forward(wanted, unknown)
        else:
            out = _cooldown(wanted, params.cooldown_bars)
        return {"signal": pd.Series(out + 0.0, index=prediction.index, name="signal")}


def _cooldown(wanted: np.ndarray, bars: int) -> np.ndarray:
    """The wanted position (NaN: keep the last), changed at most once every ``bars`` bars."""
    out = np.empty(len(wanted))
    position, last_change = 0.0, -bars
    for t, w in enumerate(wanted.tolist()):
        if w == w and w != position and t - last_change >= bars:  # w == w: not NaN
            position, last_change = w, t
        out[t] = position
    return out


# ---- features --------------------------------------------------------------------------------


class FeaturesParams(Params):
    """Column names and what to do with the rows where a feature is missing."""

    names: list[FeatureName] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="The columns' names, one per feature in order. Left out, the compiler names "
        "each after its reference: rsi_6 → rsi_6, macd.signal → macd_signal.",
    )
    dropna: Literal["warmup", "any", "none"] = Field(
        "warmup",
        description="warmup: drop the leading rows where a feature is not yet defined (its "
        "warm-up); a missing value after them is an error. any: drop every row with a missing "
        "feature. none: keep every row.",
    )


@register
class Features(Node):
    """The frame ``data`` with one column added per feature (a series computed from the same
    data, e.g. the steps of a ``for`` loop), matched by timestamp: every feature must have
    exactly the frame's index, else an error names it.

    Columns are named by ``names``; the compiler fills it from the references when the step does
    not give it (``rsi_6`` → column ``rsi_6``, ``macd.signal`` → ``macd_signal``). A name given
    twice, or one the frame already has (``close``), is an error (AF211 where the compiler can
    see it, at the reference; otherwise when the step runs).

    ``dropna="warmup"`` (the default) drops the leading rows where some feature is not yet
    defined, the indicators' warm-up, and refuses a missing value after them (dropping a row
    inside the series would make a later label's horizon of h rows span more than h bars);
    ``"any"`` drops every row with a missing feature; ``"none"`` keeps every row. Rows keep their
    timestamps, so labels computed from the result line up with the features by time.
    """

    name = "features"
    category = "ml"
    panel = "per_symbol"
    summary = "Add indicator columns to a frame (feature matrix for training)"
    inputs = (
        Port("data", PortType.FRAME, "bars or a frame, rows in time order"),
        Port(
            "features",
            PortType.SERIES,
            "the feature series, each with the frame's timestamps",
            variadic=True,
            names_param="names",
        ),
    )
    outputs = (
        Port("features", PortType.FRAME, "the frame's rows (warm-up dropped) with the features"),
    )
    params_model = FeaturesParams

    def run(self, inputs: Mapping[str, Any], params: FeaturesParams) -> dict[str, Any]:
        """Check names and timestamps, add the columns, drop the rows ``dropna`` says."""
        node = self.name
        frame = _frame(inputs["data"], node)
        given = inputs["features"]
        series = list(given) if isinstance(given, list | tuple) else [given]
        if not series:
            raise NodeError(f"{node}: needs at least one feature")
        names = _feature_names(series, params.names, node)
        out = frame.copy()
        for name, s in zip(names, series, strict=True):
            if name in frame.columns:
                raise NodeError(
                    f"{node}: feature {name!r} would replace the frame's column {name!r}; "
                    "name it otherwise with names=[...]"
                )
            values = as_float_series(s, f"{node}: feature {name!r}")
            if not values.index.equals(frame.index):
                raise NodeError(
                    f"{node}: feature {name!r} does not have the frame's timestamps "
                    f"({_index_difference(values.index, frame.index)}); compute it from the "
                    "same data"
                )
            out[name] = values.to_numpy()
        missing = out[names].isna().to_numpy().any(axis=1)
        if params.dropna == "none":
            keep = np.ones(len(out), dtype=bool)
        elif params.dropna == "any":
            keep = ~missing
        else:
            first = int(np.argmin(missing)) if not missing.all() else len(out)
            later = np.flatnonzero(missing[first:])
            if len(later):
                i = first + int(later[0])
                bad = [n for n in names if pd.isna(out[n].iloc[i])]
                raise NodeError(
                    f"{node}: feature {bad[0]!r} is missing at {out.index[i]}, after the warm-up; "
                    'use dropna="any" to drop such rows or dropna="none" to keep them'
                )
            keep = np.arange(len(out)) >= first
        result = out[keep]
        if result.empty:
            raise NodeError(f"{node}: no row has every feature defined ({len(out)} rows)")
        dropped = len(out) - len(result)
        self.ctx.log(f"{len(names)} features, {len(result)} rows ({dropped} dropped)")
        return {"features": result}


def _feature_names(series: list[Any], names: list[str] | None, node: str) -> list[str]:
    if names is None:  # an IR written without the compiler: the series' own names
        names = [
            s.name if isinstance(s.name, str) else f"feature_{i + 1}" for i, s in enumerate(series)
        ]
    if len(names) != len(series):
        raise NodeError(f"{node}: {len(names)} names for {len(series)} features")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise NodeError(f"{node}: two features are named {name!r}; give each its own name")
        seen.add(name)
    return list(names)


def _index_difference(got: pd.Index, want: pd.Index) -> str:
    if len(got) != len(want):
        return f"{len(got)} rows vs {len(want)}"
    i = int(np.argmax(got != want))
    return f"row {i}: {got[i]} vs {want[i]}"


class RiskSizeParams(Params):
    """Fraction of equity, volatility target and leverage cap of a position."""

    fraction: float = Field(
        1.0, gt=0, le=1, description="Fraction of equity per unit of signal (1 = all equity)."
    )
    vol_target: float | None = Field(
        None,
        gt=0,
        le=10,
        description="Annualised volatility to aim for: the fraction is scaled by vol_target / "
        "the realised volatility of the data's closes.",
    )
    vol_window: int = Field(
        20, ge=2, le=_MAX_BARS, description="Returns in the realised volatility."
    )
    max_leverage: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Largest absolute exposure, as a fraction of equity (the backtest does not "
        "model leverage, so at most 1).",
    )
    ppy: float | None = Field(
        None,
        gt=0,
        le=1e8,
        description="Periods per year for annualising the volatility; wins over calendar. When "
        "both are absent, inferred from the timestamps (the node's log says how).",
    )
    calendar: CalendarName | None = Field(None, description=CALENDAR_DESCRIPTION)

    @model_validator(mode="after")
    def _ppy_or_calendar(self) -> RiskSizeParams:
        if self.ppy is not None and self.calendar is not None:
            raise ValueError("give ppy or calendar, not both (ppy is the number calendar implies)")
        return self


@register
class RiskSize(Node):
    """Turn a signal (e.g. the gate's {−1, 0, 1}) into a target exposure for ``backtest``.

    exposure[t] = clip(signal[t] × fraction × scale[t], −max_leverage, max_leverage), where
    scale is 1 without ``vol_target`` and else vol_target / vol[t]; vol[t] is the std (ddof=1)
    of the last ``vol_window`` simple close-to-close returns up to and including bar t,
    × √ppy. Exposure is 0 where the signal is NaN and during the volatility's warm-up; where
    vol is 0 later (prices that stop moving) the last defined scale holds. ppy is ``ppy``, else
    from ``calendar``, else inferred from the timestamps' spacing (as the metrics do). The
    backtest executes exposure[t] at the open of t+1; stop-loss and take-profit are the
    backtest's ``stop_loss_bps`` / ``take_profit_bps``.
    """

    name = "risk_size"
    category = "ml"
    panel = "per_symbol"
    summary = "Target exposure from a signal: fraction of equity, volatility target, cap"
    inputs = (
        Port("signal", PortType.SIGNAL, "a position in [-1, 1] per bar (the direction)"),
        Port("data", PortType.OHLCV, "the bars traded: closes for the realised volatility"),
    )
    outputs = (Port("signal", PortType.SIGNAL, "target exposure in [-max_leverage, max_leverage]"),)
    params_model = RiskSizeParams

    def run(self, inputs: Mapping[str, Any], params: RiskSizeParams) -> dict[str, Any]:
        """Scale, cap, and zero the warm-up."""
        data = _frame(inputs["data"], "risk_size")
        close = pd.Series(_column(data, "close", "risk_size"), index=data.index)
        signal = as_float_series(inputs["signal"], "risk_size: signal")
        extra = signal.index.difference(data.index)
        if len(extra):
            raise NodeError(
                f"risk_size: the signal has {len(extra)} timestamp(s) not in the data, first "
                f"{extra[0]}; compute it from the same bars"
            )
        values = signal.reindex(data.index).to_numpy(dtype="float64", copy=True)
        values[np.isnan(values)] = 0.0
        big = np.abs(values) > 1.0 + 1e-9
        if big.any():
            i = int(np.argmax(big))
            raise NodeError(
                f"risk_size: signal {values[i]} at {data.index[i]} is not a position in [-1, 1]"
            )
        values *= params.fraction
        if params.vol_target is not None:
            choice = resolve_ppy(data.index, params.ppy, params.calendar)
            if choice.ppy is None:
                raise NodeError("risk_size: cannot infer ppy from fewer than 2 bars; give ppy")
            self.ctx.log(f"ppy {choice.ppy:g}: {choice.source}")
            for warning in choice.warnings:
                self.ctx.log(f"warning: {warning}")
            returns = close.pct_change(fill_method=None)
            vol = returns.rolling(params.vol_window, min_periods=params.vol_window).std(ddof=1)
            vol_a = vol.to_numpy() * math.sqrt(choice.ppy)
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.where(vol_a > 0, params.vol_target / vol_a, np.nan)
            values *= pd.Series(scale).ffill().fillna(0.0).to_numpy()
        out = np.clip(values, -params.max_leverage, params.max_leverage) + 0.0
        return {"signal": pd.Series(out, index=data.index, name="signal")}
