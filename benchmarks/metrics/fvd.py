"""Fréchet Video Distance in two published lineages, each exact to its code.

``styleganv`` (StyleGAN-V, ASVA; the default)
    ``i3d_torchscript.pt`` called as ``detector(x, rescale=True, resize=True, return_features=True)``
    on the first 16 frames, ``x`` uint8 RGB ``(B, 3, T, H, W)`` at the clip's own size (the
    detector rescales and resizes); biased covariance (``raw_cov / N - outer(mu, mu)``).
``videogpt`` (VideoGPT, TATS, MM-Diffusion)
    ``i3d_pretrained_400.pt`` in our :class:`~benchmarks.metrics.i3d.InceptionI3d`; each clip's
    short side resized to 224 (bilinear, ``align_corners=False``, long side rounded up), center crop
    224x224, scaled to [-1, 1] as ``(x / 255 - 0.5) * 2``; features: the 400 logits averaged over
    time; unbiased covariance.

Both take the Fréchet distance with :func:`~benchmarks.metrics.frechet.frechet_distance`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .frechet import frechet_from_features
from .videos import Extractor
from .weights import load_i3d, load_torchscript, locate, tree_sha256

#: I3D's smallest input (its temporal pools need 9 frames; 16 is the convention).
MIN_FRAMES = 10


@dataclass(frozen=True)
class Lineage:
    name: str
    weights: str
    unbiased: bool
    description: str


LINEAGES = {
    "styleganv": Lineage("styleganv", "styleganv", False, "StyleGAN-V: TorchScript I3D, rescale+resize inside, "
                         "biased covariance"),
    "videogpt": Lineage("videogpt", "videogpt", True, "VideoGPT/TATS/MM-Diffusion: InceptionI3d state dict, short "
                        "side 224 + center crop, [-1, 1], unbiased covariance"),
}


def to_tensor(clips: list[np.ndarray]) -> torch.Tensor:
    """``B x (T, H, W, 3)`` uint8 → ``(B, 3, T, H, W)`` uint8."""
    return torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).contiguous()


def videogpt_preprocess(x: torch.Tensor, resolution: int = 224) -> torch.Tensor:
    """``(B, 3, T, H, W)`` uint8 → float ``(B, 3, T, 224, 224)`` in [-1, 1] (VideoGPT's preprocessing)."""
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float() / 255.0
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    top, left = (frames.shape[2] - resolution) // 2, (frames.shape[3] - resolution) // 2
    frames = frames[:, :, top: top + resolution, left: left + resolution]
    return ((frames - 0.5) * 2).reshape(b, t, c, resolution, resolution).permute(0, 2, 1, 3, 4).contiguous()


def fvd_extractor(weights_dir: str | os.PathLike | None, lineage: str = "styleganv", num_frames: int = 16,
                  device: str = "cpu", batch_size: int = 8) -> Extractor:
    """The feature pass of one FVD lineage (loads its weights; raises WeightsError)."""
    if lineage not in LINEAGES:
        raise ValueError(f"FVD protocol must be one of {', '.join(LINEAGES)}, got {lineage!r}")
    if num_frames < MIN_FRAMES:
        raise ValueError(f"FVD needs at least {MIN_FRAMES} frames per clip (I3D's temporal pooling), got {num_frames}")
    path = locate(weights_dir, LINEAGES[lineage].weights)
    if lineage == "styleganv":
        detector = load_torchscript(weights_dir, "styleganv").to(device)

        @torch.inference_mode()
        def fn(clips: list[np.ndarray]) -> np.ndarray:
            x = to_tensor(clips).to(device)
            return detector(x, rescale=True, resize=True, return_features=True).float().cpu().numpy()
    else:
        model = load_i3d(weights_dir).to(device)

        @torch.inference_mode()
        def fn(clips: list[np.ndarray]) -> np.ndarray:
            return model(videogpt_preprocess(to_tensor(clips)).to(device)).float().cpu().numpy()

    return Extractor(f"fvd-{lineage}", num_frames, str(path), tree_sha256(path), fn, batch_size)


def fvd(real: np.ndarray, fake: np.ndarray, lineage: str = "styleganv") -> float:
    """FVD of ``(N, D)`` real and fake features with the lineage's covariance (warns below N = 2048)."""
    return frechet_from_features(real, fake, unbiased=LINEAGES[lineage].unbiased)
