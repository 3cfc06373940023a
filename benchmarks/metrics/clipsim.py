"""CLIPSIM: how well a video's frames match a text (the paper: its audio's class label).

Per video, the mean over its frames of the cosine between the L2-normalised CLIP image features of
the frame and the L2-normalised text features of ``template.format(label=label)``; then the mean
over videos with a seeded 95% bootstrap interval.  Raw cosine by default; ``scale=100`` gives the
torchmetrics ``CLIPScore`` convention (without its clamp at 0).

Because the cosine is linear in the normalised image features, a clip's feature is the mean of its
frames' normalised image features, and its score is that mean's dot product with the text feature:
exactly the mean of the per-frame cosines.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from avalign.stats import bootstrap_ci

from .videos import Extractor
from .weights import load_clip, locate, tree_sha256

DEFAULT_TEMPLATE = "{label}"


def _features(out) -> torch.Tensor:
    """The projected features from ``get_image_features`` / ``get_text_features`` (a tensor, or a
    model output whose ``pooler_output`` holds them, as in transformers 5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


class ClipSim:
    """A loaded CLIP: image features of clips (:meth:`extractor`) and text features of labels."""

    def __init__(self, weights_dir: str | os.PathLike | None, device: str = "cpu"):
        self.path = locate(weights_dir, "clip")
        self.model, self.processor = load_clip(weights_dir)
        self.model.to(device)
        self.device = device

    @torch.inference_mode()
    def image_features(self, frames: np.ndarray, chunk: int = 32) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 RGB frames → ``(T, D)`` L2-normalised image features (``chunk`` frames
        per model call)."""
        out = []
        for start in range(0, len(frames), chunk):
            pixels = self.processor(images=list(frames[start: start + chunk]), return_tensors="pt")["pixel_values"]
            feats = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out.append(_normalise(feats.float()).cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def text_features(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), D)`` L2-normalised text features."""
        tokens = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return _normalise(_features(self.model.get_text_features(**tokens)).float()).cpu().numpy()

    def extractor(self, num_frames: int | None = None, batch_size: int = 1) -> Extractor:
        """Per clip: the mean of its frames' normalised image features (the first ``num_frames``
        frames, all when None)."""
        def fn(clips: list[np.ndarray]) -> np.ndarray:
            return np.stack([self.image_features(c).astype(np.float64).mean(axis=0) for c in clips])

        return Extractor("clipsim", num_frames, str(self.path), tree_sha256(self.path), fn, batch_size)


def clip_scores(image_means: np.ndarray, text: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Per-clip CLIPSIM: ``scale * <mean normalised image feature, normalised text feature>``, row by
    row, for ``(N, D)`` arrays."""
    return scale * np.einsum("nd,nd->n", np.asarray(image_means, np.float64), np.asarray(text, np.float64))


def summarize_scores(scores: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, ci_low, ci_high)`` of per-clip scores (seeded percentile bootstrap, 95%)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return float("nan"), float("nan"), float("nan")
    low, high = bootstrap_ci(scores, seed=seed)
    return float(scores.mean()), low, high


def render(template: str, label: str) -> str:
    """The text a label is compared with: ``template`` with ``{label}`` filled in."""
    if "{label}" not in template:
        raise ValueError(f"--template {template!r} must contain {{label}}")
    try:
        return template.format(label=label)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"--template {template!r} must contain {{label}} and no other field ({exc})") from None
