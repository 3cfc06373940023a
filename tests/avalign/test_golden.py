"""Reference-exactness: our default variant equals the authors' scorer on the 12 golden clips."""

from pathlib import Path

import numpy as np
import pytest

from avalign import score_files

TOL_SCORE, TOL_PEAKS, TOL_FLOW = 1e-9, 1e-9, 1e-6


@pytest.fixture(scope="session")
def serial_results(golden_clips):
    return {Path(r.video).stem: r for r in score_files(sorted(golden_clips.glob("*.mp4")), workers=1)}


@pytest.fixture(scope="session")
def parallel_results(golden_clips):
    # small chunks so that long clips are split across the workers
    return {Path(r.video).stem: r for r in score_files(sorted(golden_clips.glob("*.mp4")), workers=2, chunk_pairs=16)}


@pytest.fixture(scope="session")
def ray_results(golden_clips):
    pytest.importorskip("ray")
    # a local 2-CPU Ray cluster, started for the call and stopped after it
    return {Path(r.video).stem: r for r in score_files(sorted(golden_clips.glob("*.mp4")), workers=2, chunk_pairs=16,
                                                       executor="ray")}


@pytest.mark.parametrize("mode", ["serial", pytest.param("parallel", marks=pytest.mark.slow),  # 10 s: a process pool
                                  pytest.param("ray", marks=pytest.mark.slow)])
def test_matches_golden(mode, request, golden):
    results = request.getfixturevalue(f"{mode}_results")
    assert set(results) == set(golden)
    for name, ref in golden.items():
        r = results[name]
        assert r.variant == "tempotokens-2025"
        assert r.fps == ref["fps"], name
        assert r.n_frames == ref["n_frames"], name
        assert list(r.frame_shape) == ref["frame_shape"], name
        assert len(r.audio_peaks) == len(ref["audio_peaks"]), name
        np.testing.assert_allclose(r.audio_peaks, ref["audio_peaks"], atol=TOL_PEAKS, rtol=0, err_msg=name)
        assert len(r.video_peaks) == len(ref["video_peaks"]), name
        np.testing.assert_allclose(r.video_peaks, ref["video_peaks"], atol=TOL_PEAKS, rtol=0, err_msg=name)
        np.testing.assert_allclose(r.flow_trajectory, ref["flow_trajectory"], atol=TOL_FLOW, rtol=0, err_msg=name)
        if ref["error"] is None:
            assert r.status == "ok", name
            assert r.score == pytest.approx(ref["score"], abs=TOL_SCORE), name
        else:  # the reference crashed (both streams empty): ours is defined as undefined
            assert "ZeroDivisionError" in ref["error"]
            assert r.status == "undefined" and r.score is None, name


@pytest.mark.parametrize("other", ["parallel", pytest.param("ray", marks=pytest.mark.slow)])  # ray: 14 s
def test_executors_equal_serial(serial_results, request, other):
    results = request.getfixturevalue(f"{other}_results")
    for name, r in serial_results.items():
        a, b = r.to_record(), results[name].to_record()
        a.pop("seconds"), b.pop("seconds")
        assert a == b, name
