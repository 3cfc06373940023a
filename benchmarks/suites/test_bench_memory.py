"""Peak memory of one UNet step (``make bench``): checkpointing on/off, per-frame conditioning O(F)
(``frame_states``) against the earlier O(F^2) packing.  Each case runs in a fresh process
(:mod:`benchmarks.suites.memory_probe`): a mid-size UNet3D, 24 frames of 32x32 latents, cross-attention 1024."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = {
    "train_frames": ["--step", "train", "--conditioning", "frames"],
    "train_frames_checkpointing": ["--step", "train", "--conditioning", "frames", "--checkpointing"],
    "train_packed": ["--step", "train", "--conditioning", "packed"],
    "sample_frames": ["--step", "sample", "--conditioning", "frames"],
    "sample_packed": ["--step", "sample", "--conditioning", "packed"],
}
_peaks: dict[str, float] = {}


def _probe(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.suites.memory_probe", *args], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    p = _peaks
    if len(p) == len(CASES):
        print(f"\none UNet step, peak MiB: train {p['train_frames']:.0f}, with checkpointing "
              f"{p['train_frames_checkpointing']:.0f} ({p['train_frames_checkpointing'] / p['train_frames']:.2f}x); "
              f"train packed (before) {p['train_packed']:.0f} -> frame_states {p['train_frames']:.0f} "
              f"({p['train_frames'] / p['train_packed']:.2f}x); sample packed {p['sample_packed']:.0f} -> "
              f"{p['sample_frames']:.0f} ({p['sample_frames'] / p['sample_packed']:.2f}x)")


@pytest.mark.parametrize("case", list(CASES))
def test_unet_step_peak_memory(benchmark, case):
    result = benchmark.pedantic(_probe, args=(CASES[case],), rounds=1, iterations=1)
    _peaks[case] = result["peak_mb"]
    benchmark.extra_info.update(result)
