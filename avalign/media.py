"""Video and audio file I/O shared by the whole project (one implementation).

* Video frames are decoded with OpenCV (``cv2.VideoCapture``), as the reference scorer does, so
  that frame pixels and the frame rate (``CAP_PROP_FPS``) are exactly what it sees.
* Audio is read with soundfile when it can (wav, flac, ogg, ...), else from a container's first
  audio track with PyAV (mp4/aac, mkv, ...).  Both give float32 samples in [-1, 1] laid out as
  librosa does: ``(n,)`` for mono, ``(channels, n)`` otherwise.

Errors are raised as :class:`MediaError` with one line naming the file and the reason.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import cv2
import numpy as np

if TYPE_CHECKING:
    from .protocol import Protocol

#: Extensions treated as videos when a folder is given.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


def is_partial(path: str | os.PathLike) -> bool:
    """True for files an interrupted write leaves (``X.partial.mp4``, ``X.mp4.tmp``, ``.X.mp4``)."""
    name = Path(path).name
    return name.startswith(".") or ".partial." in name or name.endswith((".tmp", ".part", ".partial"))


class MediaError(RuntimeError):
    """A file that cannot be used: the message names the file and the reason, on one line."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class GrayVideo:
    """Decoded video reduced to what AV-Align needs.

    Attributes
    ----------
    frames : np.ndarray, shape (N, H, W), uint8
        Gray frames (OpenCV's BGR→gray weights), in decoding order.
    fps : float
        Frame rate in frames per second, from the container (``CAP_PROP_FPS``).
    frame_shape : tuple of int
        ``(H, W, C)`` of the decoded colour frames.
    full_width : int or None
        Set by :func:`read_video_for_flow` when the frames are at a flow mode's downscaled working
        size: the width (px) of the conformed frames they stand for (pass it to
        :func:`avalign.core.pair_magnitudes`).
    """

    frames: np.ndarray
    fps: float
    frame_shape: tuple[int, int, int]
    full_width: int | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


@contextmanager
def _capture(path: str | os.PathLike) -> Iterator[tuple[cv2.VideoCapture, float]]:
    """An opened ``cv2.VideoCapture`` and its frame rate, checked, released on exit."""
    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise MediaError(path, "cannot open video (not a video file, or corrupt)")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0:
            raise MediaError(path, f"unreadable frame rate (CAP_PROP_FPS = {fps})")
        yield cap, fps
    finally:
        cap.release()


