"""Decoding and preprocessing shared by the learned sync metrics (DeSync, IB-score), as
av-benchmark does it (facts: ``shared/reference/SYNC_METRICS.md``).

* :func:`decode_at_rate`: the first video stream through FFmpeg's ``fps=R:round=near:start_time=0``
  filter, then rgb24 (swscale's defaults).  Output frame ``n`` is the last source frame whose
  timestamp ``t`` has ``round_half_away(t * R) <= n``; a slot without a new frame repeats the
  previous one; the last slot is the one before the stream's end (:func:`fps_filter_indices`
  computes the same selection from the timestamps).
* :func:`resize_short_side`: torch's native uint8 antialiased bicubic resize of the short side.
* :func:`center_crop_offsets` / :func:`long_side_crops`: the crop offsets of the two lineages.
* :func:`load_audio`: ``X.wav`` beside ``X.mp4``, else the mp4's own track, as float32 channels.

Each clip is decoded once per rate; the metrics share what they decode (:class:`DecodeCache`).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


class DecodeError(ValueError):
    """A clip that cannot be decoded, or is too short for what was asked (one line naming it)."""


def _reason(exc: BaseException) -> str:
    """An FFmpeg/libsndfile error as one short line (without the file name: the message names it)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:120]


def _round_half_away(x: float) -> int:
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def fps_filter_indices(timestamps_s: list[float], rate: float, end_s: float | None = None) -> list[int]:
    """The source frame each output slot of ``fps=rate:round=near:start_time=0`` shows.

    ``timestamps_s``: the source frames' presentation times (increasing); ``end_s``: where the stream
    ends (default: the last frame's time plus one frame interval).  Slot ``n`` shows the last frame
    with ``round_half_away(t * rate) <= n``; slots before the first frame are not emitted, and slots
    run while ``n < round_half_away(end_s * rate)`` (checked against FFmpeg on 24, 25 and 30 fps
    clips at 25 and 0.5 fps).
    """
    if not timestamps_s:
        return []
    if end_s is None:
        step = timestamps_s[-1] - timestamps_s[-2] if len(timestamps_s) > 1 else 1.0 / rate
        end_s = timestamps_s[-1] + step
    slots = [_round_half_away(t * rate) for t in timestamps_s]
    out: list[int] = []
    i = -1
    for n in range(max(slots[0], 0), _round_half_away(end_s * rate)):
        while i + 1 < len(slots) and slots[i + 1] <= n:
            i += 1
        if i >= 0:
            out.append(i)
    return out


def _open(path: str | os.PathLike):
    """``av.open(path)``; a file FFmpeg cannot open is one :class:`DecodeError` line."""
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(f"{path}: cannot open as a media file ({_reason(exc)})") from None


def decode_at_rate(path: str | os.PathLike, rate: float) -> np.ndarray:
    """Every output frame of FFmpeg's fps filter at ``rate`` on the first video stream, rgb24:
    ``(T, H, W, 3)`` uint8.  Raises :class:`DecodeError` (one line) when the file has no video."""
    import av

    path = Path(path)
    container = _open(path)
    frames: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=stream)
        fps = graph.add("fps", f"fps={rate}:round=near:start_time=0")
        fmt = graph.add("format", "pix_fmts=rgb24")
        sink = graph.add("buffersink")
        src.link_to(fps)
        fps.link_to(fmt)
        fmt.link_to(sink)
        graph.configure()

        def drain():
            while True:
                try:
                    frames.append(graph.pull().to_ndarray())
                except (av.error.BlockingIOError, av.error.EOFError):
                    return

        try:
            for frame in container.decode(stream):
                graph.push(frame)
                drain()
            graph.push(None)
            drain()
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{path}: decoding failed ({_reason(exc)})") from None
    if not frames:
        raise DecodeError(f"{path}: no video frames")
    return np.stack(frames)


@contextmanager
def _video_stream(path: Path, failing: str):
    """``(container, first video stream)`` of ``path``; an FFmpeg error inside is one
    :class:`DecodeError` line: ``"<path>: <failing> (<reason>)"``."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            yield container, container.streams.video[0]
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{path}: {failing} ({_reason(exc)})") from None


def packet_times(path: str | os.PathLike) -> list[float]:
    """The presentation times (s, ascending) of the first video stream's frames, from its packets
    alone (nothing decoded)."""
    path = Path(path)
    with _video_stream(path, "cannot read") as (container, stream):
        times = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)
    if not times:
        raise DecodeError(f"{path}: no video frames")
    return times


def decode_native(path: str | os.PathLike) -> tuple[np.ndarray, list[float]]:
    """Every frame of the first video stream as decoded, rgb24 ``(T, H, W, 3)`` uint8, and its
    presentation time in seconds."""
    path = Path(path)
    frames, times = [], []
    with _video_stream(path, "decoding failed") as (container, stream):
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base) if frame.pts is not None else len(times))
    if not frames:
        raise DecodeError(f"{path}: no video frames")
    return np.stack(frames), times


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 -> short side ``size``, long side ``int(size * long / short)``; torch's
    uint8 bicubic with antialias (the reference's, exactly; PIL differs by up to 2 levels)."""
    h, w = frames.shape[-2:]
    if h <= w:
        out = (size, int(size * w / h))
    else:
        out = (int(size * h / w), size)
    return torch.nn.functional.interpolate(frames, size=out, mode="bicubic", antialias=True, align_corners=False)


