"""Cross-sectional nodes: at each timestamp, compare the symbols of a panel with each other.

Their inputs and outputs are wide (ts × symbol, :mod:`nodes.panel`). Every output row uses only
its own row of the input: nothing crosses time, so nothing looks ahead. A NaN input (a symbol
without a bar, or an indicator still warming up) takes no part in its row. A symbol without a
bar at t gets NaN at t in every output: for target weights that means "no new target" (it
cannot be traded at t anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from nodes import panel
from nodes.base import Node, Params, Port, PortType, register
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Rank", "TopN", "Weights", "ZscoreXs"]

_IN = (Port("x", PortType.SERIES, "a series of several symbols (e.g. an indicator on a panel)"),)


def _wide(value: Any, node: str) -> pd.DataFrame:
    """The wide input as float64, or a NodeError saying a panel is needed."""
    if isinstance(value, pd.Series):
        raise NodeError(
            f"{node} compares symbols with each other at each timestamp, but its input is one "
            "symbol's series: load several symbols (a file with a symbol column, no symbol=...)"
        )
    if not isinstance(value, pd.DataFrame):
        got = type(value).__name__
        raise NodeError(f"{node}: x must be a series of several symbols, got {got}")
    for name in value.columns:
        dtype = value[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise NodeError(f"{node}: column {name!r} of x must be numbers, got {dtype}")
    return value.astype("float64")


def _like(x: pd.DataFrame, values: np.ndarray, cells: np.ndarray) -> pd.DataFrame:
    """``values`` on ``x``'s timestamps and symbols, NaN where a symbol has no bar; the same
    bars as ``x``."""
    out = pd.DataFrame(np.where(cells, values, np.nan), index=x.index, columns=x.columns)
    return panel.set_bars(out, cells)


def _listed(cells: np.ndarray) -> np.ndarray:
    """Cells between each symbol's first and last bar (inclusive)."""
    seen = np.maximum.accumulate(cells, axis=0)
    ahead = np.maximum.accumulate(cells[::-1], axis=0)[::-1]
    return seen & ahead


def _last_known(values: np.ndarray, cells: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """``values`` where a symbol has a bar; in its gaps, the value of its last bar; NaN before
    its first bar and after its last one."""
    filled = pd.DataFrame(np.where(cells, values, np.nan)).ffill().to_numpy()
    # a NaN score on a real bar stays NaN (not the previous bar's): ffill only into gaps
    gap_fill = np.where(cells, values, filled)
    return np.where(listed, gap_fill, np.nan)


def _targets(x: pd.DataFrame, values: np.ndarray, cells: np.ndarray) -> pd.DataFrame:
    """Explicit target weights on every cell (0 outside each symbol's listed span), with
    ``x``'s bars recorded."""
    out = pd.DataFrame(values, index=x.index, columns=x.columns)
    return panel.set_bars(out, cells)


class RankParams(Params):
    """Order and scale of the rank."""

    ascending: bool = Field(True, description="true: the smallest value gets the lowest rank.")
    pct: bool = Field(
        True,
        description="true: rank / number of symbols ranked at that time (in (0, 1]); "
        "false: 1 … number ranked.",
    )


@register
class Rank(Node):
    """Rank the symbols at each timestamp by ``x``.

    Ties share the average of their ranks (pandas' ``method="average"``); NaN stays NaN and
    is not counted. With ``pct=true`` (the default) a rank is divided by the number of symbols
    ranked at that timestamp, so the top symbol has 1 whatever the universe's size.
    """

    name = "rank"
    category = "cross_section"
    panel = "native"
    summary = "Rank of each symbol among the symbols at each time"
    inputs = _IN
    outputs = (Port("value", PortType.SERIES, "the rank per symbol and time"),)
    params_model = RankParams

    def run(self, inputs: Mapping[str, Any], params: RankParams) -> dict[str, Any]:
        """Row-wise rank."""
        x = _wide(inputs["x"], self.name)
        ranked = x.rank(axis=1, method="average", ascending=params.ascending, pct=params.pct)
        return {"value": _like(x, ranked.to_numpy(), panel.bars(x))}


class ZscoreXsParams(Params):
    """Degrees of freedom of the cross-sectional standard deviation."""

    ddof: Literal[0, 1] = Field(
        1, description="1: sample standard deviation (as qlib's CSZScoreNorm); 0: population."
    )


@register
class ZscoreXs(Node):
    """Cross-sectional z-score: (x − mean) / std over the symbols at each timestamp.

    NaN values are left out of the mean and the standard deviation (ddof=1 by default, like
    the rolling ``zscore``) and stay NaN. A timestamp with fewer than two values, or whose
    values are all equal (std 0), gives NaN for every symbol.
    """

    name = "zscore_xs"
    category = "cross_section"
    panel = "native"
    summary = "Z-score of each symbol against the others at each time"
    inputs = _IN
    outputs = (Port("value", PortType.SERIES, "the cross-sectional z-score"),)
    params_model = ZscoreXsParams

    def run(self, inputs: Mapping[str, Any], params: ZscoreXsParams) -> dict[str, Any]:
        """Row-wise standardisation."""
        x = _wide(inputs["x"], self.name)
        v = x.to_numpy()
        valid = ~np.isnan(v)
        count = valid.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid, v, 0.0).sum(axis=1, keepdims=True) / count
            dev = np.where(valid, v - mean, 0.0)
            var = (dev**2).sum(axis=1, keepdims=True) / (count - params.ddof)
            std = np.sqrt(var)
            z = np.where((count >= 2) & (std > 0) & valid, (v - mean) / std, np.nan)
        return {"value": _like(x, z, panel.bars(x))}