def _decoded(cap: cv2.VideoCapture, shape: list) -> Iterator[np.ndarray]:
    """Decoded BGR frames of an open capture, recording the first frame's shape into ``shape``."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        if not shape:
            shape.extend(int(s) for s in frame.shape)
        yield frame


def read_video_gray(path: str | os.PathLike, protocol: "Protocol | None" = None) -> GrayVideo:
    """Decode a video with OpenCV and conform it (:func:`avalign.protocol.conform`): gray frames,
    re-timed, resized and cut as ``protocol`` says (every frame, as decoded, by default).

    ``fps`` and ``frame_shape`` of the result describe the frames returned: the protocol's rate and
    size where it sets them, ``(H, W, C)`` with the decoded channel count ``C``.

    Raises
    ------
    MediaError
        If the file is missing or cannot be opened, its frame rate is 0 or not finite, or no
        frame can be decoded.
    """
    from .protocol import NATIVE, conform

    shape: list[int] = []
    with _capture(path) as (cap, src_fps):
        clip = conform(_decoded(cap, shape), src_fps, protocol or NATIVE)
    if not shape or clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    frame_shape = (*clip.frames.shape[1:3], shape[2] if len(shape) > 2 else 1)
    return GrayVideo(frames=clip.frames, fps=clip.fps, frame_shape=frame_shape)


def read_video_for_flow(path: str | os.PathLike, protocol: "Protocol | None" = None) -> GrayVideo:
    """The gray frames a protocol's flow mode needs: :func:`read_video_gray` for the exact mode
    (bit-identical to the reference); for a fast mode, where exactness is not claimed, a cheaper path:

    * PyAV decoding with FFmpeg's frame/slice threads;
    * gray straight from the decoder's luma plane (swscale, one context per clip; no colour frame is
      made);
    * for ``farneback-half``/``-quarter`` at the native size (no protocol width), the frames are
      scaled to the mode's working size inside the decoder (swscale's area filter), and
      ``full_width`` says so;
    * a video with a display rotation is read by :func:`read_video_gray` (OpenCV rotates it; the
      frames then match the exact mode's).

    Raises :class:`MediaError` like :func:`read_video_gray`.
    """
    from . import core
    from .protocol import NATIVE, conform

    protocol = protocol or NATIVE
    if protocol.flow == core.DEFAULT_FLOW:
        return read_video_gray(path, protocol)
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(path, "file not found")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"cannot open video (not a video file, or corrupt: {exc})") from None
    with container:
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        src_fps = float(rate) if rate else 0.0
        if not math.isfinite(src_fps) or src_fps <= 0:
            raise MediaError(path, f"unreadable frame rate ({rate})")
        decoded = container.decode(stream)
        try:
            first = next(decoded)
        except (StopIteration, av.error.FFmpegError):
            raise MediaError(path, "no frame could be decoded") from None
        if getattr(first, "rotation", 0):  # OpenCV applies the display rotation; stay on its exact path
            return read_video_gray(path, protocol)
        width, height = first.width, first.height  # the decoded frames' size, not the header's
        scale = core.flow_scale(protocol.flow) if protocol.width is None else 1.0
        w, h = max(1, round(width * scale)), max(1, round(height * scale))

        from av.video.reformatter import VideoReformatter

        reformatter = VideoReformatter()  # one swscale context for the clip (frame.reformat makes one a frame)

        def luma():
            frame = first
            try:
                while frame is not None:
                    if (frame.width, frame.height) != (width, height):
                        raise MediaError(path, f"frame size changes mid-stream ({width}x{height} to "
                                               f"{frame.width}x{frame.height})")
                    yield reformatter.reformat(frame, width=w, height=h, format="gray",
                                               interpolation="AREA").to_ndarray()
                    frame = next(decoded, None)
            except av.error.FFmpegError:  # a truncated file: the frames decoded so far, as OpenCV does
                return

        clip = conform(luma(), src_fps, protocol)
    if clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    full = width if scale != 1.0 else None
    shape = (*clip.frames.shape[1:3], 3) if full is None else (height, width, 3)
    return GrayVideo(frames=clip.frames, fps=clip.fps, frame_shape=shape, full_width=full)


def read_video_rgb(path: str | os.PathLike, protocol: "Protocol | None" = None,
                   max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video and conform it to ``protocol`` in colour: ``(T, H, W, 3)`` uint8 RGB frames and
    their frame rate (frames/s).  The same re-timing, cover-and-crop and span as
    :func:`read_video_gray`; decoding stops after ``max_frames`` conformed frames.

    Raises
    ------
    MediaError
        As :func:`read_video_gray`.
    """
    from .protocol import NATIVE, Protocol, conform

    protocol = protocol or NATIVE
    if max_frames is not None:  # stop decoding early: a span of max_frames frames at the protocol's rate
        fps, _ = probe_video(path) if protocol.fps is None else (protocol.fps, None)
        span = (max_frames - 0.5) / fps
        if protocol.duration_s is None or span < protocol.duration_s:
            protocol = Protocol(fps=protocol.fps, width=protocol.width, height=protocol.height, duration_s=span,
                                flow=protocol.flow)
    with _capture(path) as (cap, src_fps):
        clip = conform(_decoded(cap, []), src_fps, protocol, color=True)
    if clip.n_frames == 0:
        raise MediaError(path, "no frame could be decoded")
    return clip.frames, clip.fps


def probe_video(path: str | os.PathLike) -> tuple[float, int]:
    """Frame rate (frames/s, ``CAP_PROP_FPS``) and frame count of a video, without decoding it.

    The count is the container's (it can be off by a frame or two for some files)."""
    with _capture(path) as (cap, fps):
        return fps, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))


def read_video_frames(path: str | os.PathLike, start: int = 0, count: int | None = None) -> tuple[np.ndarray, float]:
    """Decode ``count`` consecutive RGB frames from frame index ``start`` (all the rest if None).

    Frames before ``start`` are skipped without colour conversion.  Returns ``(T, H, W, 3)``
    uint8 RGB and the frame rate.  Raises :class:`MediaError` if fewer frames exist.
    """
    frames: list[np.ndarray] = []
    with _capture(path) as (cap, fps):
        for _ in range(start):
            if not cap.grab():
                raise MediaError(path, f"has fewer than {start} frames")
        while count is None or len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    if not frames or (count is not None and len(frames) < count):
        raise MediaError(path, f"has {start + len(frames)} frames, needs {start + (count or 1)}")
    return np.stack(frames), fps


def sibling_wav(video: str | os.PathLike) -> Path | None:
    """The ``X.wav`` next to ``X.mp4`` (the authors' layout), or None when absent."""
    wav = Path(video).with_suffix(".wav")
    return wav if wav.is_file() else None


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
        if codec == "libx264":
            vstream.options = {"crf": str(crf)}
        astream = None
        if audio is not None:
            if not sample_rate:
                raise ValueError("sample_rate is required with audio")
            audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
            astream = container.add_stream("aac", rate=int(sample_rate), layout="mono" if audio.shape[0] == 1 else "stereo")
        for frame in frames:
            for packet in vstream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
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

    Both files are written under temporary names and renamed, the wav first: an existing mp4 is
    always complete and has its wav.  Returns the mp4 path and the wav path (None without audio).
    """
    mp4 = Path(path).with_suffix(".mp4")
    wav = None
    if audio is not None:
        wav = mp4.with_suffix(".wav")
        os.replace(write_wav(wav.with_suffix(".partial.wav"), audio, sample_rate), wav)
    tmp = write_video(mp4.with_suffix(".partial.mp4"), frames, fps, audio=audio, sample_rate=sample_rate)
    os.replace(tmp, mp4)
    return mp4, wav
