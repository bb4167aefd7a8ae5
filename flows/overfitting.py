"""Honest statistics of a sweep: how much of the best trial's Sharpe ratio is selection luck.

Two measures, from the papers (docs/overfitting.md works both on small cases):

- **Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the
  probability that the best trial's true Sharpe ratio is above zero, once the expected maximum of
  N unskilled trials' Sharpe ratios (:func:`expected_max_sharpe`) is taken as the bar and the
  returns' length, skew and kurtosis widen the estimate's error (:func:`deflated_sharpe`). All
  Sharpe ratios here are **per bar** (not annualised): mean / std (ddof=1) of simple returns.
- **Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu, "The
  Probability of Backtest Overfitting", 2015) by combinatorially symmetric cross-validation
  (CSCV, :func:`pbo`): the bars are cut into S equal blocks in time; for every way of choosing
  half of them as in-sample, the trial with the best in-sample Sharpe is ranked out of sample;
  PBO is the share of splits where it ranks at or below the median (logit ≤ 0).

Memory stays bounded however long the series: a trial is summarised by its
:class:`ReturnMoments` (for the DSR) and its per-block sums (:func:`block_sums`: count, Σr, Σr²
per block, enough for the Sharpe ratio of any union of blocks), never by its equity curve.

No Prefect, no pandas: numpy and the standard library's normal distribution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

__all__ = [
    "DSR_THRESHOLD",
    "EULER_GAMMA",
    "MAX_CSCV_SPLITS",
    "MIN_BARS_PER_BLOCK",
    "OverfitReport",
    "PboResult",
    "ReturnMoments",
    "block_sums",
    "cscv_blocks",
    "deflated_sharpe",
    "expected_max_sharpe",
    "overfit_report",
    "pbo",
]

EULER_GAMMA = 0.5772156649015329
DSR_THRESHOLD = 0.95  # below: the best result may well be luck, and the report says so
DEFAULT_BLOCKS = 16  # the paper's S
MIN_BARS_PER_BLOCK = 4  # fewer: a block's Sharpe ratio means nothing
MAX_CSCV_SPLITS = 12_870  # C(16, 8): more blocks would not add information for the cost
_N = NormalDist()


@dataclass(frozen=True)
class ReturnMoments:
    """What the DSR needs of one trial's per-bar simple returns."""

    n: int
    mean: float
    std: float  # ddof=1
    skew: float  # the third standardised moment (0 for a normal distribution)
    kurtosis: float  # the fourth, not excess (3 for a normal distribution)

    @property
    def sharpe(self) -> float | None:
        """Per-bar Sharpe ratio: mean / std; None when the returns do not vary."""
        return self.mean / self.std if self.std > 0 and self.n > 1 else None

    @classmethod
    def of(cls, returns: np.ndarray | Sequence[float]) -> ReturnMoments:
        """The moments of ``returns`` (NaN dropped)."""
        r = np.asarray(returns, dtype="float64")
        finite = np.isfinite(r)
        if not finite.all():
            r = r[finite]
        n = len(r)
        if n < 2:
            return cls(n, float(r.mean()) if n else 0.0, 0.0, 0.0, 3.0)
        mean = float(r.mean())
        d = r - mean
        d2 = d * d
        m2 = float(d2.mean())  # central moments, by products (``**`` is several times slower)
        std = math.sqrt(m2 * n / (n - 1))
        if m2 == 0:
            return cls(n, mean, std, 0.0, 3.0)
        m3 = float((d2 * d).sum()) / n  # not np.dot: BLAS threads crawl on a busy machine
        m4 = float((d2 * d2).sum()) / n
        return cls(n, mean, std, m3 / m2**1.5, m4 / (m2 * m2))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """The expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose Sharpe ratios
    vary with ``sharpe_variance`` (the DSR paper's SR₀, eq. after the False Strategy theorem):
    √V · ((1 − γ) Z⁻¹(1 − 1/N) + γ Z⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    a = _N.inv_cdf(1 - 1 / n_trials)
    b = _N.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * a + EULER_GAMMA * b)


def deflated_sharpe(
    sharpe: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    sharpe_variance: float,
) -> float | None:
    """The deflated Sharpe ratio of a best trial with per-bar ``sharpe`` over ``n_obs`` returns
    of ``skew`` and (non-excess) ``kurtosis``, chosen among ``n_trials`` whose per-bar Sharpe
    ratios have variance ``sharpe_variance``:
    Z((SR − SR₀) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²)). None when undefined (T < 2, or the
    denominator is not positive: extreme skew with a large Sharpe ratio)."""
    if n_obs < 2:
        return None
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:
        return None
    return _N.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(spread))


def cscv_blocks(n_obs: int) -> int:
    """How many blocks CSCV cuts ``n_obs`` bars into: the paper's 16, fewer (an even number)
    when the blocks would hold under :data:`MIN_BARS_PER_BLOCK` bars; 0 when not even 2 can."""
    s = min(DEFAULT_BLOCKS, n_obs // MIN_BARS_PER_BLOCK)
    s -= s % 2
    return s if s >= 2 else 0


def block_sums(returns: np.ndarray | Sequence[float], n_blocks: int) -> np.ndarray:
    """``(n_blocks, 3)``: per block of consecutive returns (as equal as the length allows; the
    first ones one longer), the count, Σr and Σr² of its finite returns."""
    r = np.asarray(returns, dtype="float64")
    out = np.zeros((n_blocks, 3))
    if not np.isfinite(r).all():
        for i, part in enumerate(np.array_split(r, n_blocks)):
            part = part[np.isfinite(part)]
            out[i] = (len(part), part.sum(), (part * part).sum())
        return out
    # all finite (the usual case): the squares once, each block a slice of both (the same sums)
    squares = r * r
    size, longer = divmod(len(r), n_blocks)  # np.array_split's blocks: the first ones longer
    start = 0
    for i in range(n_blocks):
        stop = start + size + (i < longer)
        out[i] = (stop - start, r[start:stop].sum(), squares[start:stop].sum())
        start = stop
    return out


def _sharpe_of(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratios from the count, Σr and Σr² of returns (ddof=1); −inf where the
    returns do not vary (such a trial is never 'best', and ranks last)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = (s2 - n * mean * mean) / (n - 1)
        sr = mean / np.sqrt(var)
    return np.where((n > 1) & (var > 1e-300), sr, -np.inf)


@dataclass(frozen=True)
class PboResult:
    """CSCV's outcome: the PBO, each split's logit λ, and how the series was cut."""

    pbo: float
    logits: list[float]
    n_blocks: int
    n_splits: int


def pbo(blocks: np.ndarray, *, max_splits: int = MAX_CSCV_SPLITS, seed: int = 0) -> PboResult:
    """CSCV on ``blocks`` of shape ``(n_trials, S, 3)`` (each trial's :func:`block_sums` over
    the same S blocks of bars; S even). For every choice of S/2 blocks as in-sample (all
    C(S, S/2) of them, or ``max_splits`` drawn with ``seed`` when there are more): n* = the trial
    with the best in-sample Sharpe ratio (the first on a tie); ω = its rank out of sample
    (1 = worst, ties averaged) / (N + 1); λ = ln(ω / (1 − ω)). PBO = share of λ ≤ 0."""
    n_trials, s, _ = blocks.shape
    if s % 2 or s < 2:
        raise ValueError(f"CSCV needs an even number of blocks, not {s}")
    if n_trials < 2:
        raise ValueError("CSCV needs at least two trials")
    splits = _splits(s, max_splits, seed)
    # a split and its complement share their sums (one's in-sample is the other's out of
    # sample): each pair is summed once, from the side holding block 0
    everything = frozenset(range(s))
    pairs: dict[tuple[int, ...], int] = {}
    where: list[tuple[int, bool]] = []  # per split: its pair, and whether it is the complement
    for split in splits:
        flipped = 0 not in split
        key = tuple(sorted(everything - set(split))) if flipped else tuple(split)
        where.append((pairs.setdefault(key, len(pairs)), flipped))
    by_block = [np.ascontiguousarray(blocks[:, :, k].T) for k in range(3)]  # 3 × (S, N)
    total = [b.sum(axis=0) for b in by_block]
    ahead = np.empty(len(pairs))  # λ with the pair's first side in sample
    behind = np.empty(len(pairs))  # λ with its complement in sample
    keys = list(pairs)
    batch = max(1, _PBO_BATCH_CELLS // max(1, n_trials))
    for start in range(0, len(keys), batch):
        chosen = np.asarray(keys[start : start + batch])  # (B, S/2)
        sums = []
        for k in range(3):
            part = by_block[k][chosen[:, 0]]  # (B, N)
            for j in range(1, chosen.shape[1]):
                part += by_block[k][chosen[:, j]]
            sums.append(part)
        first = _sharpe_of(*sums)
        second = _sharpe_of(*(t[None, :] - p for t, p in zip(total, sums, strict=True)))
        ahead[start : start + len(chosen)] = _logits(first, second, n_trials)
        behind[start : start + len(chosen)] = _logits(second, first, n_trials)
    logits = [float(behind[i] if flipped else ahead[i]) for i, flipped in where]
    share = sum(1 for x in logits if x <= 0) / len(logits)
    return PboResult(pbo=share, logits=logits, n_blocks=s, n_splits=len(logits))


def _logits(is_sr: np.ndarray, oos_sr: np.ndarray, n_trials: int) -> np.ndarray:
    """Per split (row): λ = logit of the out-of-sample rank (ties averaged) of the trial with
    the best in-sample Sharpe ratio (the first on a tie), over N + 1."""
    best = np.argmax(is_sr, axis=1)
    v = oos_sr[np.arange(len(oos_sr)), best][:, None]
    rank = np.sum(oos_sr < v, axis=1) + (np.sum(oos_sr == v, axis=1) + 1) / 2
    omega = rank / (n_trials + 1)
    return np.log(omega / (1 - omega))


#: How many (split, trial) cells :func:`pbo` evaluates at once (bounds its memory: ≈ 50 MB).
_PBO_BATCH_CELLS = 1 << 20


def _splits(s: int, max_splits: int, seed: int) -> list[tuple[int, ...]]:
    total = math.comb(s, s // 2)
    if total <= max_splits:
        return list(itertools.combinations(range(s), s // 2))
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < max_splits:
        seen.add(tuple(sorted(rng.choice(s, s // 2, replace=False).tolist())))
    return sorted(seen)


@dataclass(frozen=True)
class OverfitReport:
    """A sweep's honest statistics, shown beside its best result."""

    n_trials: int
    best: int | None  # index of the best trial by per-bar Sharpe ratio
    best_sharpe: float | None  # per bar
    sharpe_variance: float | None  # of the trials' per-bar Sharpe ratios
    expected_max_sharpe: float | None  # SR₀, per bar
    deflated_sharpe: float | None
    pbo: float | None
    pbo_blocks: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def explanation(self) -> str:
        """One plain line for the UI and the CLI."""
        if self.deflated_sharpe is None:
            return "Deflated Sharpe ratio: not available — " + (
                self.notes[0] if self.notes else "too little data"
            )
        verdict = (
            "the best result may well be luck"
            if self.deflated_sharpe < DSR_THRESHOLD
            else "unlikely to be luck alone"
        )
        return (
            f"Deflated Sharpe ratio {self.deflated_sharpe:.2f} after {self.n_trials} trials: "
            f"the probability that the best trial's edge is real, not the best of "
            f"{self.n_trials} tries — {verdict} (below {DSR_THRESHOLD} is a warning)."
        )


