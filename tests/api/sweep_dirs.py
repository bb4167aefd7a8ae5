"""Sweep directories written from the contract's models (flows.sweepspec), without running a
sweep: what the API tests and the UI screenshots read.

:func:`write_sweep` writes ``sweep.json`` and ``trials/*.jsonl`` of a grid over
``fast.window`` × ``slow.window`` (``fast < slow``) whose Sharpe ratio peaks at fast 10 /
slow 50, optionally with walk-forward folds and the stitched out-of-sample curve.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.sweepspec import (
    BestTrial,
    FoldRow,
    Overfit,
    SweepRecord,
    TrialRow,
    sweep_dir,
    write_json_atomic,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "examples" / "sma_crossover.af").read_text()
SWEEP_BLOCK = """
sweep grid {
    fast.window = [5, 10, 20, 40]
    slow.window = [30, 50, 100, 200]
    where fast.window < slow.window
    objective maximize result.sharpe
}
"""
SWEPT = SAMPLE.replace("pipeline sma_crossover", "pipeline sma_sweep") + SWEEP_BLOCK

FAST = [5, 10, 20, 40]
SLOW = [30, 50, 100, 200]


def sharpe_of(fast: int, slow: int) -> float:
    """The planted objective: highest at fast 10, slow 50."""
    return round(1.5 - 0.02 * abs(fast - 10) - 0.004 * abs(slow - 50), 6)


def grid(third: bool = False) -> list[dict[str, Any]]:
    """The grid's params, in trial order (``third``: also ``result.fee_bps`` in 2, 5, 10)."""
    pairs = [{"fast.window": f, "slow.window": s} for f in FAST for s in SLOW if f < s]
    if not third:
        return pairs
    return [{**p, "result.fee_bps": fee} for p in pairs for fee in (2, 5, 10)]


def trial_rows(
    n_done: int | None = None, fold: int | None = None, third: bool = False
) -> list[TrialRow]:
    """The trials of the grid (the first ``n_done`` of them); trial 3 failed."""
    rows = []
    for i, params in enumerate(grid(third)):
        if n_done is not None and i >= n_done:
            break
        sharpe = sharpe_of(params["fast.window"], params["slow.window"])
        sharpe = round(sharpe - 0.03 * params.get("result.fee_bps", 0) + 0.1 * (fold or 0), 6)
        if i == 3:
            rows.append(
                TrialRow(
                    trial=i,
                    fold=fold,
                    params=params,
                    status="failed",
                    error="the backtest had no bars",
                    seconds=0.1,
                )
            )
            continue
        metrics = {
            "sharpe": sharpe,
            "total_return": round(sharpe / 10, 6),
            "max_drawdown": round(-0.3 + sharpe / 10, 6),
            "num_trades": float(40 + i),
        }
        rows.append(
            TrialRow(
                trial=i,
                fold=fold,
                params=params,
                metrics=metrics,
                objective=sharpe,
                seconds=0.2 + i / 100,
            )
        )
    return rows


def write_sweep(
    store_root: Path,
    sweep_key: str,
    *,
    status: str = "completed",
    done: int | None = None,
    walkforward: bool = False,
    flow_run_id: str | None = None,
    warning: bool = True,
    third: bool = False,
) -> Path:
    """Write the sweep directory ``sweeps/<sweep_key>``; returns it. A walk-forward one has the
    grid's trials once per fold (numbered from 0 in each), in a file per fold."""
    folder = sweep_dir(store_root, sweep_key)
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    folds = [0, 1, 2] if walkforward else [None]
    rows: list[TrialRow] = []
    for fold in folds:
        part = trial_rows(done, fold=fold, third=third)
        with (folder / "trials" / f"part-{fold or 0:04d}.jsonl").open("w") as fh:
            for row in part:
                fh.write(row.model_dump_json() + "\n")
        rows.extend(part)
    total = len(grid(third)) * len(folds)
    ok = [r for r in rows if r.objective is not None]
    best = max(ok, key=lambda r: r.objective or -math.inf) if ok else None
    record = SweepRecord(
        sweep_id=sweep_key,
        pipeline="sma_sweep",
        title="SMA sweep",
        ir_hash="0" * 64,
        method="grid",
        objective="maximize result.sharpe",
        params=list(grid(third)[0]),
        status=status,  # type: ignore[arg-type]
        n_trials=total,
        done=len(rows),
        failed=sum(r.status == "failed" for r in rows),
        best=BestTrial(
            trial=best.trial, params=best.params, metrics=best.metrics, objective=best.objective
        )
        if best
        else None,
        overfit=_overfit(len(rows), warning) if status == "completed" else None,
        folds=_folds() if walkforward else None,
        walkforward_efficiency=0.62 if walkforward else None,
        executor="pool",
        workers=2,
        flow_run_id=flow_run_id,
        started_at=time.time() - 12,
        ended_at=time.time() if status in ("completed", "failed", "cancelled") else None,
        timings={"total_s": 12.0},
    )
    write_json_atomic(folder / "sweep.json", record.model_dump(mode="json"))
    if walkforward:
        _write_oos(folder)
    return folder


def _overfit(n: int, warning: bool) -> Overfit:
    dsr = 0.41 if warning else 0.97
    return Overfit(
        n_trials=n,
        deflated_sharpe=dsr,
        pbo=0.35,
        pbo_blocks=8,
        explanation=(
            f"After trying {n} parameter sets, the best Sharpe ratio is {dsr:.0%} likely to "
            "be real (deflated Sharpe ratio); 35% of the time the in-sample winner fell below "
            "the median out of sample (PBO)."
        ),
        warning=(
            f"The best trial's deflated Sharpe ratio is {dsr:.2f}, below 0.95: after {n} trials "
            "its result may well be luck."  # as flows.sweep words it
            if warning
            else None
        ),
    )


def _folds() -> list[FoldRow]:
    out = []
    for i in range(3):
        out.append(
            FoldRow(
                index=i,
                train_begin=f"202{i}-01-01",
                train_end=f"202{i + 1}-12-31",
                test_begin=f"202{i + 2}-01-01",
                test_end=f"202{i + 2}-06-30",
                train_bars=500,
                test_bars=125,
                n_trials=10,
                best_trial=1 + i,
                best_params={"fast.window": [5, 10, 20][i], "slow.window": 50},
                is_metrics={"sharpe": 1.4 - i / 10},
                oos_metrics={"sharpe": 0.9 - i / 5},
                is_objective=1.4 - i / 10,
                oos_objective=0.9 - i / 5,
            )
        )
    return out


def _write_oos(folder: Path) -> None:
    index = pd.date_range("2022-01-01", periods=375, freq="D", name="ts")
    rng = np.random.default_rng(3)
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0004, 0.01, len(index)))
    frame = pd.DataFrame({"equity": equity, "fold": np.repeat([0, 1, 2], 125)}, index=index)
    frame.to_parquet(folder / "oos_equity.parquet")
