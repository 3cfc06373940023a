"""What the three methods on the TempoTokens backbone share: one pipeline, loaded once per run."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from avalign.media import write_clip
from tempotokens.data.datasets import ClipInfo

from . import RunContext, audio_span


def shared_pipeline(ctx: RunContext) -> float:
    """Load the pipeline into ``ctx.shared`` unless loaded; returns its load time in seconds."""
    if "pipeline" not in ctx.shared:
        from tempotokens import AudioToVideoPipeline

        s = ctx.settings
        start = time.perf_counter()
        pipe = AudioToVideoPipeline.from_pretrained(s.model, beats=s.beats, adaptor=s.adaptor)
        pipe = pipe.to(s.device)
        if s.dtype != "float32":
            pipe = pipe.to(getattr(torch, s.dtype))
        pipe.set_progress_bar_config(disable=True)
        ctx.shared.update(pipeline=pipe, pipeline_load_s=time.perf_counter() - start)
    return ctx.shared["pipeline_load_s"]


def generate(ctx: RunContext, clip: ClipInfo, out_mp4: Path, prompt: str | None, use_audio: bool) -> Path:
    """Generate one clip and write it with the clip's own audio span (what it is scored against)."""
    s = ctx.settings
    audio, sr = audio_span(clip, s.duration_s)
    generator = torch.Generator().manual_seed(s.seed)
    out = ctx.shared["pipeline"](
        audio=audio if use_audio else None, audio_sample_rate=sr, prompt=prompt, num_frames=s.num_frames,
        fps=s.fps, height=s.height, width=s.width, num_inference_steps=s.steps, guidance_scale=s.guidance,
        generator=generator, output_type="uint8",
    )
    return write_clip(out_mp4, out.frames[0], s.fps, audio, sr)[0]
