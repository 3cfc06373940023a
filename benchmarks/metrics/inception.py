"""Inception Score of videos: C3D fine-tuned on UCF-101, StyleGAN-V's ``isv2048_ucf`` protocol.

``c3d_ucf101.pt`` (TorchScript) is called as ``detector(x)`` with ``x`` the first 16 frames, uint8
RGB ``(B, 3, 16, H, W)``, and returns class probabilities ``(B, 101)``.  The probabilities are
shuffled with ``np.random.RandomState(42)``, cut into 10 splits, and each split scores
``exp(mean(sum(p * (log p - log mean p))))``; IS is the mean and std over splits.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from .videos import Extractor
from .weights import load_torchscript, locate, tree_sha256

NUM_FRAMES = 16
SPLITS = 10
SHUFFLE_SEED = 42


def _xlogy(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p * log(q)`` with ``0 * log(0) = 0`` (a class never predicted adds nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0)


def inception_score(probs: np.ndarray, splits: int = SPLITS, seed: int = SHUFFLE_SEED) -> tuple[float, float]:
    """``(mean, std)`` of the inception score over ``splits`` splits of ``(N, C)`` class probabilities.

    The rows are shuffled with ``np.random.RandomState(seed)`` first (a copy: ``probs`` is not
    changed); split ``i`` is rows ``i*N//splits`` to ``(i+1)*N//splits``.  ``splits`` is capped at N
    with a warning.
    """
    p = np.array(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"need (N, C) probabilities with N >= 1, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("IS needs class probabilities (non-negative rows summing to 1); the detector gave "
                         f"rows summing to {p.sum(axis=1).min():.3g}..{p.sum(axis=1).max():.3g}")
    if splits < 1:
        raise ValueError(f"IS needs at least one split, got {splits}")
    if splits > len(p):
        warnings.warn(f"IS: {splits} splits of {len(p)} clips; using {len(p)}", stacklevel=2)
        splits = len(p)
    np.random.RandomState(seed).shuffle(p)
    scores = []
    for i in range(splits):
        part = p[i * len(p) // splits: (i + 1) * len(p) // splits]
        kl = _xlogy(part, part) - _xlogy(part, np.broadcast_to(part.mean(axis=0, keepdims=True), part.shape))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def is_extractor(weights_dir: str | os.PathLike | None, device: str = "cpu", batch_size: int = 8) -> Extractor:
    """C3D's class probabilities for the first 16 frames of each clip (loads ``c3d_ucf101.pt``)."""
    path = locate(weights_dir, "c3d")
    detector = load_torchscript(weights_dir, "c3d").to(device)

    @torch.inference_mode()
    def fn(clips: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).contiguous().to(device)
        return detector(x).float().cpu().numpy()

    return Extractor("is-c3d", NUM_FRAMES, str(path), tree_sha256(path), fn, batch_size)
