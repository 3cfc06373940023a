"""``shuffled_audio``: the real video with another clip's audio: chance level.

Clip ``i`` of the run takes the audio of clip ``perm[i]``, where ``perm`` is a seeded derangement
(no clip keeps its own audio).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span, real_span, write_real


def derangement(n: int, seed: int) -> list[int]:
    """A permutation of ``range(n)`` with no fixed point (n >= 2), deterministic for ``seed``."""
    if n < 2:
        return list(range(n))
    order = np.random.default_rng(seed).permutation(n)
    perm = [0] * n
    for k in range(n):  # a cyclic shift along a random order has no fixed point
        perm[order[k]] = int(order[(k + 1) % n])
    return perm


class ShuffledAudio:
    name = "shuffled_audio"
    role = "chance"
    generative = False

    def load(self, ctx: RunContext) -> None:
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        ids = [c.clip_id for c in ctx.clips]
        donor = ctx.clips[derangement(len(ids), ctx.settings.seed)[ids.index(clip.clip_id)]]
        frames, fps = real_span(clip, ctx.settings.duration_s)
        audio, sr = audio_span(donor, ctx.settings.duration_s)
        return write_real(out_mp4, frames, fps, audio, sr)
