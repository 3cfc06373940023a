"""Reading audio: a file's samples, librosa's mono/resample step, and the project's one loader for
models (a span, mixed, resampled to an exact length).

Audio is read with soundfile when it can (wav, flac, ogg, ...), else from a container's first audio
track with PyAV (mp4/aac, mkv, ...).  Both give float32 samples in [-1, 1] laid out as librosa does:
``(n,)`` for mono, ``(channels, n)`` otherwise.
"""

from __future__ import annotations

import os

import numpy as np

from .files import MediaError


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read all samples of an audio file, or of a container's first audio track.

    Returns
    -------
    y : np.ndarray, float32
        Shape ``(n,)`` for mono, ``(channels, n)`` otherwise, in [-1, 1].
    sr : int
        Native sample rate in Hz.

    Raises
    ------
    MediaError
        If the file is missing, unreadable, has no audio track, or has no samples.
    """
    import soundfile as sf

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    try:
        with sf.SoundFile(path) as f:
            sr = int(f.samplerate)
            y = f.read(dtype=np.float32, always_2d=False).T
    except sf.LibsndfileError:
        y, sr = _read_audio_track(path)
    if y.shape[-1] == 0:
        raise MediaError(path, "audio has no samples")
    return y, sr


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0}


def _read_audio_track(path: str) -> tuple[np.ndarray, int]:
    """Decode a container's first audio track with PyAV (float32, librosa layout)."""
    import av

    try:
        container = av.open(path)
    except Exception as exc:  # PyAV raises many error types for unreadable files
        raise MediaError(path, f"cannot read audio ({type(exc).__name__}: {exc})") from None
    with container:
        if not container.streams.audio:
            raise MediaError(path, "no audio track in the container")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        sr = 0
        try:
            for frame in container.decode(stream):
                sr = frame.sample_rate
                chunks.append(_frame_to_planar(frame))
        except Exception as exc:
            raise MediaError(path, f"audio track cannot be decoded ({type(exc).__name__}: {exc})") from None
    if not chunks:
        raise MediaError(path, "audio track has no samples")
    y = np.concatenate(chunks, axis=1)
    return (y[0] if y.shape[0] == 1 else y), int(sr)


def _frame_to_planar(frame) -> np.ndarray:
    """One PyAV audio frame as float32 ``(channels, samples)``."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    name = frame.format.name.rstrip("p")
    if name in ("flt", "dbl"):
        return data.astype(np.float32, copy=False)
    if name == "u8":
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    return (data.astype(np.float32) / np.float32(_INT_SCALE[name])).astype(np.float32)


def to_mono_resampled(y: np.ndarray, sr: int, target_sr: int | None) -> tuple[np.ndarray, int]:
    """librosa's ``load`` post-processing: average channels, then resample (soxr_hq).

    Parameters
    ----------
    y : np.ndarray
        ``(n,)`` or ``(channels, n)`` float32 samples.
    sr : int
        Sample rate of ``y`` in Hz.
    target_sr : int or None
        Output rate in Hz; None keeps ``sr``.

    Returns
    -------
    (np.ndarray of shape (m,), int)
        The mono waveform and its sample rate.
    """
    import librosa

    y = librosa.to_mono(y)
    if target_sr is None or target_sr == sr:
        return y, sr
    return librosa.resample(y, orig_sr=sr, target_sr=target_sr, res_type="soxr_hq"), int(target_sr)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = 16000,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    mono: bool = True,
    pad: bool = False,
) -> tuple[np.ndarray, int]:
    """Load a span of any audio file (or a container's audio track), mixed and resampled.

    This is the project's one audio loader for models (BEATs wants 16 kHz mono).

    Parameters
    ----------
    path : path
        Any file soundfile reads (wav, flac, ogg, ...) or PyAV decodes (mp4, mkv, mp3, ...).
    sample_rate : int or None
        Output rate in Hz (soxr, high quality); None keeps the native rate.
    start_s, duration_s : float
        The span in seconds; ``duration_s=None`` reads to the end.  The output then has exactly
        ``round(duration_s * sample_rate)`` samples.
    mono : bool
        Average the channels (output ``(n,)``); otherwise ``(channels, n)``.
    pad : bool
        Zero-pad a span that runs past the end of the file instead of raising.

    Returns
    -------
    (np.ndarray, int)
        float32 samples in [-1, 1] and their sample rate.

    Raises
    ------
    MediaError
        Unreadable file, no audio, or a span outside the file (without ``pad``).
    """
    y, sr = read_audio(path)
    y = np.atleast_2d(y)  # (channels, n)
    first = int(round(start_s * sr))
    if first < 0 or first >= y.shape[1]:
        raise MediaError(path, f"span starts at {start_s:.3f} s, outside the audio ({y.shape[1] / sr:.3f} s)")
    last = y.shape[1] if duration_s is None else first + int(round(duration_s * sr))
    if last > y.shape[1] and not pad:
        raise MediaError(path, f"audio is {y.shape[1] / sr:.3f} s long, shorter than the span "
                               f"{start_s:.3f}-{start_s + duration_s:.3f} s")
    y = y[:, first:last]
    if mono:
        y = y.mean(axis=0, keepdims=True)
    out_sr = sr if sample_rate is None else int(sample_rate)
    y = resample_exact(y, sr, out_sr, duration_s)
    return (y[0] if mono else y), out_sr


def resample_exact(y: np.ndarray, sr: int, out_sr: int, duration_s: float | None = None) -> np.ndarray:
    """Resample ``(n,)`` or ``(channels, n)`` samples from ``sr`` to ``out_sr`` Hz (soxr, high
    quality; nothing is done when the rates are equal).  With ``duration_s`` the result has exactly
    ``round(duration_s * out_sr)`` samples: trimmed, or zero-padded at the end.  Returns float32."""
    y = np.asarray(y, dtype=np.float32)
    if out_sr != sr:
        import soxr  # only when resampling: equal rates need no soxr (the GPU machine has none)

        y = soxr.resample(y.T, sr, out_sr, quality="HQ").T
    if duration_s is not None:
        n = int(round(duration_s * out_sr))
        pad = [(0, 0)] * (y.ndim - 1) + [(0, max(0, n - y.shape[-1]))]
        y = np.pad(y[..., :n], pad)
    return np.ascontiguousarray(y, dtype=np.float32)
