"""A torchmetrics-style accumulating AV-Align metric for training and evaluation loops.

It needs no torch: tensors are accepted through ``numpy.asarray`` (after ``.cpu()`` when they
have it).  The per-clip work is :func:`avalign.score.score_arrays`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .protocol import NATIVE, Protocol
from .score import AVAlignResult, score_arrays
from .stats import Summary, summarize
from .variants import DEFAULT_VARIANT, Variant, get_variant


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach()
    if hasattr(x, "cpu"):
        x = x.cpu()
    if hasattr(x, "float") and getattr(x, "dtype", None) is not None and "bfloat16" in str(x.dtype):
        x = x.float()
    return np.asarray(x)


def _frames_uint8(video: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 from (T, H, W, 3) or (T, 3, H, W), uint8 or float in [0, 1]."""
    if video.ndim != 4:
        raise ValueError(f"a video must have 4 dimensions (T, H, W, 3) or (T, 3, H, W), got shape {video.shape}")
    if video.shape[-1] != 3 and video.shape[1] == 3:
        video = video.transpose(0, 2, 3, 1)
    if video.dtype != np.uint8:
        if not np.issubdtype(video.dtype, np.floating):
            raise ValueError(f"frames must be uint8 or float in [0, 1], got {video.dtype}")
        if not np.isfinite(video).all():
            raise ValueError("float frames must be finite (got NaN or infinity)")
        low, high = float(video.min()), float(video.max())
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(f"float frames must be in [0, 1], got values in [{low:.3g}, {high:.3g}] "
                             "(convert [-1, 1] outputs with (x + 1) / 2, or pass uint8)")
        video = np.clip(np.rint(video.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(video)


class AVAlignMetric:
    """Accumulate AV-Align over batches of generated clips.

    Parameters
    ----------
    fps : float
        Frame rate of the videos passed to :meth:`update`, in frames per second.
    sample_rate : int
        Sample rate of the waveforms passed to :meth:`update`, in Hz.
    variant : str or Variant
        AV-Align variant.
    empty_score : float, optional
        Score of clips with no peak in either stream (default: undefined, left out of the mean).
    protocol : Protocol
        Frame rate, size and span each clip is conformed to before scoring (default: as given).

    Examples
    --------
    >>> metric = AVAlignMetric(fps=12, sample_rate=16000)
    >>> metric.update(videos, waveforms)   # (B, T, H, W, 3) uint8 RGB, (B, n) float
    >>> metric.compute()                   # mean AV-Align over defined clips
    """

    def __init__(
        self, fps: float, sample_rate: int, variant: str | Variant = DEFAULT_VARIANT, empty_score: float | None = None,
        protocol: Protocol = NATIVE,
    ):
        self.protocol = protocol
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        self.variant = get_variant(variant)
        self.empty_score = empty_score
        self.results: list[AVAlignResult] = []

    def update(self, videos: Any, waveforms: Any, names: Sequence[str] | None = None) -> list[AVAlignResult]:
        """Score a batch and keep the results.

        Parameters
        ----------
        videos : array or tensor, shape (B, T, H, W, 3) or (B, T, 3, H, W)
            RGB frames, uint8 or float in [0, 1].
        waveforms : array or tensor, shape (B, n) or (B, channels, n)
            Audio in [-1, 1] at ``sample_rate``.
        names : sequence of str, optional
            Names recorded as each result's ``video``.

        Returns
        -------
        list of AVAlignResult
            This batch's results.
        """
        videos, waveforms = _to_numpy(videos), _to_numpy(waveforms)
        if len(videos) != len(waveforms):
            raise ValueError(f"{len(videos)} videos but {len(waveforms)} waveforms")
        batch = [
            score_arrays(
                _frames_uint8(v), self.fps, w, self.sample_rate, self.variant, protocol=self.protocol,
                empty_score=self.empty_score, name=names[i] if names else f"clip{len(self.results) + i}",
            )
            for i, (v, w) in enumerate(zip(videos, waveforms))
        ]
        self.results.extend(batch)
        return batch

    def summary(self) -> Summary:
        """Counts, mean and bootstrap 95% CI of everything seen since the last reset."""
        return summarize(r.to_record() for r in self.results)

    def compute(self) -> float:
        """Mean AV-Align over clips with a score (NaN when there is none)."""
        return self.summary().mean

    def reset(self) -> None:
        self.results = []
