"""Does a trained model use its audio?  Noise-prediction loss with each clip's own audio against another
clip's, per timestep.

For every clip, the probe noises the clip's latents (the VAE posterior mean) at a fixed timestep with
noise drawn from ``(seed, timestep, repeat)`` (with the model's noise prior), and computes the UNet's
noise-prediction MSE twice on the same noisy input: conditioned on the clip's own audio, and on the
audio of its *partner*, the next clip of the same label (so the class the audio implies is the same
and only the timing differs; the next clip when no other clip has the label).  The relative gain
``(mse_other - mse_own) / mse_other`` is what knowing the clip's own sound is worth to the denoiser at
that timestep: 0 means the UNet ignores the audio's timing.  It is cheap (one forward pass per clip,
timestep, repeat and audio) and far less noisy than validation AV-Align on a few clips.

``python -m tempotokens probe --model M --data-root D`` prints the table and writes it as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

#: Timesteps probed by default (of 1000): from nearly clean to nearly pure noise.
PROBE_TIMESTEPS = (100, 300, 500, 700, 850, 950)


@dataclass(frozen=True)
class ProbeRow:
    """One timestep of :func:`audio_dependence` (MSE means over clips and repeats)."""

    timestep: int
    mse_own: float
    mse_other: float
    gain: float  #: (mse_other - mse_own) / mse_other
    clips: int
    repeats: int


def partners(labels: Sequence[str]) -> list[int]:
    """For each clip, the index of the next clip (cyclically) with the same label; the next clip when
    the label is unique; the clip itself when there is only one clip."""
    n = len(labels)
    out = []
    for i, label in enumerate(labels):
        same = [(i + k) % n for k in range(1, n) if labels[(i + k) % n] == label]
        out.append(same[0] if same else (i + 1) % n)
    return out


@torch.no_grad()
def audio_dependence(pipe, batch: dict, timesteps: Sequence[int] = PROBE_TIMESTEPS, repeats: int = 3,
                     seed: int = 0) -> list[ProbeRow]:
    """The probe on one collated batch (:func:`tempotokens.data.datasets.collate` of the clips).

    ``batch`` needs ``pixel_values`` ``(B, F, 3, H, W)`` in [-1, 1], ``audio`` and
    ``audio_padding_mask`` ``(B, S)`` at 16 kHz, ``label`` and ``prompt`` (as the trainer's batches:
    the clips' prompts, the placeholders alone by default).  Raises ValueError for fewer than two
    clips (no partner to compare with) or a timestep outside the scheduler's range.
    """
    from diffusers import DDPMScheduler

    from ..frame_attention import FRAME_STATES
    from ..pipeline import mix_noise
    from .loop import pad_layers, step_seed

    pixels = batch["pixel_values"]
    B, Fn = pixels.shape[:2]
    if B < 2:
        raise ValueError("the probe needs at least two clips (each is compared with another clip's audio)")
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    n_train = scheduler.config.num_train_timesteps
    bad = [t for t in timesteps if not 0 <= int(t) < n_train]
    if bad:
        raise ValueError(f"timesteps {bad} outside [0, {n_train})")
    dev, dtype = pipe.unet.device, pipe.unet.dtype
    latents = torch.stack([pipe.vae.encode(pixels[i].to(dev, pipe.vae.dtype)).latent_dist.mean for i in range(B)])
    latents = latents.permute(0, 2, 1, 3, 4).float() * pipe.vae.config.scaling_factor  # (B, C, F, h, w)
    layers = []
    for i in range(B):
        n = int((~batch["audio_padding_mask"][i]).sum())
        layers.append(pipe.beats(batch["audio"][i: i + 1, :n].to(dev, pipe.beats.dtype)).layers[0])
    feats, mask = pad_layers(layers)
    other = partners(list(batch["label"]))
    conditions = []
    for order in (list(range(B)), other):
        tokens = pipe.adaptor(feats[order], num_frames=Fn, padding_mask=mask[order])
        cond, frame_states = pipe.encode_prompt(list(batch["prompt"]), tokens, Fn)  # the training prompts
        conditions.append((cond.to(dtype), frame_states.to(dtype)))
    rho = pipe.noise_correlation
    rows = []
    for t in timesteps:
        mse = torch.zeros(2)
        for r in range(repeats):
            gen = torch.Generator().manual_seed(step_seed(seed, int(t), r))
            noise = torch.randn(latents.shape, generator=gen)
            if rho > 0:
                shared = torch.randn((*latents.shape[:2], 1, *latents.shape[3:]), generator=gen)
                noise = mix_noise(noise, shared, rho)
            noise = noise.to(dev)
            tt = torch.full((B,), int(t), device=dev)
            noisy = scheduler.add_noise(latents, noise, tt)
            target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, tt)
            for k, (cond, frame_states) in enumerate(conditions):
                pred = pipe.unet(noisy.to(dtype), tt, encoder_hidden_states=cond,
                                 cross_attention_kwargs={FRAME_STATES: frame_states}).sample
                mse[k] += F.mse_loss(pred.float(), target.float()).item() / repeats
        own, oth = float(mse[0]), float(mse[1])
        rows.append(ProbeRow(int(t), own, oth, (oth - own) / oth if oth > 0 else 0.0, B, repeats))
    return rows
