"""Writing clips: wav files, H.264 mp4s with an optional AAC track, and the ``X.mp4`` + ``X.wav``
pair the scorer reads (written atomically).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .atomic import atomic_path


def write_wav(path: str | os.PathLike, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``(n,)`` or ``(channels, n)`` float samples in [-1, 1] to a wav file."""
    import soundfile as sf

    y = np.asarray(y, dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.T if y.ndim == 2 else y, int(sr), subtype=subtype)
    return path


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    *,
    codec: str = "libx264",
    crf: int = 18,
    threads: int | None = 1,
) -> Path:
    """Write RGB frames to an mp4 (H.264, yuv420p), optionally with an AAC audio track.

    Parameters
    ----------
    frames : np.ndarray, shape (T, H, W, 3), uint8
        RGB frames; H and W must be even (yuv420p).
    fps : float or Fraction
        Frame rate in frames per second (29.97 is stored as 30000/1001).
    audio : np.ndarray, shape (n,) or (channels, n), optional
        Samples in [-1, 1] muxed in as an AAC track.
    sample_rate : int, optional
        Sample rate of ``audio`` in Hz (required with ``audio``).
    threads : int or None
        Encoder threads.  The default 1 makes the file a function of its frames alone (x264's
        threaded encoding decides differently under different load); None lets FFmpeg choose.  The
        RGB to YUV conversion always runs on one thread, for the same reason, and libx264 runs
        without its macroblock-tree rate control (``mbtree=0``), whose decisions varied from one
        process to the next even on one thread.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {frames.shape[1:3]}")
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width, vstream.height = int(frames.shape[2]), int(frames.shape[1])
        vstream.pix_fmt = "yuv420p"
        if threads is not None:
            vstream.codec_context.thread_count = int(threads)
        if codec == "libx264":
            # mbtree=0: x264's macroblock-tree rate control made 10 of the demo's 120 clips come out
            # with other bytes in some fresh process (5 renderings, one thread; 0 of 120 without it)
            vstream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
        astream = None
        if audio is not None:
            if not sample_rate:
                raise ValueError("sample_rate is required with audio")
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            astream = container.add_stream("aac", rate=int(sample_rate), layout="mono" if audio.shape[0] == 1 else "stereo")
        for frame in frames:
            # converted here, on one thread: swscale's automatic slice threads (PyAV's default) make a
            # frame's YUV planes differ, now and then, from one process to the next
            yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
                format="yuv420p", threads=1)
            for packet in vstream.encode(yuv):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            step = 1024
            for start in range(0, audio.shape[1], step):
                chunk = np.ascontiguousarray(audio[:, start : start + step])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                aframe.sample_rate = int(sample_rate)
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def write_clip(
    path: str | os.PathLike, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
    sample_rate: int | None = None,
) -> tuple[Path, Path | None]:
    """Write a generated clip as ``X.mp4`` (with the audio muxed in as an AAC track) and the sibling
    ``X.wav`` (16-bit PCM), the layout ``python -m avalign score`` reads.

    Both files are written atomically (:func:`~avalign.io.atomic.atomic_path`), the wav first: an
    existing mp4 is always complete and has its wav.  Returns the mp4 path and the wav path (None
    without audio).
    """
    mp4 = Path(path).with_suffix(".mp4")
    wav = None
    if audio is not None:
        wav = mp4.with_suffix(".wav")
        with atomic_path(wav) as tmp:
            write_wav(tmp, audio, sample_rate)
    with atomic_path(mp4) as tmp:
        write_video(tmp, frames, fps, audio=audio, sample_rate=sample_rate)
    return mp4, wav
