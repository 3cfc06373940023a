"""Clips the benchmarks encode themselves (nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def textured_motion_clip(stem: str | os.PathLike, seconds: float = 10.0, width: int = 640, height: int = 360,
                         fps: float = 25.0, events: int = 12, seed: int = 0) -> Path:
    """``STEM.mp4`` (H.264) and ``STEM.wav`` (16 kHz): a blurred random texture panning with damped
    jolts at ``events`` random frames, each with a short noise burst in the audio: a VGGSound-like
    clip for per-clip speed (default 10 s, 640x360, 25 fps).  Returns the mp4's path."""
    import cv2

    from avalign.media import write_video, write_wav

    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    texture = cv2.GaussianBlur(rng.integers(0, 255, (height * 2, width * 2, 3)).astype(np.uint8), (5, 5), 1.5)
    jolts = set(rng.choice(np.arange(10, n - 10), events, replace=False).tolist())
    frames = np.empty((n, height, width, 3), np.uint8)
    x = y = 0.0
    vx = vy = 0.5
    for t in range(n):
        if t in jolts:
            vx, vy = rng.uniform(-12, 12, 2)
        vx, vy = vx * 0.8, vy * 0.8
        x, y = x + vx, y + vy
        ox, oy = int(width / 2 + x) % width, int(height / 2 + y) % height
        frames[t] = texture[oy: oy + height, ox: ox + width]
    sr = 16000
    audio = np.zeros(int(seconds * sr), np.float32)
    burst = 2000
    for t in jolts:
        i = int(t / fps * sr)
        audio[i: i + burst] += (0.5 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / 300)).astype(np.float32)
    stem = Path(stem)
    write_wav(stem.with_suffix(".wav"), audio, sr)
    return write_video(stem.with_suffix(".mp4"), frames, fps)