def center_crop_offsets(h: int, w: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of av-benchmark's DeSync centre crop: Python's ``round`` (half to even)."""
    return round((h - size) / 2), round((w - size) / 2)


def long_side_crops(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """``(top, left)`` of IB's three crops along the long side: 0, ``ceil((long - size) / 2)``,
    ``long - size`` (the short side is ``size``)."""
    long = max(h, w)
    offsets = [0, math.ceil((long - size) / 2), long - size]
    return [(0, o) if w >= h else (o, 0) for o in offsets]


def load_audio(video: str | os.PathLike, audio: str | os.PathLike | None = None) -> tuple[np.ndarray, int]:
    """``(channels, samples)`` float32 and the sample rate: ``audio`` when given (a wav), else ``X.wav``
    beside ``X.mp4`` (read as torchaudio reads it: int16 / 32768), else the mp4's first audio stream.
    Raises :class:`DecodeError` when there is none, or the given file is missing."""
    video = Path(video)
    wav = Path(audio) if audio is not None else video.with_suffix(".wav")
    if audio is not None and not wav.is_file():
        raise DecodeError(f"{wav}: audio file not found (the audio of {video})")
    if wav.is_file():
        import soundfile as sf

        try:
            data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise DecodeError(f"{wav}: cannot read ({_reason(exc)})") from None
        return np.ascontiguousarray(data.T), int(sr)
    import av

    container = _open(video)
    try:
        with container:
            if not container.streams.audio:
                raise DecodeError(f"{video}: no audio (no {wav.name} beside it and no audio stream)")
            stream = container.streams.audio[0]
            chunks = [f.to_ndarray() for f in container.decode(stream)]
            sr = stream.codec_context.sample_rate
            layout_planar = stream.codec_context.format.is_planar
    except av.error.FFmpegError as exc:
        raise DecodeError(f"{video}: cannot read its audio ({_reason(exc)})") from None
    if not chunks:
        raise DecodeError(f"{video}: empty audio stream")
    data = np.concatenate(chunks, axis=1) if layout_planar else np.concatenate(
        [c.reshape(-1, stream.channels).T for c in chunks], axis=1)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32), int(sr)


@dataclass
class DecodeCache:
    """One clip, decoded once per rate and its audio read once, shared by every metric scoring it."""

    video: Path
    audio_path: Path | None = None  #: the clip's wav when it is not ``X.wav`` beside ``X.mp4``
    _frames: dict = field(default_factory=dict)
    _audio: tuple | None = None
    _native_times: list = field(default_factory=list)

    def frames(self, rate: float | None) -> np.ndarray:
        """At ``rate`` through the fps filter; ``None``: as decoded (see :meth:`native_times`)."""
        if rate not in self._frames:
            if rate is None:
                self._frames[None], self._native_times = decode_native(self.video)
            else:
                self._frames[rate] = decode_at_rate(self.video, rate)
        return self._frames[rate]

    def with_audio(self, audio: np.ndarray, sample_rate: int) -> "DecodeCache":
        """The same clip with other audio ``(channels, samples)``: its decoded frames are shared (the
        video is decoded once for both), the audio is ``audio``."""
        return _SharedFrames(self, (audio, int(sample_rate)))

    def count_at_rate(self, rate: float) -> int:
        """How many frames :meth:`frames` gives at ``rate``: from the decoded frames when there, else
        from the packets' times (:func:`fps_filter_indices`), decoding nothing."""
        if rate in self._frames:
            return len(self._frames[rate])
        return len(fps_filter_indices(packet_times(self.video), rate))

    def native_times(self) -> list[float]:
        self.frames(None)
        return self._native_times

    def audio(self) -> tuple[np.ndarray, int]:
        if self._audio is None:
            self._audio = load_audio(self.video, self.audio_path)
        return self._audio


class _SharedFrames(DecodeCache):
    """A :class:`DecodeCache` that decodes through ``base`` (so ``base`` keeps what either decodes)
    and has its own audio."""

    def __init__(self, base: DecodeCache, audio: tuple):
        super().__init__(base.video, base.audio_path, _audio=audio)
        self._base = base

    def frames(self, rate):
        return self._base.frames(rate)

    def native_times(self):
        return self._base.native_times()

    def count_at_rate(self, rate):
        return self._base.count_at_rate(rate)
