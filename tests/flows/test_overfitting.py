"""The sweep's honest statistics (flows.overfitting) against the papers' worked example, cases
worked by hand, and independent implementations (scipy's normal quantiles and moments; CSCV
computed directly on the returns matrix with scipy's ranks)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from flows import overfitting
from flows.overfitting import (
    EULER_GAMMA,
    ReturnMoments,
    block_sums,
    cscv_blocks,
    deflated_sharpe,
    expected_max_sharpe,
    overfit_report,
    pbo,
)


def test_the_dsr_papers_worked_example_gives_0_9004() -> None:
    # Bailey & López de Prado (2014), section "A numerical example": annualised SR 2.5 over
    # 1,250 daily returns (250 a year), skew -3, kurtosis 10, 100 trials whose annualised Sharpe
    # ratios have variance 1/2. Per day: SR = 2.5/sqrt(250), V = 0.5/250.
    # By hand: SR0 = sqrt(0.002) * (0.42278 * 2.32635 + 0.57722 * 2.67981) = 0.11317 (per day);
    # z = (0.15811 - 0.11317) * sqrt(1249) / sqrt(1 + 3 * 0.15811 + 9/4 * 0.15811^2) = 1.2838.
    sr = 2.5 / math.sqrt(250)
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.11317, abs=5e-5)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=5e-4)  # annualised, as printed
    dsr = deflated_sharpe(sr, 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_expected_max_sharpe_matches_scipys_quantiles() -> None:
    for n, v in ((2, 1.0), (10, 0.25), (1000, 0.01)):
        a, b = stats.norm.ppf(1 - 1 / n), stats.norm.ppf(1 - 1 / (n * math.e))
        want = math.sqrt(v) * ((1 - EULER_GAMMA) * a + EULER_GAMMA * b)
        assert expected_max_sharpe(n, v) == pytest.approx(want, rel=1e-12)
    assert expected_max_sharpe(1, 1.0) == 0.0 and expected_max_sharpe(10, 0.0) == 0.0


def test_one_trial_with_normal_returns_deflates_to_the_probabilistic_sharpe() -> None:
    # N = 1: no selection, SR0 = 0; normal returns (skew 0, kurtosis 3): z = SR sqrt(T-1) /
    # sqrt(1 + SR^2 / 2). SR 0.1 over 101 returns: z = 1.0 / sqrt(1.005) = 0.99751.
    dsr = deflated_sharpe(0.1, 101, 0.0, 3.0, 1, 0.0)
    assert dsr == pytest.approx(stats.norm.cdf(1.0 / math.sqrt(1.005)), rel=1e-12)
    assert deflated_sharpe(0.1, 1, 0.0, 3.0, 1, 0.0) is None


def test_return_moments_match_scipy() -> None:
    r = np.random.default_rng(7).standard_t(4, 500) * 0.01 + 0.0005
    m = ReturnMoments.of(np.append(r, np.nan))
    assert m.n == 500
    assert m.mean == pytest.approx(r.mean()) and m.std == pytest.approx(r.std(ddof=1))
    assert m.skew == pytest.approx(stats.skew(r), rel=1e-10)
    assert m.kurtosis == pytest.approx(stats.kurtosis(r, fisher=True) + 3, rel=1e-10)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert ReturnMoments.of([0.01, 0.01, 0.01]).sharpe is None


def _two_bar_blocks(means: list[float], spread: float) -> np.ndarray:
    """A trial whose block b holds the returns means[b] ± spread."""
    return np.concatenate([[m + spread, m - spread] for m in means])


def test_pbo_worked_by_hand_on_four_blocks_and_three_trials() -> None:
    # A is great in blocks 0-1 and terrible in 2-3, C the reverse, B steady. In-sample {0,1}:
    # A is best (SR 50) and worst out of sample (rank 1 of 3: omega 1/4, logit ln(1/3)); {2,3}:
    # the same for C. The four mixed splits: A and C have a mean of 0, B (SR ~ 10) is best in
    # and out of sample (rank 3: omega 3/4, logit ln 3). PBO = 2 / 6.
    a = _two_bar_blocks([0.05, 0.05, -0.05, -0.05], 0.001)
    b = _two_bar_blocks([0.01, 0.01, 0.01, 0.01], 0.001)
    c = _two_bar_blocks([-0.05, -0.05, 0.05, 0.05], 0.001)
    blocks = np.stack([block_sums(x, 4) for x in (a, b, c)])
    result = pbo(blocks)
    assert result.n_splits == 6 and result.pbo == pytest.approx(1 / 3)
    # itertools order: {0,1} {0,2} {0,3} {1,2} {1,3} {2,3}
    want = [math.log(1 / 3), math.log(3), math.log(3), math.log(3), math.log(3), math.log(1 / 3)]
    assert result.logits == pytest.approx(want)


def test_pbo_of_two_trials_that_swap_is_one_and_of_a_dominant_trial_zero() -> None:
    up_down = _two_bar_blocks([0.02, -0.02], 0.001)
    down_up = _two_bar_blocks([-0.02, 0.02], 0.001)
    assert pbo(np.stack([block_sums(x, 2) for x in (up_down, down_up)])).pbo == 1.0
    steady = _two_bar_blocks([0.03, 0.03], 0.001)  # better than down_up in both blocks
    assert pbo(np.stack([block_sums(x, 2) for x in (steady, down_up)])).pbo == 0.0


def _direct_cscv(returns: np.ndarray, s: int) -> list[float]:
    """CSCV as the paper writes it: cut the T x N matrix into S row blocks, for each half
    choice concatenate the rows, Sharpe per column, rank with scipy."""
    parts = np.array_split(returns, s)
    logits = []
    for chosen in itertools.combinations(range(s), s // 2):
        train = np.concatenate([parts[i] for i in chosen])
        test = np.concatenate([parts[i] for i in range(s) if i not in chosen])
        is_sr = train.mean(axis=0) / train.std(axis=0, ddof=1)
        oos_sr = test.mean(axis=0) / test.std(axis=0, ddof=1)
        best = int(np.argmax(is_sr))
        omega = stats.rankdata(oos_sr)[best] / (returns.shape[1] + 1)
        logits.append(math.log(omega / (1 - omega)))
    return logits


@pytest.mark.parametrize("batch_cells", [1 << 20, 12 * 7])  # one batch; splits 7 at a time
def test_pbo_from_block_sums_equals_cscv_on_the_returns_matrix(
    batch_cells: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overfitting, "_PBO_BATCH_CELLS", batch_cells)
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0002, 0.01, (403, 12))  # 403 bars: blocks of 51 and 50
    returns[:, 3] += 0.0008  # one trial with some skill
    want = _direct_cscv(returns, 8)
    got = pbo(np.stack([block_sums(returns[:, k], 8) for k in range(12)]))
    assert got.logits == pytest.approx(want, rel=1e-9)
    assert got.pbo == sum(x <= 0 for x in want) / len(want)


def test_pbo_on_sampled_splits_equals_cscv_on_those_splits() -> None:
    """More splits than ``max_splits``: the drawn ones (a split and its complement are both
    possible) give the direct CSCV's λ of those very splits."""
    rng = np.random.default_rng(4)
    returns = rng.normal(0.0001, 0.01, (640, 9))
    direct = dict(zip(itertools.combinations(range(10), 5), _direct_cscv(returns, 10), strict=True))
    got = pbo(np.stack([block_sums(returns[:, k], 10) for k in range(9)]), max_splits=60)
    drawn = overfitting._splits(10, 60, 0)
    assert got.n_splits == 60 and len(set(drawn)) == 60
    assert any(0 not in d for d in drawn) and any(0 in d for d in drawn)
    assert got.logits == pytest.approx([direct[d] for d in drawn], rel=1e-9)


