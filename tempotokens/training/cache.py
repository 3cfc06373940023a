"""On-disk cache of frozen-model outputs (BEATs layers, VAE posterior statistics) per clip span."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from .config import CacheConfig


class FeatureCache:
    """``get(kind, key, compute)``: the tensor stored for ``(kind, key)``, computing and storing it
    on a miss.  Kinds not enabled in the config are always computed.  Files are written under a
    temporary name and renamed, so a killed run never leaves a half-written entry."""

    def __init__(self, cfg: CacheConfig, output_dir: str | os.PathLike):
        self.enabled = {"beats": cfg.beats_features, "vae": cfg.vae_latents}
        self.root = Path(cfg.dir) if cfg.dir else Path(output_dir) / "cache"
        self.hits = self.misses = 0

    def get(self, kind: str, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if not self.enabled.get(kind):
            return compute()
        path = self.root / kind / f"{key}.pt"
        if path.is_file():
            self.hits += 1
            return torch.load(path, weights_only=True)
        self.misses += 1
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(value, tmp)
        os.replace(tmp, path)
        return value
