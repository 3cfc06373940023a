"""The Fréchet distance between two Gaussians fitted to features (pure numpy; FVD's core).

``FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``, with the square root from
``scipy.linalg.sqrtm`` (called without the ``disp`` argument SciPy 1.16 deprecated) and the real part
of the result kept, as StyleGAN-V does.  Where the square root is not finite it is retried once with
``1e-6 * I`` added to both covariances; a square root whose diagonal has an imaginary part above
``1e-3`` times the diagonal's largest real magnitude (at least 1) is refused (SciPy 1.11.2–1.12's
``sqrtm`` regression gives such results; so can covariances of fewer clips than feature dimensions).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy
import scipy.linalg

#: The sample count FVD is conventionally reported at (it depends on N).
CONVENTIONAL_N = 2048
EPS = 1e-6
MAX_IMAG = 1e-3


class FrechetError(ArithmeticError):
    """The matrix square root could not be taken (one line, with the reason)."""


def gaussian_stats(features: np.ndarray, unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``(N, D)`` features, in float64.

    ``unbiased=False`` is StyleGAN-V's ``raw_cov / N - outer(mu, mu)``; ``unbiased=True`` divides by
    ``N - 1`` (``np.cov``), as VideoGPT, TATS and MM-Diffusion do.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, D) features with N >= 2, got shape {x.shape}")
    mu = x.mean(axis=0)
    if unbiased:
        return mu, np.cov(x, rowvar=False)
    return mu, x.T @ x / x.shape[0] - np.outer(mu, mu)


def _regressed() -> bool:
    """True for SciPy 1.11.2 to 1.12.x, whose ``sqrtm`` returns large spurious imaginary parts."""
    major, minor, *rest = (int(p) if p.isdigit() else 0 for p in scipy.__version__.split(".")[:3])
    return (major, minor) == (1, 12) or ((major, minor) == (1, 11) and (rest[0] if rest else 0) >= 2)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    return scipy.linalg.sqrtm(a)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance of ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Raises
    ------
    FrechetError
        If the square root is not finite even with ``1e-6 * I`` added, or its diagonal has an
        imaginary part above 1e-3.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * EPS
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
        if not np.isfinite(covmean).all():
            raise FrechetError("the covariance product's square root is not finite, even with 1e-6*I added")
    if np.iscomplexobj(covmean):
        diagonal = np.diagonal(covmean)
        imag, scale = float(np.max(np.abs(diagonal.imag))), max(1.0, float(np.max(np.abs(diagonal.real))))
        if imag > MAX_IMAG * scale:
            raise FrechetError(f"the covariance product's square root has an imaginary diagonal of {imag:.3g} "
                               f"(> {MAX_IMAG} x {scale:.3g}): the covariances are too ill-conditioned "
                               f"({'SciPy ' + scipy.__version__ + ' has the 1.11.2-1.12 sqrtm regression; ' if _regressed() else ''}"
                               f"too few clips for the feature size?)")
    value = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    return float(np.real(value))


def frechet_from_features(real: np.ndarray, fake: np.ndarray, unbiased: bool, name: str = "FVD") -> float:
    """Fréchet distance of two ``(N, D)`` feature sets; warns when either N is below 2048.

    The generated set comes first in the square root (``sqrtm(S_fake @ S_real)``), as in StyleGAN-V.
    """
    n = min(len(real), len(fake))
    if n < CONVENTIONAL_N:
        warnings.warn(f"{name} from {len(real)} real and {len(fake)} fake clips: it depends on N, and "
                      f"{CONVENTIONAL_N} is the convention; compare only numbers made with the same N",
                      stacklevel=2)
    return frechet_distance(*gaussian_stats(fake, unbiased), *gaussian_stats(real, unbiased))


#: KVD as JavisBench computes it (``eval/javisbench/src/utils.py``: ``polynomial_mmd``), beside its FVD
#: on the same I3D features: scikit-learn's ``polynomial_kernel`` defaults, one set of all the clips.
KVD_DESCRIPTION = ("unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (d: the feature "
                   "size), on all clips at once (one subset of size N: no subsets, JavisBench's)")


def kvd(real: np.ndarray, fake: np.ndarray) -> float:
    """Kernel Video Distance of ``(N, d)`` and ``(M, d)`` features: ``mean_{i != j} k(f_i, f_j) +
    mean_{i != j} k(r_i, r_j) - 2 mean_{i, j} k(f_i, r_j)`` with ``k(x, y) = (x.y / d + 1)^3``, in
    float64; needs at least 2 clips per side."""
    x, y = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise FrechetError(f"KVD needs at least 2 clips per side, got {n} real and {m} generated")
    gamma = 1.0 / x.shape[1]

    def k(a, b):
        return (gamma * a @ b.T + 1.0) ** 3

    kxx, kyy = k(x, x), k(y, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * k(x, y).mean())
