"""``static_frame``: the clip's first real frame held for the whole span, with its audio: a floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span, real_span, write_real


class StaticFrame:
    name = "static_frame"
    role = "floor"
    generative = False

    def load(self, ctx: RunContext) -> None:
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        frames, fps = real_span(clip, ctx.settings.duration_s)
        audio, sr = audio_span(clip, ctx.settings.duration_s)
        return write_real(out_mp4, np.repeat(frames[:1], len(frames), axis=0), fps, audio, sr)
