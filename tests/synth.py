"""Synthetic clips with known audio and motion events, for tests."""

from __future__ import annotations

import numpy as np


def click_track(events_s, duration_s: float, sr: int, seed: int = 0) -> np.ndarray:
    """Silence with a 20 ms decaying noise burst at each event time (s)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(round(duration_s * sr)), dtype=np.float32)
    n = int(0.02 * sr)
    burst = (rng.standard_normal(n) * np.exp(-np.arange(n) / (0.004 * sr)) * 0.8).astype(np.float32)
    for t in events_s:
        i = int(round(t * sr))
        y[i : i + n] += burst[: len(y) - i]
    return y


def jump_frames(events_s, n_frames: int, fps: float, size: int = 64, seed: int = 0) -> np.ndarray:
    """A textured square that stays still and jumps to a new place at each event time.

    The jump between frames ``i-1`` and ``i`` (``i = round(t * fps)``) is the only motion,
    so the flow trajectory peaks exactly at frame ``i``, i.e. at time ``i / fps``.
    """
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(size // 4, size // 4, 3), dtype=np.uint8)
    jumps = {int(round(t * fps)) for t in events_s}
    frames = np.full((n_frames, size, size, 3), 40, dtype=np.uint8)
    positions = [(size // 8, size // 8), (size // 2, size // 2), (size // 2, size // 8), (size // 8, size // 2)]
    p = 0
    for i in range(n_frames):
        if i in jumps:
            p = (p + 1) % len(positions)
        y, x = positions[p]
        frames[i, y : y + size // 4, x : x + size // 4] = texture
    return frames
