"""``python -m benchmarks.suites.memory_probe``: the peak memory of one UNet step, measured in a fresh process.

One case per process, so its peak is its own: a mid-size random-weight ``UNet3DConditionModel``
(channels 64/128/256, cross-attention width 1024 as zeroscope's, 24 frames of 32x32 latents, one video)
takes one *training* step (frozen UNet; gradients reach the per-frame conditioning, as they reach the
adaptor in training) or one *sampler* step (no gradients, a classifier-free-guidance pair), with the
conditioning given

* ``frames``: each frame its own 77 tokens through ``frame_states`` (O(F), what we do now), or
* ``packed``: every frame's tokens side by side, repeated per frame by the UNet (O(F^2), before),

and, for training, with or without gradient checkpointing of the UNet's blocks.  It prints one JSON
line: ``peak_mb`` is the rise of the process's peak resident set (``VmHWM``) during the step, MiB.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Sequence


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.suites.memory_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--step", choices=("train", "sample"), default="train")
    p.add_argument("--conditioning", choices=("frames", "packed"), default="frames")
    p.add_argument("--checkpointing", action="store_true", help="checkpoint the UNet's down/mid/up blocks")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--latent", type=int, default=32, help="latent height = width")
    p.add_argument("--threads", type=int, default=2)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    from diffusers import UNet3DConditionModel

    from tempotokens.frame_attention import FRAME_STATES, enable_frame_attention, pack_frames
    from tempotokens.training.checkpointing import install_checkpointing

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    unet = UNet3DConditionModel(block_out_channels=(64, 128, 256), layers_per_block=1, cross_attention_dim=1024,
                                down_block_types=("CrossAttnDownBlock3D",) * 2 + ("DownBlock3D",),
                                up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 2,
                                attention_head_dim=8, norm_num_groups=32).eval().requires_grad_(False)
    enable_frame_attention(unet, 77)
    if args.checkpointing:
        install_checkpointing(unet)
    videos = 1 if args.step == "train" else 2  # a guidance pair when sampling
    F = args.frames
    sample = torch.randn(videos, 4, F, args.latent, args.latent)
    rows = torch.randn(videos * F, 77, 1024, requires_grad=args.step == "train")
    before = _status_mb("VmHWM")
    start = time.perf_counter()
    with torch.set_grad_enabled(args.step == "train"):
        if args.conditioning == "frames":
            out = unet(sample, 500, encoder_hidden_states=rows[::F], cross_attention_kwargs={FRAME_STATES: rows})
        else:
            out = unet(sample, 500, encoder_hidden_states=pack_frames(rows, F))
        if args.step == "train":
            out.sample.square().mean().backward()
    seconds = time.perf_counter() - start
    print(json.dumps({"step": args.step, "conditioning": args.conditioning, "checkpointing": args.checkpointing,
                      "frames": F, "latent": args.latent, "peak_mb": _status_mb("VmHWM") - before,
                      "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
