"""``text_to_video``: the same backbone with the class-label prompt only (no audio)."""

from __future__ import annotations

from pathlib import Path

from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext
from ._pipeline import generate, load_pipeline


class TextToVideo:
    name = "text_to_video"
    role = "compared"
    generative = True
    reference = True  #: the audio-free baseline: the paired deltas' default reference

    def load(self, ctx: RunContext) -> float:
        return load_pipeline(ctx)

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        return generate(ctx, clip, out_mp4, prompt=f"A video of {clip.label}", use_audio=False)
