"""The toy recipe's speed (``make bench``): seconds per training step of each stage, and the demo's
generation time per clip with the shipped toy model.

Stages at the recipe's own settings (:class:`tempotokens.toy.ToyRecipe`: batch 4 clips of 24 frames
at 32x32, CPU): the VAE fit (a batch of 32 frames), the text-to-video backbone (``train.unet: full``,
text only), the adaptor on the frozen backbone (``frozen``) and with LoRA (``lora``, the recipe's rank, 16).
Generation: one demo clip (24 frames, 32x32, 10 DPM-Solver++ steps, guidance 5) per mode, with the
shipped toy model, or while none is shipped a micro build of the same architecture (the same cost).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tempotokens.toy import MICRO, SHIPPED, TOY_GENERATION, ToyRecipe


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A micro build (its data, fitted VAE and backbone) whose folders the stage benches reuse."""
    from tempotokens.toy import run_recipe

    recipe = replace(MICRO, data_clips=12, batch_size=ToyRecipe().batch_size)
    out = tmp_path_factory.mktemp("bench-toy") / "build"
    run_recipe(out, recipe, progress=False)
    return out, recipe


def _step_bench(benchmark, trainer, label):
    from tempotokens.data.datasets import collate

    batch = collate([trainer.dataset[i] for i in range(trainer.cfg.batch_size)])
    state = {"step": 0}

    def step():
        state["step"] += 1
        return trainer.training_step(batch, state["step"])

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(seconds_per_step=benchmark.stats.stats.mean, batch=trainer.cfg.batch_size)
    print(f"\ntoy {label} step: {benchmark.stats.stats.mean:.3f} s (batch {trainer.cfg.batch_size} x 24 frames)")


@pytest.mark.parametrize("stage", ["backbone", "adaptor-frozen", "adaptor-lora"])
def test_toy_stage_step(benchmark, build, stage, tmp_path):
    from tempotokens.toy import _train_config
    from tempotokens.training.loop import Trainer

    out, recipe = build
    name = stage.split("-")[0]
    if name == "adaptor":
        recipe = replace(recipe, adaptor_unet=stage.split("-")[1])
    model = out / "stages" / ("backbone-model" if name == "backbone" else "adaptor-model")
    cfg = _train_config(recipe, name, model, tmp_path / stage, out / "data")
    _step_bench(benchmark, Trainer(cfg), stage)


def test_toy_vae_step(benchmark, build):
    from diffusers import AutoencoderKL

    from tempotokens.training.vae import VaeFitConfig, training_frames

    out, recipe = build
    vae = AutoencoderKL.from_pretrained(out / "stages" / "init" / "vae")
    pixels = training_frames(VaeFitConfig(data_root=str(out / "data"), holdout=recipe.holdout))
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    x = pixels[: ToyRecipe().vae_batch]

    def step():
        d = vae.encode(x).latent_dist
        loss = torch.nn.functional.mse_loss(vae.decode(d.sample()).sample, x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(seconds_per_step=benchmark.stats.stats.mean, batch=len(x))
    print(f"\ntoy vae step: {benchmark.stats.stats.mean:.3f} s (batch {len(x)} frames)")


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_toy_generation_per_clip(benchmark, build, mode):
    import numpy as np

    from tempotokens import AudioToVideoPipeline

    model = SHIPPED if (SHIPPED / "model_index.json").is_file() else build[0] / "model"
    pipe = AudioToVideoPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    g = TOY_GENERATION
    audio = np.zeros(32000, np.float32)
    audio[8000:8400] = 0.5
    kwargs = {"audio": audio} if mode == "audio" else {"prompt": "A video of drum hits"}

    def run():
        return pipe(num_frames=g["num_frames"], fps=g["fps"], height=g["height"], width=g["width"],
                    num_inference_steps=g["steps"], guidance_scale=g["guidance"],
                    generator=torch.Generator().manual_seed(0), output_type="uint8", **kwargs)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(seconds_per_clip=benchmark.stats.stats.mean)
    print(f"\ntoy generation ({mode}): {benchmark.stats.stats.mean:.3f} s per clip")
