"""``ground_truth``: the dataset's own clip (the same span, at its own fps): the metric's ceiling."""

from __future__ import annotations

from pathlib import Path

from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span, real_span, write_real


class GroundTruth:
    name = "ground_truth"
    role = "ceiling"
    generative = False

    def load(self, ctx: RunContext) -> None:
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        frames, fps = real_span(clip, ctx.settings.duration_s)
        audio, sr = audio_span(clip, ctx.settings.duration_s)
        return write_real(out_mp4, frames, fps, audio, sr)
