"""The pure features-to-number cores: Fréchet distance, inception score, CLIPSIM aggregation."""

import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from benchmarks.metrics import frechet
from benchmarks.metrics.clipsim import clip_scores, render
from benchmarks.metrics.frechet import FrechetError, frechet_distance, frechet_from_features, gaussian_stats
from benchmarks.metrics.inception import inception_score


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    d1, d2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected, rel=1e-10)


def test_closed_form_for_commuting_covariances():
    # S1 = Q diag(a) Q^T and S2 = Q diag(b) Q^T commute: (S1 S2)^(1/2) = Q diag(sqrt(ab)) Q^T
    q = _rotation(5, 1)
    a, b = np.array([1.0, 2, 3, 4, 5]), np.array([0.5, 4, 1, 9, 2])
    mu1, mu2 = np.zeros(5), np.full(5, 2.0)
    expected = 5 * 4.0 + np.sum(a + b - 2 * np.sqrt(a * b))
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, q @ np.diag(a) @ q.T, mu1, q @ np.diag(a) @ q.T) == pytest.approx(0, abs=1e-9)


def test_stats_biased_and_unbiased_against_numpy():
    x = np.random.default_rng(2).normal(size=(40, 7))
    mu, cov_b = gaussian_stats(x, unbiased=False)
    _, cov_u = gaussian_stats(x, unbiased=True)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov_b, np.cov(x, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov_u, np.cov(x, rowvar=False, bias=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov_u * 39 / 40, cov_b, rtol=1e-10, atol=1e-12)


def _svd_sqrt(m, eps=1e-10):
    u, s, v = torch.svd(m)
    return u @ torch.diag(torch.where(s < eps, s, torch.sqrt(s))) @ v.t()


def _trace_sqrt_fd(x1, x2):
    """An independent computation (VideoGPT/TATS's way): symmetric square roots by torch SVD."""
    x1, x2 = torch.as_tensor(x1, dtype=torch.float64), torch.as_tensor(x2, dtype=torch.float64)
    m1, m2 = x1.mean(0), x2.mean(0)
    s1, s2 = torch.cov(x1.T), torch.cov(x2.T)
    r = _svd_sqrt(s1)
    trace_sqrt = torch.trace(_svd_sqrt(r @ s2 @ r))
    return float(torch.sum((m1 - m2) ** 2) + torch.trace(s1 + s2) - 2 * trace_sqrt)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scipy_path_agrees_with_torch_svd_trace_sqrt(seed):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(24, 24))
    x1 = rng.normal(size=(300, 24)) @ mix
    x2 = rng.normal(size=(250, 24)) @ mix * 1.3 + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = frechet_from_features(x1, x2, unbiased=True)
    assert ours == pytest.approx(_trace_sqrt_fd(x1, x2), rel=1e-6)


def test_fvd_warns_below_the_conventional_n():
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.warns(UserWarning, match="2048"):
        frechet_from_features(x, x + 1, unbiased=False)


def test_a_non_finite_square_root_is_retried_with_eps(monkeypatch):
    calls = []
    real_sqrtm = frechet._sqrtm

    def flaky(a):
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(frechet, "_sqrtm", flaky)
    s1, s2 = np.diag([1.0, 2.0]), np.diag([3.0, 4.0])
    got = frechet_distance(np.zeros(2), s1, np.zeros(2), s2)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(2)) @ (s2 + 1e-6 * np.eye(2)))
    e = 1e-6  # the trace uses the covariances as given; only the square root had eps added
    assert got == pytest.approx(10 - 2 * (np.sqrt((1 + e) * (3 + e)) + np.sqrt((2 + e) * (4 + e))), rel=1e-12)
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.full_like(a, np.inf))
    with pytest.raises(FrechetError, match="not finite"):
        frechet_distance(np.zeros(2), s1, np.zeros(2), s2)


def test_a_large_imaginary_part_is_refused_and_a_small_one_dropped(monkeypatch):
    s = np.eye(2)
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.eye(2) + 0.01j * np.eye(2))
    with pytest.raises(FrechetError, match="imaginary"):
        frechet_distance(np.zeros(2), s, np.zeros(2), s)
    monkeypatch.setattr(frechet, "_sqrtm", lambda a: np.eye(2) + 1e-5j * np.eye(2))
    assert frechet_distance(np.zeros(2), s, np.zeros(2), s) == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    p = np.tile(np.random.default_rng(0).dirichlet(np.ones(7)), (50, 1))
    mean, std = inception_score(p, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 5, 101])
def test_inception_score_of_balanced_one_hot_is_the_class_count(classes):
    p = np.eye(classes)[np.arange(classes * 3) % classes]
    mean, std = inception_score(p, splits=1)
    assert mean == pytest.approx(classes, rel=1e-12) and std == 0.0


def test_inception_score_splits_by_hand():
    """StyleGAN-V's isv2048_ucf: RandomState(42) shuffle, 10 splits, exp(mean KL(p || mean p)), mean and std."""
    p = np.random.default_rng(3).dirichlet(np.ones(6) * 0.3, size=103)
    order = np.arange(len(p))
    np.random.RandomState(42).shuffle(order)
    shuffled = p[order]
    scores = []
    for i in range(10):
        part = shuffled[i * 103 // 10: (i + 1) * 103 // 10]
        kl = [scipy.stats.entropy(row, part.mean(0)) for row in part]
        scores.append(np.exp(np.mean(kl)))
    mean, std = inception_score(p)
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)
    assert p[0, 0] == np.random.default_rng(3).dirichlet(np.ones(6) * 0.3, size=103)[0, 0]  # input not shuffled


def test_inception_score_caps_the_splits_and_refuses_logits():
    p = np.random.default_rng(0).dirichlet(np.ones(4), size=3)
    with pytest.warns(UserWarning, match="using 3"):
        mean, _ = inception_score(p, splits=10)
    assert mean == pytest.approx(1.0)  # one clip per split: every split scores exp(0)
    with pytest.raises(ValueError, match="probabilities"):
        inception_score(np.log(p))


def test_clip_scores_are_row_cosines_scaled():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    expected = [float(a @ b) for a, b in zip(img, txt)]
    np.testing.assert_allclose(clip_scores(img, txt), expected, rtol=1e-12)
    np.testing.assert_allclose(clip_scores(img, txt, scale=100), np.array(expected) * 100, rtol=1e-12)
    assert render("a video of {label}", "dog barking") == "a video of dog barking"
    with pytest.raises(ValueError, match="label"):
        render("a video of {name}", "dog")


def test_each_fvd_lineage_uses_its_covariance():
    from benchmarks.metrics.fvd import fvd

    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(40, 6)), rng.normal(size=(30, 6)) * 1.5 + 0.3

    def by_hand(bias):
        m1, m2 = real.mean(0), fake.mean(0)
        s1, s2 = np.cov(real, rowvar=False, bias=bias), np.cov(fake, rowvar=False, bias=bias)
        r = _svd_sqrt(torch.tensor(s1))
        tr = float(torch.trace(_svd_sqrt(r @ torch.tensor(s2) @ r)))
        return float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2) - 2 * tr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fvd(real, fake, "styleganv") == pytest.approx(by_hand(bias=True), rel=1e-8)
        assert fvd(real, fake, "videogpt") == pytest.approx(by_hand(bias=False), rel=1e-8)
        assert abs(by_hand(True) - by_hand(False)) > 1e-3  # the two differ at this N
