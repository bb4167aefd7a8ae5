"""What the sweep page reads from a sweep directory: trials sorted and paged, the heatmap of
two swept params, the stitched out-of-sample equity curve, the progress's ETA.

Pure reading of the files :mod:`flows.sweepspec` describes (no database, no Prefect), so every
function here is tested on a directory written from the contract's models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from api.errors import Unprocessable
from api.models.sweep import Heatmap, HeatmapCell, OosEquity, OosPoint, TrialItem, TrialPage
from api.services.run_files import MAX_CHART_POINTS, chart_indices
from dsl.ir import ValuesSpace
from flows.sweepspec import BestTrial, SweepRecord, SweepSpec, TrialRow, read_trials
from flows.trials import space_values

__all__ = [
    "BUILTIN_COLUMNS",
    "Domain",
    "eta_seconds",
    "finished_trials",
    "heatmap",
    "oos_equity",
    "overrides_of",
    "sweep_domains",
    "trial_of",
    "trials_page",
    "with_progress",
]

BUILTIN_COLUMNS = ("trial", "fold", "objective", "status", "seconds")
DEFAULT_BINS = 12
Order = Literal["asc", "desc"]


def _metric_names(rows: Iterable[TrialRow]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.metrics))
    return list(names)


def _column_value(row: TrialRow, column: str) -> Any:
    if column in BUILTIN_COLUMNS:
        return getattr(row, column)
    if column in row.params:
        return row.params[column]
    return row.metrics.get(column)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text; nulls (and NaN) are placed by the caller."""
    if isinstance(value, bool):
        return (0, float(value))
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def finished_trials(directory: Path, fold: int | None = None) -> list[TrialRow]:
    """Every finished trial (of ``fold`` when given) once: the first row of a ``(fold, trial)``
    wins, as the sweep flow counts them (a chunk retried after writing some rows)."""
    rows: dict[tuple[int | None, int], TrialRow] = {}
    for row in read_trials(directory, fold=fold):
        rows.setdefault((row.fold, row.trial), row)
    return list(rows.values())


def with_progress(record: SweepRecord | None, directory: Path) -> SweepRecord | None:
    """The record with ``done`` and ``failed`` counted from the trial files, the same rows the
    trial table, the heatmap and the scatter read, and (while it runs) the best trial among
    them: the flow folds new trials into ``sweep.json`` about twice a second, so its counts
    and best trail the files while the sweep runs, and the page's header would trail its own
    table."""
    if record is None:
        return None
    rows = finished_trials(directory)
    done, failed = len(rows), sum(r.status == "failed" for r in rows)
    pruned = sum(r.status == "pruned" for r in rows)
    update: dict[str, Any] = {}
    if (done, failed, pruned) != (record.done, record.failed, record.pruned):
        update.update(done=done, failed=failed, pruned=pruned)
    if not record.ended:
        best = _best_row(rows, record)
        sign = 1.0 if record.direction == "maximize" else -1.0
        if (
            best is not None
            and best.objective is not None
            and (
                record.best is None
                or record.best.objective is None
                or sign * best.objective > sign * record.best.objective
            )
        ):
            update["best"] = BestTrial(
                trial=best.trial, params=best.params, metrics=best.metrics, objective=best.objective
            )
    return record.model_copy(update=update) if update else record


def _best_row(rows: list[TrialRow], record: SweepRecord) -> TrialRow | None:
    """The best completed trial of the fold being searched (the latest; no fold without
    walk-forward), as the flow picks it."""
    folds = [r.fold for r in rows if r.fold is not None]
    fold = max(folds) if folds else None
    scored = [
        r for r in rows if r.status == "completed" and r.objective is not None and r.fold == fold
    ]
    if not scored:
        return None
    if record.direction == "maximize":
        return max(scored, key=lambda r: (r.objective, -r.trial))
    return min(scored, key=lambda r: (r.objective, r.trial))


def trials_page(
    directory: Path,
    record: SweepRecord | None,
    *,
    sort: str = "trial",
    order: Order = "asc",
    offset: int = 0,
    limit: int = 50,
    fold: int | None = None,
) -> TrialPage:
    """One page of the finished trials sorted by ``sort`` (``trial``, ``fold``, ``objective``,
    ``status``, ``seconds``, a swept param ``node.param`` or a metric name); nulls last in
    either order; 422 with a sentence for a column no trial has."""
    rows = finished_trials(directory, fold=fold)
    params = list(record.params) if record else []
    for row in rows:
        params.extend(p for p in row.params if p not in params)
    columns = [*BUILTIN_COLUMNS, *params, *_metric_names(rows)]
    if sort not in columns:
        known = ", ".join(columns)
        raise Unprocessable(f"The trials cannot be sorted by {sort!r}: sort by one of {known}.")
    present = [r for r in rows if not _missing(_column_value(r, sort))]
    absent = [r for r in rows if _missing(_column_value(r, sort))]
    present.sort(
        key=lambda r: (_sort_key(_column_value(r, sort)), r.trial), reverse=order == "desc"
    )
    ordered = present + sorted(absent, key=lambda r: r.trial)
    items = [
        TrialItem.model_validate(r, from_attributes=True) for r in ordered[offset : offset + limit]
    ]
    return TrialPage(items=items, total=len(rows), columns=columns)


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def trial_of(directory: Path, trial: int, fold: int | None = None) -> TrialRow | None:
    """The finished trial numbered ``trial`` (of ``fold`` when given; None when it has not
    run)."""
    return next((r for r in finished_trials(directory, fold=fold) if r.trial == trial), None)


