"""Seconds per clip of each video-quality metric's feature pass on the CPU (``make bench``).

Full-size random-weight stand-ins in the published formats (:mod:`tests.fixtures.weights`): the
StyleGAN-V TorchScript I3D and the VideoGPT InceptionI3d (16 frames), C3D (16 frames) and CLIP
ViT-B/32 (24 frames, one per frame).  The clip is the authors' generation size, 384x384 RGB at 12 fps,
already decoded (decoding is timed by the AV-Align suite).  Each case checks the shape and finiteness
of what it made; the figures are printed at the end (``-s``) and stored in the benchmark JSON.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from benchmarks.metrics.clipsim import ClipSim
from benchmarks.metrics.fvd import fvd_extractor
from benchmarks.metrics.inception import is_extractor
from tests.fixtures.weights import make_full_size_weights

_seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.set_num_threads(os.cpu_count() or 1)
    yield make_full_size_weights(tmp_path_factory.mktemp("full-weights"))
    if _seconds:
        print(f"\nfeature pass, seconds per clip on {os.cpu_count()} CPUs (384x384 clip, full-size random weights): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in _seconds.items()))


def _clip(frames: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(frames, 384, 384, 3), dtype=np.uint8)


@pytest.mark.parametrize("case", ["fvd-styleganv", "fvd-videogpt", "is-c3d", "clipsim-vit-b32"])
def test_feature_pass(benchmark, weights, case):
    if case.startswith("fvd"):
        ex, frames, dim = fvd_extractor(weights, case.split("-")[1], 16), 16, 400
    elif case == "is-c3d":
        ex, frames, dim = is_extractor(weights), 16, 101
    else:
        ex, frames, dim = ClipSim(weights).extractor(), 24, 512
    clip = _clip(frames)
    out = benchmark.pedantic(ex.fn, args=([clip],), rounds=3, warmup_rounds=1)
    assert out.shape == (1, dim) and np.isfinite(out).all()
    _seconds[case] = benchmark.stats.stats.mean
