"""``tempotokens_text_audio``: TempoTokens with the class label as text around the audio tokens."""

from __future__ import annotations

from pathlib import Path

from tempotokens.conditioning import DEFAULT_AUDIO_PROMPT
from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext
from ._pipeline import generate, load_pipeline


class TempoTokensTextAudio:
    name = "tempotokens_text_audio"
    role = "compared"
    generative = True

    def load(self, ctx: RunContext) -> float:
        return load_pipeline(ctx)

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        # the paper's Table 2 phrasing: "A video of <TemporalAudioTokens> <class>", with the label
        prompt = f"A video of {clip.label}, {DEFAULT_AUDIO_PROMPT}"
        return generate(ctx, clip, out_mp4, prompt=prompt, use_audio=True)
