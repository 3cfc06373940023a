"""The evaluation protocol: re-timing, cover-and-crop, span; checked against independent decodes."""

import math
from fractions import Fraction

import cv2
import numpy as np
import pytest

from avalign import Protocol, conform, cover_crop, score_arrays, score_file
from avalign.cli import main
from avalign.io import write_video
from avalign.readers import read_video_gray

BITS = 8  # frame index written as 8 black/white blocks: survives H.264 at any quality


def _coded_frames(n: int, size: int = 64) -> np.ndarray:
    """Frame i shows i in binary as 8 vertical bands (white = 1), readable after compression."""
    frames = np.zeros((n, size, size, 3), np.uint8)
    band = size // BITS
    for i in range(n):
        for b in range(BITS):
            if (i >> b) & 1:
                frames[i, :, b * band:(b + 1) * band] = 255
    return frames


def _read_code(gray: np.ndarray) -> int:
    band = gray.shape[1] // BITS
    return sum(1 << b for b in range(BITS) if gray[:, b * band:(b + 1) * band].mean() > 127)


def _decode_all_pyav(path) -> list[int]:
    """Every frame's code, decoded by PyAV (an independent decoder)."""
    import av

    with av.open(str(path)) as c:
        return [_read_code(cv2.cvtColor(f.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)) for f in c.decode(video=0)]


@pytest.mark.parametrize("src_fps", [24, 25, Fraction(30000, 1001)])
def test_retiming_to_12_fps_selects_the_formula_frames(tmp_path, src_fps):
    n = 60
    path = write_video(tmp_path / "coded.mp4", _coded_frames(n), src_fps)
    decoded = _decode_all_pyav(path)
    assert decoded == list(range(n))  # the independent decoder reads every code back
    rate = float(src_fps)
    # hand formula of the protocol: frame k is source frame floor(k * src / 12 + 0.5) while it is < n
    expected = []
    k = 0
    while (i := math.floor(k * rate / 12 + 0.5)) < n:
        expected.append(decoded[i])
        k += 1
    clip = read_video_gray(path, Protocol(fps=12))
    assert [_read_code(f) for f in clip.frames] == expected
    assert clip.fps == 12.0 and clip.n_frames == len(expected)
    if src_fps == 24:
        assert expected == list(range(0, 60, 2))
    if src_fps == 25:
        assert expected[:8] == [0, 2, 4, 6, 8, 10, 13, 15]  # 25/12 = 2.083: a skip of 3 every 6 frames


def test_upsampling_repeats_frames_and_native_keeps_every_frame(tmp_path):
    path = write_video(tmp_path / "coded.mp4", _coded_frames(10), 8)
    up = read_video_gray(path, Protocol(fps=16))
    assert [_read_code(f) for f in up.frames] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10][:19]
    native = read_video_gray(path)
    assert [_read_code(f) for f in native.frames] == list(range(10)) and native.fps == 8.0


def test_cover_crop_by_hand():
    # 60 x 100 (H x W) to 32 x 32: scale max(32/60, 32/100) = 0.5333 -> 32 x 53, crop columns 10..41
    frame = np.zeros((60, 100), np.uint8)
    frame[:, :15] = 200  # the left 15% and right 15% fall outside the crop entirely
    frame[:, 85:] = 100
    frame[20:40, 40:60] = 255  # a centred 20x20 square stays a square
    out = cover_crop(frame[None], 32, 32)[0]
    assert out.shape == (32, 32)
    expected = cv2.resize(frame, (53, 32), interpolation=cv2.INTER_AREA)[:, 10:42]
    assert np.array_equal(out, expected)
    assert out[:, 0].max() < 200 and out[:, -1].max() < 100  # the side bands were cropped away
    ys, xs = np.nonzero(out > 128)
    assert abs((ys.max() - ys.min()) - (xs.max() - xs.min())) <= 1  # aspect kept: still a square
    # upscaling covers too: 10 x 20 to 40 x 40 -> 40 x 80, crop columns 20..59
    small = np.arange(200, dtype=np.uint8).reshape(10, 20)
    assert np.array_equal(cover_crop(small[None], 40, 40)[0],
                          cv2.resize(small, (80, 40), interpolation=cv2.INTER_AREA)[:, 20:60])
    # an oracle without OpenCV: 64 x 128 to 32 x 32 halves both sides (INTER_AREA averages 2x2 blocks,
    # exact when each block is one value), then crops columns 16..47 of the 64
    blocks = np.random.default_rng(0).integers(0, 256, (32, 64), dtype=np.uint8)
    assert np.array_equal(cover_crop(blocks.repeat(2, 0).repeat(2, 1)[None], 32, 32)[0], blocks[:, 16:48])
    colour = np.zeros((2, 60, 100, 3), np.uint8)
    assert cover_crop(colour, 32, 48).shape == (2, 32, 48, 3)


