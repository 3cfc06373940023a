"""Fitting a toy model's VAE on a folder of clips (``python -m tempotokens fit-vae``).

The 2D ``AutoencoderKL`` of a model folder is trained on single frames of the training split,
resized as the AV-Align protocol resizes (:func:`avalign.protocol.cover_crop`), with the loss
``MSE(reconstruction, frame) + kl_weight * KL(posterior || N(0, I))`` on a posterior sample.  At the
end its ``scaling_factor`` is set to ``1 / std`` of the latents of the training frames (as Stable
Diffusion's 0.18215 was found), so the diffusion model sees unit-variance latents.

Step ``k``'s batch (which frames, the posterior sample) comes from a generator seeded by
``(seed, k)`` alone, and checkpoints hold the weights and the optimizer, so a run stopped at any
checkpoint and resumed ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from avalign.io import JsonlWriter, publish_dir, read_jsonl, rewrite_jsonl


@dataclass(frozen=True)
class VaeFitConfig:
    """Settings of one VAE fit (every field is recorded in ``OUT/vae_fit.json``)."""

    data_root: str  #: folder of the dataset layout (video/, audio/, the split CSV)
    dataset: str = "synthetic"
    holdout: int = 0  #: leave out the last N training clips (the validation split of the later stages)
    height: int = 32  #: pixels after the protocol's resize + center crop
    width: int = 32
    steps: int = 600
    batch_size: int = 32  #: frames per step
    learning_rate: float = 1e-3
    kl_weight: float = 1e-6
    seed: int = 0
    checkpointing_steps: int = 200


def training_frames(cfg: VaeFitConfig) -> torch.Tensor:
    """Every frame of the training clips (less the held-out ones): ``(N, 3, H, W)`` in [-1, 1]."""
    from avalign.io import read_video_frames
    from avalign.protocol import cover_crop

    from ..data.datasets import index_dataset

    clips = index_dataset(cfg.data_root, cfg.dataset, split="train")
    clips = clips[: len(clips) - cfg.holdout] if cfg.holdout else clips
    if not clips:
        raise ValueError(f"{cfg.data_root}: no training clips to fit the VAE on")
    frames = [cover_crop(read_video_frames(c.video)[0], cfg.height, cfg.width) for c in clips]
    pixels = torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1.0


def fit_vae(vae, cfg: VaeFitConfig, out: str | os.PathLike, resume: bool = True, progress: bool = True):
    """Train ``vae`` (an ``AutoencoderKL``, changed in place) to ``cfg.steps``; returns it.

    ``OUT/checkpoint-<step>/`` (weights, optimizer, step) every ``checkpointing_steps``; with
    ``resume`` the newest is continued from.  ``OUT/metrics.jsonl`` has the loss of every step,
    ``OUT/vae/`` the final weights (with the fitted ``scaling_factor``).
    """
    from ..training.loop import _checkpoints, step_seed
    from avalign.io import write_json_atomic

    out = Path(out)
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.checkpointing_steps < 1 or cfg.learning_rate <= 0:
        raise ValueError(f"steps, batch size and checkpointing steps must be at least 1 and the learning rate "
                         f"positive, got {cfg.steps}, {cfg.batch_size}, {cfg.checkpointing_steps}, {cfg.learning_rate}")
    previous = out / "vae_fit.json"
    if resume and previous.is_file() and _checkpoints(out):
        old = {k: v for k, v in json.loads(previous.read_text()).items() if k != "steps"}
        new = {k: v for k, v in asdict(cfg).items() if k != "steps"}
        if old != new:
            changed = ", ".join(f"{k} {old.get(k)} -> {new[k]}" for k in new if old.get(k) != new[k])
            raise ValueError(f"{out}: holds a fit with other settings ({changed}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    pixels = training_frames(cfg)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    step = 0
    found = _checkpoints(out) if resume else []
    if found:
        state = torch.load(found[-1] / "state.pt", weights_only=True)
        vae.load_state_dict(state["vae"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    metrics_path = out / "metrics.jsonl"
    rewrite_jsonl(metrics_path, [r for r in read_jsonl(metrics_path) if r.get("step", 0) <= step])
    write_json_atomic(out / "vae_fit.json", asdict(cfg))
    vae.train()
    with JsonlWriter(metrics_path, fsync=False) as log, \
            tqdm(total=cfg.steps, initial=step, desc="vae", disable=not progress) as bar:
        while step < cfg.steps:
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, step))
            x = pixels[torch.randint(0, len(pixels), (cfg.batch_size,), generator=gen)]
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
            mse = F.mse_loss(vae.decode(z).sample, x)
            kl = posterior.kl().mean() / z[0].numel()
            loss = mse + cfg.kl_weight * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            log.write({"step": step, "loss": loss.item(), "mse": mse.item(), "kl": kl.item()})
            bar.update()
            bar.set_postfix(mse=f"{mse.item():.4f}")
            if step % cfg.checkpointing_steps == 0 or step == cfg.steps:
                tmp, final = out / f".tmp-checkpoint-{step}", out / f"checkpoint-{step}"
                tmp.mkdir(exist_ok=True)
                torch.save({"vae": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
                           tmp / "state.pt")
                publish_dir(tmp, final)
                for old in _checkpoints(out)[:-1]:
                    shutil.rmtree(old)
    vae.eval()
    with torch.no_grad():
        latents, sq_err = [], 0.0
        for i in range(0, len(pixels), 256):
            mean = vae.encode(pixels[i: i + 256]).latent_dist.mean
            latents.append(mean)
            sq_err += float(((vae.decode(mean).sample - pixels[i: i + 256]) ** 2).sum())
        latents = torch.cat(latents)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    vae.save_pretrained(out / "vae")
    write_json_atomic(out / "vae" / "fit.json", {"steps": step, "frames": len(pixels),
                                                  "scaling_factor": vae.config.scaling_factor,
                                                  "reconstruction_mse": sq_err / pixels.numel()})
    return vae
