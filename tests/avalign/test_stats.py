"""Bootstrap CI and summaries on known data."""

import numpy as np
import pytest

from avalign.stats import bootstrap_ci, summarize


def test_constant_values_have_a_point_interval():
    assert bootstrap_ci([0.3] * 20) == (pytest.approx(0.3), pytest.approx(0.3))


def test_empty_and_single():
    low, high = bootstrap_ci([])
    assert np.isnan(low) and np.isnan(high)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)


def test_deterministic_for_a_seed():
    x = np.random.default_rng(3).random(50)
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)


def test_agrees_with_the_normal_approximation():
    # for n=400 the percentile bootstrap of the mean is close to mean +- 1.96 s / sqrt(n)
    x = np.random.default_rng(0).random(400)
    low, high = bootstrap_ci(x, n_resamples=20_000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert low == pytest.approx(x.mean() - half, abs=0.004)
    assert high == pytest.approx(x.mean() + half, abs=0.004)


def test_coverage_on_known_distribution():
    # the true mean of U(0,1) is 0.5: a 95% interval covers it in about 95% of samples
    rng = np.random.default_rng(1)
    covered = sum(lo <= 0.5 <= hi for lo, hi in (bootstrap_ci(rng.random(60), n_resamples=2000, seed=i)
                                                  for i in range(200)))
    assert 0.88 <= covered / 200 <= 0.99


def test_summarize_counts_and_mean():
    records = [
        {"status": "ok", "score": 1.0},
        {"status": "ok", "score": 0.0},
        {"status": "undefined", "score": None},
        {"status": "undefined", "score": 1.0},  # mapped by --empty-score
        {"status": "error", "score": None},
    ]
    s = summarize(records)
    assert (s.n, s.n_ok, s.n_undefined, s.n_error, s.n_scored) == (5, 2, 2, 1, 3)
    assert s.mean == pytest.approx(2 / 3)
    assert s.ci_low <= s.mean <= s.ci_high


def test_summary_does_not_depend_on_record_order():
    rng = np.random.default_rng(5)
    records = [{"status": "ok", "score": float(x)} for x in rng.random(30)]
    assert summarize(records) == summarize(records[::-1]) == summarize(sorted(records, key=lambda r: r["score"]))


def test_the_interval_depends_on_the_values_not_their_order():
    """Records arrive in completion order (workers, Ray), so one set of scores must give one CI."""
    values = np.random.default_rng(3).uniform(0, 1, 37)
    shuffled = np.random.default_rng(4).permutation(values)
    assert bootstrap_ci(values) == bootstrap_ci(shuffled) == bootstrap_ci(sorted(values, reverse=True))