def overrides_of(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A trial's ``{"node.param": value}`` as a run spec's overrides ``{node: {param: v}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in params.items():
        node, _, param = name.partition(".")
        if not node or not param:
            raise Unprocessable(f"The trial's parameter {name!r} does not name a node's param.")
        out.setdefault(node, {})[param] = value
    return out


def _better(a: TrialRow, b: TrialRow, maximize: bool) -> bool:
    """Whether ``a`` beats ``b`` on the objective (a missing objective never wins)."""
    if _missing(a.objective):
        return False
    if _missing(b.objective):
        return True
    assert a.objective is not None and b.objective is not None
    return a.objective > b.objective if maximize else a.objective < b.objective


@dataclass(frozen=True)
class Domain:
    """What a swept param can take, from the sweep's definition: its ``values`` when finite,
    else the range ``low``..``high`` (``log``: log-uniform)."""

    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False


def sweep_domains(spec: SweepSpec | None) -> dict[str, Domain]:
    """``node.param`` -> its :class:`Domain`, from the sweep block of ``spec`` (empty without)."""
    sweep = spec.run.ir.sweep if spec is not None else None
    if sweep is None:
        return {}
    out: dict[str, Domain] = {}
    for p in sweep.params:
        values = space_values(p) if not _huge(p.space) else None
        if values is not None:
            out[f"{p.node}.{p.param}"] = Domain(values=tuple(values))
        elif not isinstance(p.space, ValuesSpace):
            out[f"{p.node}.{p.param}"] = Domain(
                low=float(p.space.low), high=float(p.space.high), log=p.space.log
            )
    return out


def _huge(space: Any) -> bool:
    """A stepped range too long to list (it is binned over its range all the same)."""
    if isinstance(space, ValuesSpace) or getattr(space, "step", None) is None:
        return False
    return (space.high - space.low) / space.step > 100_000


def heatmap(
    directory: Path,
    record: SweepRecord | None,
    x: str,
    y: str,
    metric: str | None = None,
    fold: int | None = None,
    bins: int = DEFAULT_BINS,
    domains: Mapping[str, Domain] | None = None,
) -> Heatmap:
    """The grid of two swept params: per cell the best trial there (by the sweep's objective and
    direction) and its ``metric`` (default: the objective); cells no trial reached are null. A
    numeric param with more than ``bins`` values is cut into ``bins`` equal-width bins (on a
    log scale for a log-uniform space), each labelled by its middle (``x_binned``/
    ``y_binned``). With the sweep's ``domains`` the axes span every value the param can take,
    so a running sweep's heatmap keeps its shape and fills in; without, they span the values
    the trials so far took."""
    swept = list(record.params) if record else []
    for name in (x, y):
        if swept and name not in swept:
            raise Unprocessable(
                f"{name!r} is not a swept parameter of this sweep: choose from {', '.join(swept)}."
            )
    if x == y:
        raise Unprocessable("The heatmap needs two different parameters for its axes.")
    maximize = record is None or record.direction == "maximize"
    metric = metric or "objective"
    domains = domains or {}
    rows = [r for r in finished_trials(directory, fold) if x in r.params and y in r.params]
    to_x = _axis([r.params[x] for r in rows], bins, domains.get(x))
    to_y = _axis([r.params[y] for r in rows], bins, domains.get(y))
    best: dict[tuple[Any, Any], TrialRow] = {}
    for row in rows:
        key = (to_x(row.params[x]), to_y(row.params[y]))
        if key not in best or _better(row, best[key], maximize):
            best[key] = row
    xs = sorted({k[0] for k in best} | set(to_x.labels), key=_sort_key)
    ys = sorted({k[1] for k in best} | set(to_y.labels), key=_sort_key)
    cells: list[list[HeatmapCell]] = []
    values: list[float] = []
    for yv in ys:
        line: list[HeatmapCell] = []
        for xv in xs:
            cell = best.get((xv, yv))
            value = _cell_value(cell, metric) if cell else None
            if value is not None:
                values.append(value)
            line.append(
                HeatmapCell(
                    value=value,
                    trial=cell.trial if cell else None,
                    fold=cell.fold if cell else None,
                )
            )
        cells.append(line)
    return Heatmap(
        x_param=x,
        y_param=y,
        x_binned=to_x.binned,
        y_binned=to_y.binned,
        metric=metric,
        x=xs,
        y=ys,
        cells=cells,
        min=min(values) if values else None,
        max=max(values) if values else None,
    )


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Axis:
    """value -> the axis label it falls on: itself, or the middle of its bin. ``labels`` are
    the labels the axis shows even with no trial on them (the domain's)."""

    def __init__(
        self, labels: Sequence[Any] = (), bins: tuple[float, float, int, bool] | None = None
    ):
        self.labels = list(labels)
        self._bins = bins
        self.binned = bins is not None

    def __call__(self, value: Any) -> Any:
        if self._bins is None or not _number(value):
            return _hashable(value)
        low, high, n, log = self._bins
        if log:
            low, high, value = math.log(low), math.log(high), math.log(max(value, 1e-300))
        width = (high - low) / n or 1.0
        k = max(0, min(n - 1, int((value - low) / width)))
        return self._label(low + (k + 0.5) * width)

    def _label(self, middle: float) -> float:
        return float(f"{math.exp(middle) if self._bins and self._bins[3] else middle:.6g}")

    @classmethod
    def binning(cls, low: float, high: float, n: int, log: bool) -> _Axis:
        axis = cls(bins=(low, high, n, log))
        lo, hi = (math.log(low), math.log(high)) if log else (low, high)
        width = (hi - lo) / n or 1.0
        axis.labels = list(dict.fromkeys(axis._label(lo + (k + 0.5) * width) for k in range(n)))
        return axis


def _axis(values: list[Any], bins: int, domain: Domain | None = None) -> _Axis:
    """The axis of a param: its domain's values when they are few, bins over its domain's
    range when they are many or continuous; without a domain, from the values the trials took
    (binned when more than ``bins`` distinct numbers)."""
    if domain is not None and domain.values is not None:
        listed = [_hashable(v) for v in domain.values]
        distinct = list(dict.fromkeys(listed))
        numbers = [v for v in distinct if _number(v)]
        if len(distinct) <= bins or len(numbers) != len(distinct):
            return _Axis(labels=distinct)
        return _Axis.binning(float(min(numbers)), float(max(numbers)), bins, log=False)
    if domain is not None and domain.low is not None and domain.high is not None:
        log = domain.log and domain.low > 0
        return _Axis.binning(domain.low, domain.high, bins, log)
    numbers = [v for v in values if _number(v)]
    distinct = set(map(_hashable, values))
    if len(distinct) <= bins or len(numbers) != len(values):
        return _Axis()
    return _Axis.binning(float(min(numbers)), float(max(numbers)), bins, log=False)


def _cell_value(row: TrialRow, metric: str) -> float | None:
    raw = row.objective if metric == "objective" else row.metrics.get(metric)
    return _json_number(float(raw)) if isinstance(raw, int | float) else None


def oos_equity(directory: Path, max_points: int = MAX_CHART_POINTS) -> OosEquity:
    """The walk-forward's stitched out-of-sample curve (``oos_equity.parquet``: index ts,
    ``equity``, ``fold``), at most ``max_points`` points keeping its shape as run charts do."""
    path = directory / "oos_equity.parquet"
    if not path.exists():
        return OosEquity(points=[], note="No out-of-sample curve yet: it is written when the "
                         "walk-forward's last fold has run.")  # fmt: skip
    frame = pd.read_parquet(path)
    equity = frame["equity"].to_numpy(dtype="float64")
    if len(equity) == 0:
        return OosEquity(points=[], note="The out-of-sample curve is empty.")
    drawdown = equity / np.maximum.accumulate(np.nan_to_num(equity, nan=0.0) + 1e-300) - 1.0
    idx = chart_indices(equity, drawdown, max_points)
    stamps = pd.DatetimeIndex(frame.index)[idx].to_pydatetime()
    folds = frame["fold"].to_numpy()[idx].tolist() if "fold" in frame.columns else [None] * len(idx)
    return OosEquity(
        points=[
            OosPoint(ts=ts, equity=e if math.isfinite(e) else 0.0, fold=_int_or_none(f))
            for ts, e, f in zip(stamps, equity[idx].tolist(), folds, strict=True)
        ]
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None


def eta_seconds(
    record: SweepRecord | None, now: float | None = None
) -> tuple[float | None, float | None]:
    """(elapsed, estimated remaining) seconds of a running sweep; None where it cannot be told
    (not started, no pace yet, or ended). The pace counts from the first trial this (re)start
    finished (``record.pace``), so the start-up and a resumed sweep's earlier trials do not
    skew it; the estimate waits for a second trial after that mark."""
    if record is None or record.started_at is None:
        return None, None
    end = record.ended_at if record.ended and record.ended_at else (now or time.time())
    elapsed = max(0.0, end - record.started_at)
    pace = record.pace
    if record.ended or record.n_trials <= 0 or pace is None or record.done <= pace.done:
        return elapsed, None
    since = end - pace.at
    if since <= 0:
        return elapsed, None
    remaining = max(0, record.n_trials - record.done)
    return elapsed, since / (record.done - pace.done) * remaining
