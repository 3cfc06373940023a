"""Training speed and memory on the tiny model (``make bench``): seconds per step, peak memory.

One adaptor step (VAE encode, BEATs, adaptor, CLIP with injected tokens, UNet forward and backward,
AdamW) on a batch of 2 synthetic clips of 8 frames at 32x32, CPU.  Peak memory is the process's
peak RSS on CPU (``torch.cuda.max_memory_allocated`` on GPU), in ``extra_info``.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from tempotokens.data.synthetic import make_synthetic
    from tempotokens.tiny import make_tiny
    from tempotokens.training.config import load_config
    from tempotokens.training.loop import Trainer

    root = tmp_path_factory.mktemp("bench-train")
    make_synthetic(root / "data", num_clips=4, seed=0, duration_s=2.0, size=32)
    make_tiny(root / "model")
    cfg = load_config("tiny", [f"model={root / 'model'}", f"data.root={root / 'data'}", f"output_dir={root / 'out'}",
                               "validation.steps=0", "data.make_synthetic=0"])
    return Trainer(cfg)


def test_train_step_tiny_cpu(benchmark, trainer):
    from tempotokens.data.datasets import collate

    batch = collate([trainer.dataset[0], trainer.dataset[1]])
    state = {"step": 0}

    def step():
        state["step"] += 1
        return trainer.training_step(batch, state["step"])

    out = benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    assert out["loss"] > 0
    from benchmarks.generate import peak_memory_mb

    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak_mb = peak_memory_mb(device)
    benchmark.extra_info.update(seconds_per_step=benchmark.stats.stats.mean, peak_mem_mb=peak_mb, device=device)
    print(f"\ntiny training step: {benchmark.stats.stats.mean:.3f} s mean, peak memory {peak_mb:.0f} MB")
