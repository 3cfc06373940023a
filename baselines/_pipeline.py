"""What the three methods on the TempoTokens backbone share: loading the pipeline, generating a clip.

Each generating method runs in its own process (see ``benchmarks.generate``), so the pipeline is
loaded once per method and its time and memory are that method's alone.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import torch

from avalign.io import write_clip
from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span


def load_pipeline(ctx: RunContext) -> float:
    """Load the pipeline into ``ctx.shared["pipeline"]``; returns the load time in seconds."""
    from tempotokens import AudioToVideoPipeline

    s = ctx.settings
    start = time.perf_counter()
    pipe = AudioToVideoPipeline.from_pretrained(s.model, beats=s.beats, adaptor=s.adaptor)
    pipe = pipe.to(s.device)
    if s.dtype != "float32":
        pipe = pipe.to(getattr(torch, s.dtype))
    pipe.set_progress_bar_config(disable=True)
    ctx.shared["pipeline"] = pipe
    return time.perf_counter() - start


def generate(ctx: RunContext, clip: ClipInfo, out_mp4: Path, prompt: str | None, use_audio: bool) -> Output:
    """Generate one clip with seed ``ctx.seed_for(clip)`` and write it with the clip's own audio span
    (what it is scored against).  Stages are timed into ``ctx.profiler`` when there is one."""
    s = ctx.settings
    audio, sr = audio_span(clip, s.duration_s)
    generator = torch.Generator().manual_seed(ctx.seed_for(clip))
    out = ctx.shared["pipeline"](
        audio=audio if use_audio else None, audio_sample_rate=sr, prompt=prompt, num_frames=s.num_frames,
        fps=s.fps, height=s.height, width=s.width, num_inference_steps=s.steps, guidance_scale=s.guidance,
        generator=generator, output_type="uint8", profiler=ctx.profiler,
    )
    with ctx.profiler.stage("writing") if ctx.profiler else nullcontext():
        return Output(*write_clip(out_mp4, out.frames[0], s.fps, audio, sr))
