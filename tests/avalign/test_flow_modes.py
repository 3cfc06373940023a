"""Fast flow modes: full-resolution pixels/frame in every mode, recorded with every score."""

import cv2
import numpy as np
import pytest

from avalign import Protocol, score_file, score_files
from avalign.cli import main
from avalign.core import FLOW_MODES, flow_magnitude, pair_magnitudes


def _shifted_pair(shift: int, size: int = 128) -> list[np.ndarray]:
    """A smooth random texture and the same texture moved right by ``shift`` pixels."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (size, size + 32), dtype=np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(big[:, 16:16 + size]), np.ascontiguousarray(big[:, 16 - shift:16 - shift + size])]


@pytest.mark.parametrize("mode", FLOW_MODES)
def test_every_mode_measures_full_resolution_pixels(mode):
    # the whole frame moves 4 px: every mode must read about 4 px/frame (the border pixels read less)
    (m,) = pair_magnitudes(_shifted_pair(4), mode=mode)
    assert 3.0 < m < 4.6, (mode, m)
    (still,) = pair_magnitudes(_shifted_pair(0), mode=mode)
    assert still < 0.05


def test_downscaled_modes_by_hand():
    a, b = _shifted_pair(4)
    half = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in (a, b)]
    assert pair_magnitudes([a, b], mode="farneback-half")[0] == pytest.approx(flow_magnitude(*half) * 2.0, rel=1e-12)
    quarter = [cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in (a, b)]
    assert pair_magnitudes([a, b], mode="farneback-quarter")[0] == pytest.approx(flow_magnitude(*quarter) * 4.0,
                                                                                  rel=1e-12)
    assert pair_magnitudes([a, b])[0] == flow_magnitude(a, b)  # the exact mode is the reference's call
    frames = [a, b, a, b, a]
    whole = pair_magnitudes(frames, mode="dis-fast")
    assert np.array_equal(np.concatenate([pair_magnitudes(frames, 0, 2, "dis-fast"),
                                          pair_magnitudes(frames, 2, 4, "dis-fast")]), whole)  # chunks concatenate


def test_mode_is_recorded_and_parallel_equals_serial(make_clip, tmp_path):
    mp4 = make_clip("f", [0.5, 1.5], [0.5, 1.5], fps=10, duration_s=2.5)
    protocol = Protocol(flow="dis-fast")
    serial = score_file(mp4, protocol=protocol)
    (parallel,) = list(score_files([mp4], protocol=protocol, workers=2, chunk_pairs=4))
    assert serial.flow_trajectory == parallel.flow_trajectory and serial.score == parallel.score
    assert serial.to_record()["protocol"]["flow"] == "dis-fast" and "flow dis-fast" in protocol.label
    exact = score_file(mp4)
    assert exact.flow_trajectory != serial.flow_trajectory and exact.protocol.flow == "farneback"
    assert main(["score", str(mp4), "--flow", "farneback-quarter", "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "farneback-quarter" in (tmp_path / "r.jsonl").read_text()
    with pytest.raises(ValueError, match="unknown flow mode"):
        Protocol(flow="lucas-kanade")


def test_a_rotated_video_is_read_as_the_exact_mode_reads_it(tmp_path):
    """A display rotation (the mp4 track header's matrix set to 90 degrees): OpenCV rotates the
    frames; the fast reader must give the same frames, not the stored ones."""
    import struct

    from avalign.io import write_video

    from avalign.readers import read_video_for_flow, read_video_gray

    frames = np.random.default_rng(0).integers(0, 256, (4, 96, 160, 3), dtype=np.uint8)
    write_video(tmp_path / "flat.mp4", frames, 10)
    data = bytearray((tmp_path / "flat.mp4").read_bytes())
    at = data.find(b"tkhd")
    assert data[at + 4] == 0  # a version-0 track header: its matrix sits 44 bytes in
    data[at + 44: at + 80] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    (tmp_path / "rot.mp4").write_bytes(bytes(data))
    exact = read_video_gray(tmp_path / "rot.mp4")
    assert exact.frames.shape[1:] == (160, 96)  # OpenCV applied the rotation
    for mode in ("farneback-quarter", "dis-fast"):
        fast = read_video_for_flow(tmp_path / "rot.mp4", Protocol(flow=mode))
        assert np.array_equal(fast.frames, exact.frames) and fast.frame_shape == exact.frame_shape, mode


@pytest.mark.parametrize("mode", ["farneback-quarter", "farneback-half"])
def test_chunked_workers_equal_one_pass_in_the_downscaled_modes(make_clip, mode):
    """The chunk workers get the frames at the working size and full_width with them."""
    mp4 = make_clip("q", [0.5, 1.5, 2.2], [0.5, 1.5, 2.2], fps=10, duration_s=3.0)
    protocol = Protocol(flow=mode)
    serial = score_file(mp4, protocol=protocol)
    (chunked,) = list(score_files([mp4], protocol=protocol, workers=2, chunk_pairs=4))
    assert chunked.flow_trajectory == serial.flow_trajectory and chunked.score == serial.score
    assert chunked.frame_shape == serial.frame_shape


@pytest.mark.parametrize("mode, size", [("farneback-quarter", (80, 128)), ("farneback-half", (160, 256)),
                                        ("dis-ultrafast", (320, 512))])
def test_fast_modes_decode_luma_at_the_working_size(golden_clips, mode, size):
    """Against OpenCV's decode (an independent path): same frame count and rate, the working size by
    hand (512x320 / 4 = 128x80), gray within a few levels of OpenCV's, downscaled by area."""
    from avalign.readers import read_video_for_flow, read_video_gray

    clip = golden_clips / "c05_sync_burst_30fps_512x320_10s.mp4"
    fast, ref = read_video_for_flow(clip, Protocol(flow=mode)), read_video_gray(clip)
    assert fast.n_frames == ref.n_frames and fast.fps == ref.fps and fast.frame_shape == ref.frame_shape
    assert fast.frames.shape[1:] == size and fast.full_width == (None if mode.startswith("dis") else 512)
    want = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in ref.frames])
    assert np.abs(fast.frames.astype(int) - want).mean() < 3.0  # luma vs BGR->gray, then two area filters


