"""The interval module on fabricated samples whose true value is known: coverage over 400 seeded draws, the FID
bootstrap's bias against a draw 10x larger, and the verdict rules."""

import numpy as np
import pytest
import torch

from alitok.metrics import generative, intervals

DRAWS = 400


def test_wilson_covers_a_known_share_in_90_to_99_percent_of_draws():
    rng = np.random.default_rng(0)
    for p, n in ((0.85, 200), (0.10, 200), (0.5, 50)):
        hits = rng.binomial(n, p, size=DRAWS)
        covered = [(iv := intervals.wilson(int(k), n)).lo <= p <= iv.hi for k in hits]
        assert 0.90 <= np.mean(covered) <= 0.99, (p, n, np.mean(covered))
    assert intervals.wilson(0, 20).lo == 0.0 and intervals.wilson(20, 20).hi == 1.0
    with pytest.raises(ValueError):
        intervals.wilson(0, 0)


def test_bootstrap_mean_psnr_covers_the_true_mean_in_90_to_99_percent_of_draws():
    """Per-image PSNRs (skewed, as PSNRs of a tokenizer are) around a known mean."""
    rng = np.random.default_rng(1)
    true_mean, covered = 25.0 + 2.0, []
    for d in range(DRAWS):
        psnr = 25.0 + rng.gamma(2.0, 1.0, size=100)  # mean 25 + 2
        iv = intervals.bootstrap_mean(psnr, draws=200, seed=d)
        covered.append(iv.lo <= true_mean <= iv.hi)
    assert 0.90 <= np.mean(covered) <= 0.99, np.mean(covered)


def _gaussian_fid(n: int, rng, dim: int = 8, shift: float = 0.5):
    """FID of n features from N(shift, I) against the exact statistics of N(0, I): the true FID is dim * shift**2."""
    feats = torch.from_numpy(rng.normal(shift, 1.0, size=(n, dim)))
    ref = {"mu": np.zeros(dim), "sigma": np.eye(dim)}

    def fid(rows):
        return generative.fid(generative.statistics(feats[torch.from_numpy(rows)]), ref)

    return fid


def test_fid_bootstrap_bias_is_measured_against_a_draw_ten_times_larger():
    """At n = 200 (the smoke's samples) FID sits above the FID of 2,000 samples of the same source, on average over
    20 seeded draws; the bootstrap's bias estimate has the same sign and size (the FID bias is measured, and the
    report prints the bootstrap's beside each interval)."""
    rng = np.random.default_rng(2)
    small, large, bias = [], [], []
    for d in range(20):
        iv = intervals.bootstrap(_gaussian_fid(200, rng), 200, draws=100, seed=d, unit="samples")
        small.append(iv.value)
        bias.append(iv.bias)
        large.append(_gaussian_fid(2000, rng)(np.arange(2000)))
    measured = np.mean(small) - np.mean(large)
    assert measured > 0 and np.mean(bias) > 0
    assert 0.3 < np.mean(bias) / measured < 3, (np.mean(bias), measured)
    assert "bootstrap over 200 samples, 100 resamples" in iv.method


def test_paired_difference_tells_a_real_gap_from_noise():
    rng = np.random.default_rng(3)
    n = 200
    a = rng.random(n) < 0.9  # hits of two runs, sample by sample (same classes and seeds)
    b = rng.random(n) < 0.5
    same = rng.random(n) < 0.9

    def share(x):
        return lambda rows: float(x[rows].mean())

    gap = intervals.paired_difference(share(a), share(b), n)
    assert intervals.differs(gap) and "better" in intervals.compare_text(gap, "CTF", "S")
    noise = intervals.paired_difference(share(a), share(same), n)
    assert not intervals.differs(noise) and intervals.compare_text(noise, "CTF", "S").startswith("within noise")
    assert "worse" in intervals.compare_text(gap, "gFID CTF", "S", lower_is_better=True)


def test_goal_and_chance_rules_use_the_interval():
    assert intervals.meets(intervals.wilson(180, 200), 0.80)  # 90 % [85 %, 93 %]
    assert not intervals.meets(intervals.wilson(165, 200), 0.80)  # 82.5 %, but its lower end is below 80 %
    assert intervals.at_chance(intervals.wilson(22, 200), 0.10)
    assert not intervals.at_chance(intervals.wilson(40, 200), 0.10)  # 20 %: above chance
    assert not intervals.at_chance(intervals.wilson(3, 10), 0.10), "holds chance, but too wide to say so"


def test_resampled_precision_recall_score_the_whole_set_as_torch_fidelity_does():
    """Row 0 (every sample once) gives torch-fidelity's precision and recall; a resample with repeats gives what
    torch-fidelity gives on that resampled set."""
    rng = np.random.default_rng(4)
    fake = torch.from_numpy(rng.normal(0.3, 1.0, size=(120, 6)))
    real = torch.from_numpy(rng.normal(0.0, 1.0, size=(300, 6)))
    rows = [np.arange(120), intervals.resamples(120, 1, seed=5)[0]]
    got = generative.precision_recall_resampled(fake, real, 3, rows)
    for r, (precision, recall) in zip(rows, got):
        want = generative.precision_recall(fake[torch.from_numpy(r)], real, 3)
        assert (precision, recall) == pytest.approx(want, abs=1 / 120)
    assert generative.precision_recall_resampled(fake, real, 3, rows[:1]).shape == (1, 2)


@pytest.mark.parametrize("n,d", [(200, 64), (8, 256)])
def test_resampled_fid_is_torch_fidelitys_fid_of_each_resample(n, d):
    """The bootstrap's fast FID (one reference square root; an n x n eigenproblem when n < d) equals FID computed
    by torch-fidelity on each resampled set."""
    rng = np.random.default_rng(6)
    pool = torch.from_numpy(rng.normal(0.2, 1.0, size=(n, d)))
    ref = generative.statistics(torch.from_numpy(rng.normal(0.0, 1.1, size=(500, d))))
    rows = [np.arange(n), *intervals.resamples(n, 3, seed=1)]
    want = [generative.fid(generative.statistics(pool[torch.from_numpy(r)]), ref) for r in rows]
    assert generative.fid_resampled(pool, ref, rows) == pytest.approx(want, rel=1e-6)