def test_noise_trials_overfit_about_half_the_time_and_a_real_edge_does_not() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, (2000, 40))
    noise_pbo = pbo(np.stack([block_sums(noise[:, k], 16) for k in range(40)])).pbo
    assert 0.25 < noise_pbo < 0.75
    edge = noise.copy()
    edge[:, 0] += 0.004  # Sharpe 0.4 a bar against noise
    assert pbo(np.stack([block_sums(edge[:, k], 16) for k in range(40)])).pbo == 0.0


def test_the_report_of_a_noise_sweep_warns_and_explains() -> None:
    rng = np.random.default_rng(5)
    trials = rng.normal(0, 0.01, (1000, 50))
    moments = [ReturnMoments.of(trials[:, k]) for k in range(50)]
    s = cscv_blocks(1000)
    report = overfit_report(moments, np.stack([block_sums(trials[:, k], s) for k in range(50)]))
    assert report.n_trials == 50 and s == 16 and report.pbo_blocks == 16
    sharpes = [m.sharpe for m in moments]
    assert report.best == int(np.argmax(sharpes))
    assert report.sharpe_variance == pytest.approx(np.var(sharpes, ddof=1))
    assert report.deflated_sharpe is not None and report.deflated_sharpe < 0.95
    assert report.pbo is not None and 0.2 < report.pbo < 0.8
    assert "the best result may well be luck" in report.explanation
    assert report.explanation.startswith(
        f"Deflated Sharpe ratio {report.deflated_sharpe:.2f} after 50 trials"
    )


def test_too_little_data_gives_null_with_the_reason() -> None:
    assert cscv_blocks(7) == 0 and cscv_blocks(8) == 2 and cscv_blocks(63) == 14
    short = [ReturnMoments.of([0.01, 0.02, -0.01]), ReturnMoments.of([0.0, 0.01, 0.02])]
    blocks = np.stack([block_sums([0.01, 0.02, -0.01], 2), block_sums([0.0, 0.01, 0.02], 2)])
    report = overfit_report(short, blocks)
    assert report.pbo is None
    assert report.notes == ["PBO: needs at least 4 bars in each of 2 blocks (the shortest has 1)"]
    flat = overfit_report([ReturnMoments.of([0.0, 0.0])])
    assert flat.deflated_sharpe is None and flat.notes == ["no trial has returns that vary"]
    assert (
        flat.explanation == "Deflated Sharpe ratio: not available — no trial has returns that vary"
    )