class TopNParams(Params):
    """How many symbols to hold on each side and how to weight them."""

    n: int = Field(5, ge=0, le=100_000, description="Symbols held long: the highest scores.")
    bottom: int = Field(0, ge=0, le=100_000, description="Symbols held short: the lowest scores.")
    weighting: Literal["equal", "score"] = Field(
        "equal",
        description="equal: the same weight within a side; score: in proportion to the score "
        "(longs) or to minus the score (shorts), only where that is positive.",
    )
    gross: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Sum of the absolute weights: all of it long, or half long and half short "
        "when bottom > 0. Above 1 is leverage.",
    )

    @model_validator(mode="after")
    def _some_side(self) -> TopNParams:
        if self.n == 0 and self.bottom == 0:
            raise ValueError("n and bottom are both 0: choose at least one symbol")
        return self


@register
class TopN(Node):
    """Target weights from scores: long the ``n`` symbols with the highest score, short the
    ``bottom`` ones with the lowest, at each timestamp (a momentum rotation:
    ``top_n(returns(data.close, periods=126), n=5)``).

    Only symbols with a score (not NaN) are chosen; when fewer than n + bottom have one, the
    long side takes its n first and the short side what is left. Equal scores are broken by
    symbol name, the alphabetically first one chosen first (on both sides), so the result is
    deterministic. The weights of a side sum to ``gross`` (long only) or ``gross / 2`` (both
    sides: dollar-neutral); the others get 0. With ``weighting="score"`` a chosen long is
    weighted by its score and a short by minus its score, only where that is positive (a side
    whose scores are all ≤ 0 holds nothing). A symbol without a bar at t (a halt, a missing day)
    is ranked by the score of its last bar, so every row's weights sum to ``gross`` and the
    symbol gets an explicit target (executed at its next bar); before its first bar and after
    its last one it gets 0. Rebalanced at every timestamp; the portfolio backtest executes the
    weights of t at the next bar's open.
    """

    name = "top_n"
    category = "cross_section"
    panel = "native"
    summary = "Target weights: long the n best scores, short the worst"
    inputs = (Port("x", PortType.SERIES, "the scores (several symbols)"),)
    outputs = (Port("weights", PortType.SIGNAL, "target weight per symbol and time"),)
    params_model = TopNParams

    def run(self, inputs: Mapping[str, Any], params: TopNParams) -> dict[str, Any]:
        """Choose per row, then weight."""
        x = _wide(inputs["x"], self.name)
        cells = panel.bars(x)
        listed = _listed(cells)
        v = _last_known(x.to_numpy(), cells, listed)
        valid = ~np.isnan(v)
        count = valid.sum(axis=1, keepdims=True)
        n_long = np.minimum(params.n, count)
        n_short = np.minimum(params.bottom, count - n_long)
        # rank of each cell on each side (0 = chosen first); a stable sort keeps the columns'
        # (alphabetical) order among equal scores; NaN sorts last on both sides
        long_rank = _stable_ranks(np.where(valid, -v, np.inf), valid)
        short_rank = _stable_ranks(np.where(valid, v, np.inf), valid)
        is_long = valid & (long_rank < n_long)
        is_short = valid & ~is_long & (short_rank < n_short)
        side = params.gross / 2 if params.bottom > 0 and params.n > 0 else params.gross
        weights = _side_weights(v, is_long, 1.0, params.weighting) * side
        weights -= _side_weights(v, is_short, -1.0, params.weighting) * side
        return {"weights": _targets(x, weights + 0.0, cells)}


