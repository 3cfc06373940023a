"""AV-Align speed (``make bench``): the authors' serial scorer against ours, 1 and 2 workers.

The batch is the 12 golden clips (mixed sizes, 64x64 to 512x320, 2 to 300 frames).  Every case
checks that its scores equal the reference's, so a speed-up never hides a change of result.
Ratios are printed at the end of the session (``-s``) and stored in the benchmark JSON.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from avalign import score_files
from avalign.core import audio_peaks, pair_magnitudes
from avalign.readers import read_video_gray
from benchmarks.suites import reference_avalign

CLIPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden" / "clips"
_means: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Pay librosa's import and numba cache load before timing anything."""
    audio_peaks(np.zeros(4096, dtype=np.float32), 22050)
    yield
    if {"reference", "workers_1", "workers_2"} <= set(_means):
        ref, one, two = _means["reference"], _means["workers_1"], _means["workers_2"]
        print(f"\nAV-Align batch of {len(list(CLIPS.glob('*.mp4')))} clips on {os.cpu_count()} CPUs: "
              f"reference {ref:.2f} s, ours 1 worker {one:.2f} s, 2 workers {two:.2f} s; "
              f"ours(2)/reference throughput {ref / two:.2f}x, 2 workers / 1 worker {one / two:.2f}x; "
              f"{12 / two:.2f} clips/s")


@pytest.fixture(scope="module")
def reference_scores():
    return reference_avalign.score_folder(str(CLIPS))


def _ours(workers: int) -> dict[str, float | None]:
    return {os.path.basename(r.video): r.score for r in score_files(sorted(CLIPS.glob("*.mp4")), workers=workers)}


def _record(benchmark, key: str) -> None:
    _means[key] = benchmark.stats.stats.mean
    n = len(list(CLIPS.glob("*.mp4")))
    benchmark.extra_info.update(clips=n, clips_per_s=n / benchmark.stats.stats.mean)


def test_reference_batch(benchmark, reference_scores):
    scores = benchmark.pedantic(reference_avalign.score_folder, args=(str(CLIPS),), rounds=2, iterations=1)
    assert scores == reference_scores
    _record(benchmark, "reference")


@pytest.mark.parametrize("workers", [1, 2])
def test_ours_batch(benchmark, workers, reference_scores):
    scores = benchmark.pedantic(_ours, args=(workers,), rounds=2, iterations=1)
    assert scores == pytest.approx(reference_scores, abs=1e-12)
    _record(benchmark, f"workers_{workers}")


def test_flow_pair_512x320(benchmark):
    """One Farneback pair at 512x320, single-threaded: the unit cost of the metric."""
    import cv2

    cv2.setNumThreads(1)
    frames = read_video_gray(CLIPS / "c05_sync_burst_30fps_512x320_10s.mp4").frames[:2]
    benchmark(pair_magnitudes, frames)
    benchmark.extra_info["pixels"] = int(frames[0].size)


@pytest.mark.parametrize("fps", [None, 12.0])
def test_conformed_30fps_clip(benchmark, fps):
    """The 10 s 30 fps golden clip scored natively and re-timed to 12 fps (one worker): frames are
    selected before any flow, so the re-timed score computes 119 of the 299 pairs (40%)."""
    from avalign import Protocol, score_file

    clip = CLIPS / "c05_sync_burst_30fps_512x320_10s.mp4"
    result = benchmark.pedantic(score_file, args=(clip,), kwargs={"protocol": Protocol(fps=fps)}, rounds=2,
                                iterations=1)
    assert result.n_frames == (300 if fps is None else 120)
    _means[f"conform_{fps}"] = benchmark.stats.stats.mean
    benchmark.extra_info.update(frame_pairs=result.n_frames - 1)
    if {"conform_None", "conform_12.0"} <= set(_means):
        native, retimed = _means["conform_None"], _means["conform_12.0"]
        print(f"\n30 fps clip, 10 s at 512x320: native {native:.2f} s, re-timed to 12 fps {retimed:.2f} s "
              f"({retimed / native:.0%} of the native time for 40% of the pairs)")


