"""Sampler throughput on the tiny model (``make bench``): audio conditioning vs plain text.

Both run the same UNet and loop (16 frames, 10 DPM-Solver++ steps, guidance 25, latents out, CPU).
The audio path adds BEATs + adaptor once per clip, the text encoder on F rows once per clip,
and per step the packed per-frame conditioning.  ``extra_info`` holds seconds per step and
frames per second; the session prints the audio/text ratio per step (of the fastest rounds, the
least noisy figure on a shared machine).  ``test_unet_step`` isolates the per-step cost: one UNet
call with ordinary ``(B, L, D)`` text conditioning against packed per-frame conditioning.
"""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.media import click_track

FRAMES, STEPS = 16, 10
_per_step: dict[str, float] = {}
_unet: dict[str, float] = {}


@pytest.fixture(scope="module")
def pipe():
    from tempotokens.tiny import build_tiny_pipeline

    p = build_tiny_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    threads = torch.get_num_threads()
    yield p
    torch.set_num_threads(threads)  # the cases below pin one thread; later suites get them all back
    if {"audio", "text"} <= set(_per_step):
        ratio = _per_step["audio"] / _per_step["text"]
        print(f"\nsampler, tiny model, CPU, 1 thread: audio {_per_step['audio'] * 1e3:.1f} ms/step, "
              f"text {_per_step['text'] * 1e3:.1f} ms/step, audio/text {ratio:.3f} "
              f"({FRAMES / (_per_step['audio'] * STEPS):.2f} vs {FRAMES / (_per_step['text'] * STEPS):.2f} frames/s)")
    if {"plain", "packed"} <= set(_unet):
        print(f"UNet step: packed per-frame / plain text conditioning {_unet['packed'] / _unet['plain']:.3f}")


@pytest.mark.parametrize("mode", ["text", "audio"])
def test_sampler(benchmark, pipe, mode):
    torch.set_num_threads(1)  # steady timings on a shared 2-core machine
    kwargs = dict(num_frames=FRAMES, fps=8.0, num_inference_steps=STEPS, guidance_scale=25.0, output_type="latent")
    if mode == "audio":
        kwargs["audio"] = click_track([0.5, 1.2], FRAMES / 8.0, 16000)
    else:
        kwargs["prompt"] = "a dog barking on a beach"

    def run():
        return pipe(generator=torch.Generator().manual_seed(0), **kwargs).frames

    latents = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert latents.shape[2] == FRAMES
    best = benchmark.stats.stats.min
    _per_step[mode] = best / STEPS
    benchmark.extra_info.update(seconds_per_step=best / STEPS, frames_per_s=FRAMES / best)


@pytest.mark.parametrize("conditioning", ["plain", "packed", "frame_states"])
def test_unet_step(benchmark, pipe, conditioning):
    from tempotokens.frame_attention import pack_frames

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sample = torch.randn(2, 4, FRAMES, 16, 16)  # a CFG pair
    rows = torch.randn(2 * FRAMES, 77, 32)
    states, kwargs = torch.randn(2, 77, 32), None
    if conditioning == "packed":  # the earlier O(F^2) layout
        states = pack_frames(rows, FRAMES)
    elif conditioning == "frame_states":
        states, kwargs = rows[::FRAMES], {"frame_states": rows}

    def step():
        with torch.no_grad():
            return pipe.unet(sample, 500, encoder_hidden_states=states, cross_attention_kwargs=kwargs).sample

    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    _unet[conditioning] = benchmark.stats.stats.min