def test_gray_first_then_resize():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    clip = conform(frames, 10, Protocol(width=30, height=20), order="rgb")
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    assert np.array_equal(clip.frames, np.stack([cv2.resize(g, (30, 20), interpolation=cv2.INTER_AREA) for g in gray]))


def test_span_cuts_video_and_audio():
    fps, sr = 10, 16000
    frames = _coded_frames(30)  # 3 s
    audio = np.zeros(3 * sr, np.float32)
    for t in (0.5, 2.5):  # the second click is outside a 2 s span
        audio[int(t * sr): int(t * sr) + 200] = 0.8
    full = score_arrays(frames, fps, audio, sr)
    cut = score_arrays(frames, fps, audio, sr, protocol=Protocol(duration_s=2.0))
    assert full.n_frames == 30 and cut.n_frames == 20
    assert any(a > 2.0 for a in full.audio_peaks) and all(a < 2.0 for a in cut.audio_peaks)
    assert cut.protocol == Protocol(duration_s=2.0)


def test_protocol_sets_the_match_window_and_peak_times(make_clip):
    # events at 30 fps; scored at 10 fps, every video peak lies on the 0.1 s grid
    mp4 = make_clip("e", [0.5, 1.2, 2.0], [0.5, 1.2, 2.0], fps=30, duration_s=3.0)
    native, at10 = score_file(mp4), score_file(mp4, protocol=Protocol(fps=10))
    assert native.fps == 30.0 and native.n_frames == 90
    assert at10.fps == 10.0 and at10.n_frames == 30
    assert at10.video_peaks == pytest.approx([0.5, 1.2, 2.0])
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in at10.video_peaks)
    assert at10.score == 1.0
    small = score_file(mp4, protocol=Protocol(width=32, height=32))
    assert small.frame_shape == (32, 32, 3) and small.fps == 30.0
    assert small.to_record()["protocol"] == {"fps": None, "width": 32, "height": 32, "duration_s": None,
                                             "flow": "farneback"}


def test_retiming_computes_fewer_pairs(make_clip, monkeypatch):
    """Frames are selected before flow: a 30 fps clip at 12 fps computes 40% of the pairs."""
    import avalign.core as core

    calls = []
    real = core.flow_magnitude
    monkeypatch.setattr(core, "flow_magnitude", lambda a, b: calls.append(1) or real(a, b))
    mp4 = make_clip("p", [1.0], [1.0], fps=30, duration_s=5.0)
    score_file(mp4)
    native = len(calls)
    calls.clear()
    score_file(mp4, protocol=Protocol(fps=12))
    assert (native, len(calls)) == (149, 59)


def test_parse_and_errors():
    p = Protocol.parse(12, "384x256")
    assert (p.fps, p.width, p.height) == (12.0, 384, 256) and "12 fps, 384x256 px" == p.label
    assert Protocol().is_native and Protocol().label == "native fps, native size"
    for bad in ("384", "x", "0x10", "-3x4"):
        with pytest.raises(ValueError):
            Protocol.parse(None, bad)
    with pytest.raises(ValueError):
        Protocol(fps=0)


def test_cli_protocol_flags(make_clip, tmp_path, capsys):
    mp4 = make_clip("c", [0.5, 1.5], [0.5, 1.5], fps=30, duration_s=2.0)
    out = tmp_path / "r.jsonl"
    assert main(["score", str(mp4), "--fps", "10", "--size", "48x32", "--out", str(out), "--workers", "1"]) == 0
    import json

    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["protocol"] == {"fps": 10.0, "width": 48, "height": 32, "duration_s": None, "flow": "farneback"}
    assert rec["fps"] == 10.0 and rec["n_frames"] == 20 and rec["frame_shape"] == [32, 48, 3]
    assert "protocol 10 fps, 48x32 px" in capsys.readouterr().out
    # the same --out under another protocol is refused, and nothing is written
    before = out.read_bytes()
    assert main(["score", str(mp4), "--fps", "12", "--out", str(out)]) == 2
    assert "scored at 10 fps, 48x32 px" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["score", str(mp4), "--size", "big"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["score", str(mp4), "--fps", "12", "--workers", "2"]) == 0  # --fps alone, parallel path