@pytest.mark.parametrize("mode", ["farneback", "farneback-half", "farneback-quarter", "dis-ultrafast", "dis-fast"])
def test_flow_mode_pair_512x320(benchmark, mode):
    """One frame pair at 512x320 in each flow mode, single-threaded (the exact mode is the reference's)."""
    import cv2

    cv2.setNumThreads(1)
    frames = read_video_gray(CLIPS / "c05_sync_burst_30fps_512x320_10s.mp4").frames[:2]
    benchmark(pair_magnitudes, frames, 0, None, mode)
    _means[f"flow_{mode}"] = benchmark.stats.stats.mean
    if all(f"flow_{m}" in _means for m in ("farneback", "farneback-half", "farneback-quarter", "dis-ultrafast",
                                            "dis-fast")):
        exact = _means["flow_farneback"]
        print("\nflow pair 512x320: " + ", ".join(f"{m} {_means['flow_' + m] * 1e3:.1f} ms ({exact / _means['flow_' + m]:.1f}x)"
                                               for m in ("farneback", "farneback-half", "farneback-quarter",
                                                         "dis-ultrafast", "dis-fast")))


@pytest.mark.parametrize("cpus", [1, 2])
def test_ray_batch(benchmark, cpus, reference_scores):
    """The 12 golden clips on a local Ray cluster of 1 and 2 CPUs (cluster start-up not timed)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        def batch():
            return {os.path.basename(r.video): r.score for r in
                    score_files(sorted(CLIPS.glob("*.mp4")), executor="ray", chunk_pairs=16)}

        scores = benchmark.pedantic(batch, rounds=2, iterations=1)
    finally:
        ray.shutdown()
    assert scores == pytest.approx(reference_scores, abs=1e-12)
    _means[f"ray_{cpus}"] = benchmark.stats.stats.mean
    if "ray_1" in _means and "ray_2" in _means:
        print(f"\nRay, 12 golden clips: 1 CPU {_means['ray_1']:.2f} s, 2 CPUs {_means['ray_2']:.2f} s "
              f"({_means['ray_1'] / _means['ray_2']:.2f}x)")


_per_clip: dict[str, float] = {}


@pytest.fixture(scope="module")
def vggsound_like(tmp_path_factory):
    from tests.fixtures.media import textured_motion_clip

    return textured_motion_clip(tmp_path_factory.mktemp("clip") / "textured_640x360_25fps_10s")


FAST = ("farneback-quarter", "farneback-half", "dis-ultrafast", "dis-fast")


@pytest.mark.parametrize("batch", ["golden", "640x360"])
@pytest.mark.parametrize("mode", ("farneback",) + FAST)
def test_per_clip_compute(benchmark, vggsound_like, batch, mode):
    """Per-clip compute as the records report it (``seconds``: decode, flow, audio, in a warm worker,
    no process start-up), summed over the batch, exact against each fast mode."""
    import cv2

    from avalign import Protocol, score_file

    cv2.setNumThreads(1)  # one worker's figure
    clips = sorted(CLIPS.glob("*.mp4")) if batch == "golden" else [vggsound_like]
    protocol = Protocol(flow=mode)

    def run():
        return sum(score_file(c, protocol=protocol).seconds for c in clips)

    run()  # warm: the decoder, librosa
    seconds = benchmark.pedantic(run, rounds=2, iterations=1)
    _per_clip[f"{batch}/{mode}"] = seconds
    benchmark.extra_info.update(clips=len(clips), seconds_per_batch=seconds)
    if all(f"{batch}/{m}" in _per_clip for m in ("farneback",) + FAST):
        exact = _per_clip[f"{batch}/farneback"]
        print(f"\nper-clip compute, {batch} ({len(clips)} clips, 1 thread): exact {exact:.2f} s; " + ", ".join(
            f"{m} {_per_clip[f'{batch}/{m}']:.2f} s ({exact / _per_clip[f'{batch}/{m}']:.1f}x)" for m in FAST))
        if batch == "640x360":  # the goal of issue 19, on a VGGSound-like clip
            assert exact / _per_clip["640x360/farneback-quarter"] >= 10