def test_prescaled_frames_keep_full_resolution_units(tmp_path):
    """A texture moving 4 px/frame, decoded at a quarter by PyAV: still about 4 px/frame."""
    from avalign.io import write_video
    from avalign.readers import read_video_for_flow

    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (128, 256, 3), dtype=np.uint8), (0, 0), 2.0)
    frames = np.stack([big[:, 64 - 4 * k: 192 - 4 * k] for k in range(6)])
    write_video(tmp_path / "shift.mp4", frames, 10.0)
    clip = read_video_for_flow(tmp_path / "shift.mp4", Protocol(flow="farneback-quarter"))
    mags = pair_magnitudes(clip.frames, mode="farneback-quarter", full_width=clip.full_width)
    assert clip.frames.shape[1:] == (32, 32) and np.all((mags > 3.0) & (mags < 4.6)), mags


@pytest.mark.slow
def test_fast_modes_agree_on_vggsound_like_clips(tmp_path):
    """16 textured-motion clips (tests/fixtures/media.py, 4 s, 320x180, 25 fps, 4-19 jolts), scores
    0.20-0.48: rho >= 0.9 (measured 0.91 for quarter, 0.94 for half), mean |delta| <= 0.03."""
    from scipy.stats import spearmanr

    from tests.fixtures.media import textured_motion_clip

    clips = [textured_motion_clip(tmp_path / f"c{seed}", seconds=4.0, width=320, height=180, events=4 + seed,
                                  seed=seed) for seed in range(16)]

    def scores(protocol):  # by clip: score_files yields in completion order
        by_path = {r.video: r.score for r in score_files(clips, workers=2, protocol=protocol)}
        return [by_path[str(c)] for c in clips]

    exact = scores(Protocol())
    assert None not in exact and len(set(exact)) >= 8  # scores that spread out
    for mode in ("farneback-quarter", "farneback-half"):
        fast = scores(Protocol(flow=mode))
        assert spearmanr(exact, fast).statistic >= 0.9, mode
        assert np.mean(np.abs(np.subtract(exact, fast))) <= 0.03, mode


@pytest.mark.slow  # 7 s: every golden clip in every mode
def test_fast_modes_rank_the_golden_clips_as_the_exact_scores_do(golden_clips, golden):
    """The agreement the fast modes claim: Spearman rho >= 0.9 against the reference's scores."""
    from scipy.stats import spearmanr

    exact = {name: c["score"] for name, c in golden.items() if c["error"] is None}
    for mode in ("farneback-quarter", "farneback-half"):
        fast = {r.video: r.score for r in score_files(sorted(golden_clips.glob("*.mp4")), workers=1,
                                                        protocol=Protocol(flow=mode))}
        fast = {name: fast[str(golden_clips / f"{name}.mp4")] for name in exact}
        assert None not in fast.values(), mode
        rho = spearmanr([exact[n] for n in exact], [fast[n] for n in exact]).statistic
        assert rho >= 0.9, (mode, rho)
        delta = np.mean([abs(exact[n] - fast[n]) for n in exact])
        assert delta <= 0.02, (mode, delta)  # measured 0.013: one clip of eleven moves
