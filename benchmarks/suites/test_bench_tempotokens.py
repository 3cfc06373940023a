"""Audio side of TempoTokens at full size on CPU (``make bench``): BEATs + adaptor on 2 s of audio.

Random weights with the released sizes: BEATs 12 layers x 768 (90 M parameters), the adaptor
9216 -> 2304 -> 1024 (33.1 M).  This is the per-clip cost the pipeline pays once per clip.
"""

from __future__ import annotations

import pytest
import torch

from tempotokens import AudioTokenAdaptor, BEATs


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return BEATs().eval(), AudioTokenAdaptor().eval()


def _encode(beats, adaptor, wave):
    with torch.inference_mode():
        return adaptor(beats(wave).layers)


def test_beats_and_adaptor_2s_cpu(benchmark, models):
    beats, adaptor = models
    wave = torch.randn(1, 32000) * 0.1
    out = benchmark.pedantic(_encode, args=(beats, adaptor, wave), rounds=5, iterations=1, warmup_rounds=1)
    assert out.temporal.shape == (1, 24, 1024)
    benchmark.extra_info["threads"] = torch.get_num_threads()
