"""On-disk cache of frozen-model outputs (BEATs layers, VAE posterior statistics) per clip span.

Entries live under ``ROOT/<kind>/<producer>/``, where ``producer`` is a digest of what made them:
the weights of the model that computed them (a digest of every tensor), the model's class and
config, and the settings that shape them (``data.fps``, frames, size, dtype).  Another checkpoint,
time scale, size or model therefore misses the cache instead of reusing stale features;
``producer.json`` beside the entries says what made them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from avalign.io import atomic_path, write_json_atomic

from .config import CacheConfig


class FeatureCache:
    """``get(kind, key, compute)``: the tensor stored for ``(kind, key)``, computing and storing it
    on a miss.  Kinds not enabled in the config are always computed.  Files are written under a
    temporary name and renamed, so a killed run never leaves a half-written entry."""

    def __init__(self, cfg: CacheConfig, output_dir: str | os.PathLike, producers: dict[str, dict] | None = None):
        self.enabled = {"beats": cfg.beats_features, "vae": cfg.vae_latents}
        self.root = Path(cfg.dir) if cfg.dir else Path(output_dir) / "cache"
        self.hits = self.misses = 0
        #: per kind, what produces its entries (see :func:`producer`) and its digest
        self.producers = dict(producers or {})
        self.digests = {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16]
                        for k, v in self.producers.items()}

    def folder(self, kind: str) -> Path:
        """``ROOT/<kind>/<producer digest>`` (``ROOT/<kind>/any`` for a kind without a producer)."""
        return self.root / kind / self.digests.get(kind, "any")

    def get(self, kind: str, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if not self.enabled.get(kind):
            return compute()
        folder = self.folder(kind)
        path = folder / f"{key}.pt"
        if path.is_file():
            self.hits += 1
            return torch.load(path, weights_only=True)
        self.misses += 1
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind in self.producers and not (folder / "producer.json").is_file():
            write_json_atomic(folder / "producer.json", self.producers[kind], sort_keys=True)
        with atomic_path(path) as tmp:
            torch.save(value, tmp)
        return value


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of every tensor of ``module``'s state dict: names, dtypes,
    shapes and bytes."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def producer(module: torch.nn.Module, **settings: Any) -> dict:
    """What a cache kind's entries depend on: the module's class, config and weights digest, and
    ``settings`` (JSON values)."""
    config = getattr(module, "config", None)
    config = {k: v for k, v in dict(config).items() if not k.startswith("_")} if config is not None else None
    return {"model": type(module).__name__, "config": json.loads(json.dumps(config, default=str)),
            "weights": weights_digest(module), **settings}
