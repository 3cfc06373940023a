"""Seconds per clip of the learned sync metrics' feature passes on the CPU (``make bench``).

Full published sizes with random weights (Synchformer 237M parameters, ImageBind-huge's vision and
audio branches), in inference mode, on one 8 s clip's inputs as the ``avbench`` lineages make them:
the passes of ``benchmarks.metrics.syncpasses`` (DeSync's 24 video and 24 mel segments, IB's 9
views and 3 fbank clips), in the scorers' default CPU batches.  Decoding is left out
(it is shared, once per clip and rate).  Reference figures on this kind of machine (2 cores, eager,
full sizes, one 8 s clip; issue 18): Synchformer video 74.4 s, audio 1.85 s; ImageBind-huge video
17.7 s, audio 0.68 s.  The ratio to them is printed (``-s``).
"""

from __future__ import annotations

import os

import pytest
import torch

REFERENCE_S = {"desync-video": 74.4, "desync-audio": 1.85, "ib-video": 17.7, "ib-audio": 0.68}
_seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def models():
    from benchmarks.metrics.imagebind import ImageBind
    from benchmarks.metrics.synchformer import Synchformer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    yield Synchformer().eval(), ImageBind().eval()
    if _seconds:
        print(f"\nsync feature passes on {os.cpu_count()} CPUs (one 8 s clip, full sizes, random weights): " + ", ".join(
            f"{k} {v:.2f} s (reference {REFERENCE_S[k]} s, x{REFERENCE_S[k] / v:.2f})" for k, v in _seconds.items()))


OUT_SHAPES = {"desync-video": (24, 8, 768), "desync-audio": (24, 6, 768), "ib-video": (9, 1024), "ib-audio": (3, 1024)}


@pytest.mark.parametrize("case", list(REFERENCE_S))
def test_sync_feature_pass(benchmark, models, case):
    from benchmarks.metrics.syncpasses import feature_passes

    metric, part = case.split("-")
    fn, in_shape, batch = feature_passes(metric, dict(zip(("desync", "ib"), models))[metric], "cpu")[part]
    x, shape = torch.randn(*in_shape, generator=torch.Generator().manual_seed(0)), OUT_SHAPES[case]

    def run():
        with torch.inference_mode():
            return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])

    out = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    assert tuple(out.shape) == shape and torch.isfinite(out).all()
    _seconds[case] = benchmark.stats.stats.mean
