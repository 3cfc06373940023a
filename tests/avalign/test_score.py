"""Defined results instead of crashes, and the audio source rules."""

import numpy as np
import pytest

from avalign import MediaError, read_audio, read_video_gray, score_arrays, score_file
from avalign.io import write_wav


def test_empty_streams_undefined_and_mapped(golden_clips):
    clip = golden_clips / "c12_static_silent_10fps_64x64_1s.mp4"
    r = score_file(clip)
    assert (r.status, r.score) == ("undefined", None)
    for value in (0.0, 1.0):
        mapped = score_file(clip, empty_score=value)
        assert (mapped.status, mapped.score) == ("undefined", value)


@pytest.mark.parametrize("name", ["c07_silent_audio_24fps_128x128_2s", "c08_static_video_10fps_128x128_3s"])
def test_one_side_empty_scores_zero(golden_clips, name):
    r = score_file(golden_clips / f"{name}.mp4")
    assert r.status == "ok" and r.score == 0.0
    assert (len(r.audio_peaks) == 0) != (len(r.video_peaks) == 0)


def test_fewer_than_three_frames_have_no_video_peaks():
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    frames[1, 8:16, 8:16] = 255
    r = score_arrays(frames, 8, np.zeros(16000, np.float32), 16000)
    assert r.n_frames == 2 and r.video_peaks == () and r.status == "undefined"
    single = score_arrays(frames[:1], 8, np.zeros(16000, np.float32), 16000)
    assert single.flow_trajectory == () and single.video_peaks == ()


def test_missing_and_corrupt_files_are_errors(tmp_path):
    r = score_file(tmp_path / "absent.mp4")
    assert r.status == "error" and r.score is None
    assert "absent.mp4" in r.error and "not found" in r.error and "\n" not in r.error
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    write_wav(tmp_path / "bad.wav", np.zeros(1000), 16000)
    r = score_file(bad)
    assert r.status == "error" and "bad.mp4" in r.error


def test_zero_fps_is_an_error(monkeypatch, golden_clips):
    import cv2

    real = cv2.VideoCapture

    class ZeroFps:
        def __init__(self, path):
            self.cap = real(path)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self.cap.get(prop)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", ZeroFps)
    with pytest.raises(MediaError, match="frame rate"):
        read_video_gray(golden_clips / "c03_sync_burst_8fps_64x64_2s.mp4")
    r = score_file(golden_clips / "c03_sync_burst_8fps_64x64_2s.mp4")
    assert r.status == "error" and "frame rate" in r.error


def test_container_track_equals_extracted_wav(make_clip, tmp_path):
    """An mp4 without a sibling wav is scored from its own track, like that track saved as wav."""
    events = [0.5, 1.2, 2.0]
    mp4 = make_clip("tracked", events, events, wav=False, track=True)
    from_track = score_file(mp4)
    assert from_track.audio is None and from_track.status == "ok"

    y, sr = read_audio(mp4)
    other = tmp_path / "extracted"
    other.mkdir()
    copy = other / "tracked.mp4"
    copy.write_bytes(mp4.read_bytes())
    write_wav(other / "tracked.wav", y, sr, subtype="FLOAT")
    from_wav = score_file(copy)
    assert from_wav.audio == str(other / "tracked.wav")
    for field in ("audio_peaks", "video_peaks", "matches", "score", "flow_trajectory"):
        assert getattr(from_track, field) == getattr(from_wav, field), field
    assert from_track.score == 1.0


def test_sibling_wav_wins_over_the_track(make_clip):
    # the mp4's track has clicks at 0.5/1.5 s; the sibling wav at 0.8/2.2 s
    mp4 = make_clip("both", [0.8, 2.2], [0.8, 2.2], track=True, track_events=[0.5, 1.5])
    r = score_file(mp4)
    assert r.audio.endswith("both.wav")
    np.testing.assert_allclose(r.audio_peaks, [0.8, 2.2], atol=0.05)
    assert r.score == 1.0


def test_no_audio_at_all_is_an_error(make_clip):
    mp4 = make_clip("mute", [0.5], [0.5], wav=False, track=False)
    r = score_file(mp4)
    assert r.status == "error" and "no audio track" in r.error


def test_stereo_and_integer_audio_are_mixed_like_librosa(tmp_path):
    import librosa

    sr = 22050
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((2, sr)) * 0.1).astype(np.float32)
    path = write_wav(tmp_path / "s.wav", y, sr)
    ours, ours_sr = read_audio(path)
    ref, ref_sr = librosa.load(path, sr=None, mono=False)
    assert ours_sr == ref_sr and ours.shape == (2, sr)
    np.testing.assert_array_equal(ours, ref)