def _stable_ranks(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row, each cell's position in the stable ascending order of ``keys`` (invalid cells
    get a position past every valid one)."""
    order = np.argsort(keys, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(keys.shape[1])[None, :], axis=1)
    return np.where(valid, ranks, keys.shape[1])


def _side_weights(v: np.ndarray, chosen: np.ndarray, sign: float, weighting: str) -> np.ndarray:
    """Weights of one side summing to 1 per row (0 where nothing is chosen or, by score,
    nothing has a positive score)."""
    if weighting == "equal":
        raw = chosen.astype(np.float64)
    else:
        raw = np.where(chosen, np.maximum(sign * np.nan_to_num(v), 0.0), 0.0)
    total = raw.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, raw / total, 0.0)


class WeightsParams(Params):
    """Scale and sign rule of the weights."""

    gross: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Sum of the absolute weights at each time (above 1: leverage).",
    )
    long_only: bool = Field(
        True, description="true: negative scores get 0; false: they are short weights."
    )


@register
class Weights(Node):
    """Target weights in proportion to any score: w = x / Σ|x| × ``gross`` at each timestamp
    (with ``long_only``, the negative scores count as 0 first).

    A timestamp where every score is NaN or 0 holds nothing (all weights 0). NaN scores weigh 0;
    a symbol without a bar at t weighs by the score of its last bar (0 before its first bar and
    after its last one), so each row sums to ``gross``. Use it to turn a hand-made score (e.g. a
    ``rank`` minus 0.5, long-short) into weights for ``portfolio_backtest``.
    """

    name = "weights"
    category = "cross_section"
    panel = "native"
    summary = "Target weights in proportion to scores, scaled to a gross exposure"
    inputs = (Port("x", PortType.SERIES, "the scores (several symbols)"),)
    outputs = (Port("weights", PortType.SIGNAL, "target weight per symbol and time"),)
    params_model = WeightsParams

    def run(self, inputs: Mapping[str, Any], params: WeightsParams) -> dict[str, Any]:
        """Normalise each row."""
        x = _wide(inputs["x"], self.name)
        cells = panel.bars(x)
        raw = _last_known(x.to_numpy(), cells, _listed(cells))
        v = np.nan_to_num(raw, nan=0.0, posinf=np.nan, neginf=np.nan)
        if np.isnan(v).any():
            raise NodeError(f"{self.name}: x holds an infinite score; scores must be finite")
        if params.long_only:
            v = np.maximum(v, 0.0)
        total = np.abs(v).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(total > 0, v / total, 0.0) * params.gross
        return {"weights": _targets(x, w + 0.0, cells)}
