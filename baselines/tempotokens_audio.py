"""``tempotokens``: TempoTokens conditioned on the clip's audio alone (the placeholders prompt)."""

from __future__ import annotations

from pathlib import Path

from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext
from ._pipeline import generate, load_pipeline


class TempoTokens:
    name = "tempotokens"
    role = "compared"
    generative = True

    def load(self, ctx: RunContext) -> float:
        return load_pipeline(ctx)

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        return generate(ctx, clip, out_mp4, prompt=None, use_audio=True)