def overfit_report(
    moments: Sequence[ReturnMoments],
    blocks: np.ndarray | None = None,
    *,
    max_splits: int = MAX_CSCV_SPLITS,
) -> OverfitReport:
    """The statistics of a sweep whose trials' returns have ``moments`` (one per trial, in
    trial order) and, for the PBO, ``blocks`` ``(n_trials, S, 3)`` over the same bars (None:
    no PBO). Every measure that cannot be computed is None, with the reason in ``notes``."""
    n = len(moments)
    notes: list[str] = []
    sharpes = [m.sharpe for m in moments]
    defined = [(i, s) for i, s in enumerate(sharpes) if s is not None]
    if not defined:
        notes.append("no trial has returns that vary")
        return OverfitReport(n, None, None, None, None, None, None, None, notes)
    best, best_sr = max(defined, key=lambda x: x[1])
    values = np.array([s for _, s in defined])
    variance = float(values.var(ddof=1)) if len(values) > 1 else 0.0
    if n < 2:
        notes.append("one trial: nothing was selected, so there is nothing to deflate")
    m = moments[best]
    dsr = deflated_sharpe(best_sr, m.n, m.skew, m.kurtosis, n, variance)
    if dsr is None:
        notes.append("deflated Sharpe ratio: undefined for these returns' skew and Sharpe ratio")
    pbo_value: float | None = None
    pbo_blocks: int | None = None
    if blocks is None:
        notes.append("PBO: the trials' returns were not kept")
    elif n < 2:
        notes.append("PBO: needs at least two trials")
    else:
        per_block = int(blocks[:, :, 0].min()) if blocks.size else 0
        if blocks.shape[1] < 2 or per_block < MIN_BARS_PER_BLOCK:
            notes.append(
                f"PBO: needs at least {MIN_BARS_PER_BLOCK} bars in each of "
                f"{blocks.shape[1]} blocks (the shortest has {per_block})"
            )
        else:
            result = pbo(blocks, max_splits=max_splits)
            pbo_value, pbo_blocks = result.pbo, result.n_blocks
    return OverfitReport(
        n_trials=n,
        best=best,
        best_sharpe=best_sr,
        sharpe_variance=variance,
        expected_max_sharpe=expected_max_sharpe(n, variance),
        deflated_sharpe=dsr,
        pbo=pbo_value,
        pbo_blocks=pbo_blocks,
        notes=notes,
    )
