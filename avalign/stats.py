"""Summary statistics over many clips: mean AV-Align with a bootstrap confidence interval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np


def bootstrap_ci(
    values: Iterable[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Draws ``n_resamples`` resamples of the values with replacement (NumPy ``default_rng(seed)``,
    so the interval is reproducible) and returns the ``(1-confidence)/2`` and
    ``(1+confidence)/2`` quantiles of their means.  NaN for no values; ``(x, x)`` for one value.
    The values are sorted first, so the interval depends on the values only, not on their order
    (records arrive in completion order, which differs between runs with workers).
    """
    x = np.sort(np.asarray(list(values), dtype=np.float64))
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    step = max(1, 2_000_000 // x.size)  # bound memory: at most ~2e6 indices at once
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class Summary:
    """Aggregate of per-clip results.

    ``mean`` and the CI are over clips with a score (status ``ok``, and ``undefined`` clips when
    an empty score was given); NaN when there is none.
    """

    n: int
    n_ok: int
    n_undefined: int
    n_error: int
    n_scored: int
    mean: float
    ci_low: float
    ci_high: float

    def line(self) -> str:
        """One human-readable line ("no clip scored" when no clip has a score)."""
        if self.n_scored == 0:
            return f"no clip scored; n={self.n}, n_undefined={self.n_undefined}, n_error={self.n_error}"
        return (
            f"AV-Align {self.mean:.4f} (95% CI {self.ci_low:.4f}-{self.ci_high:.4f}) over {self.n_scored} clips; "
            f"n={self.n}, n_undefined={self.n_undefined}, n_error={self.n_error}"
        )


def summarize(records: Iterable[Mapping], seed: int = 0) -> Summary:
    """Summarise records (dicts with ``status`` and ``score``, as written by the CLI)."""
    records = list(records)
    status = [r["status"] for r in records]
    # sorted: the interval must not depend on the order records finished in
    scores = sorted(float(r["score"]) for r in records if r["status"] != "error" and r.get("score") is not None)
    low, high = bootstrap_ci(scores, seed=seed)
    return Summary(
        n=len(records),
        n_ok=status.count("ok"),
        n_undefined=status.count("undefined"),
        n_error=status.count("error"),
        n_scored=len(scores),
        mean=float(np.mean(scores)) if scores else float("nan"),
        ci_low=low,
        ci_high=high,
    )
