"""The shared audio loader: spans, mono mix, resampling, containers."""

import numpy as np
import pytest
from scipy.signal import resample_poly

from avalign.io import MediaError, load_audio, write_video, write_wav


def _tone(freq, seconds, sr, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([y, -y * 0.5]) if channels == 2 else y


def test_span_is_exact_and_resampled(tmp_path):
    path = write_wav(tmp_path / "a.wav", _tone(440, 3.0, 44100), 44100, subtype="FLOAT")
    y, sr = load_audio(path, 16000, start_s=0.5, duration_s=1.0)
    assert sr == 16000 and y.shape == (16000,) and y.dtype == np.float32
    # an independent resampler agrees away from the edges
    ref = resample_poly(_tone(440, 3.0, 44100)[22050:66150].astype(np.float64), 160, 441)
    np.testing.assert_allclose(y[200:-200], ref[200:-200], atol=2e-3)


def test_mono_mix_and_native_rate(tmp_path):
    stereo = _tone(220, 1.0, 22050, channels=2)
    path = write_wav(tmp_path / "s.wav", stereo, 22050, subtype="FLOAT")
    y, sr = load_audio(path, None)
    assert sr == 22050
    np.testing.assert_allclose(y, stereo.mean(axis=0), atol=1e-7)
    both, _ = load_audio(path, None, mono=False)
    assert both.shape == (2, 22050)


def test_span_past_the_end(tmp_path):
    path = write_wav(tmp_path / "short.wav", _tone(440, 1.0, 16000), 16000)
    with pytest.raises(MediaError, match="shorter than the span"):
        load_audio(path, start_s=0.5, duration_s=1.0)
    y, _ = load_audio(path, start_s=0.5, duration_s=1.0, pad=True)
    assert y.shape == (16000,) and np.all(y[8000:] == 0) and np.abs(y[:8000]).max() > 0.4
    with pytest.raises(MediaError, match="outside the audio"):
        load_audio(path, start_s=2.0)


def test_container_audio_track(tmp_path):
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    mp4 = write_video(tmp_path / "v.mp4", frames, 10, audio=_tone(440, 1.0, 16000), sample_rate=16000)
    y, sr = load_audio(mp4, 16000, duration_s=0.5)
    assert y.shape == (8000,) and sr == 16000
    # AAC is lossy: compare the signal's energy, not its samples
    assert abs(np.sqrt(np.mean(y[1000:] ** 2)) - 0.5 / np.sqrt(2)) < 0.02


def test_unreadable(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(MediaError, match="x.wav"):
        load_audio(bad)
